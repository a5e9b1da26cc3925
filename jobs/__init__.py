"""What runs on a clock (reminders, digests) — built by later issues on PTB's JobQueue."""
