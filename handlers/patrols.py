"""Food-safety patrols (食品安全巡查): being built (issue 3)."""

FLOWS: list = []
HANDLERS: list = []
