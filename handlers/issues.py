"""Issue reports (问题上报): being built (issue 4)."""

FLOWS: list = []
HANDLERS: list = []
