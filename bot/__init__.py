"""gridbot (网格助手): a Telegram bot for street-office grid workers."""
