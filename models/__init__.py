"""Tables, and the functions that read and write them (including all statistics).

Every function takes the session it works in; nothing here opens a session of its own.
"""

from sqlmodel import SQLModel

from models import (
    issues,  # noqa: F401, E402  (issue reports: issue, issue_event, issue_photo)
    patrols,  # noqa: F401, E402  (food-safety patrols: shop, patrol, finding, rectification, finding_event)
    tables,  # noqa: F401  (registers the tables on the metadata)
)

metadata = SQLModel.metadata
