"""Rule violations raised by models/; handlers turn `code` into a message in the user's language."""


class RuleError(Exception):
    """A request the rules refuse. Nothing was written."""

    def __init__(self, code: str, /, **details: object) -> None:
        super().__init__(code)
        self.code = code
        self.details = details
