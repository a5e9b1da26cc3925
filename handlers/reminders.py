"""Reminders, digests and the outbox commands: being built (issue 5)."""

FLOWS: list = []
HANDLERS: list = []
