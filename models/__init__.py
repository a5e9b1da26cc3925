"""Tables, and the functions that read and write them (including all statistics).

Every function takes the session it works in; nothing here opens a session of its own.
"""

from sqlmodel import SQLModel

from models import (
    audit,  # noqa: F401  (audit_log: exports, imports, user changes)
    corrections,  # noqa: F401  (correction: the trail of corrected and voided records)
    issues,  # noqa: F401, E402  (issue reports: issue, issue_event, issue_photo)
    outbox,  # noqa: F401  (reminders and digests to send: outbox)
    patrols,  # noqa: F401, E402  (food-safety patrols: shop, patrol, finding, rectification, finding_event)
    reminders,  # noqa: F401  (job_run, process_lease, disabled_channel)
    tables,  # noqa: F401  (registers the tables on the metadata)
)

metadata = SQLModel.metadata
