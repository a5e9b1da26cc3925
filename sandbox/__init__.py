"""Development tools beside the product: the in-memory Telegram Bot API server (`localapi`, used
by the tests and the sandbox), the terminal sandbox (`console`, `gridbot console`) and its demo
data (`demo`). Production code in bot/, handlers/, models/ and jobs/ never imports them,
except the CLI's `gridbot console`, which starts the sandbox (tests/test_layers.py checks it)."""
