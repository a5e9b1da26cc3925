"""deadline extensions (延期) and reminder snoozes (暂缓一天)

Revision ID: 0011
Revises: 0010

An `extend` event moves an issue's deadline; the event keeps the deadline before and after, so a
report "as of" a past day uses the deadline that held then (the figures never move). A snooze
keeps one user's repeated reminder of one kind quiet until a moment.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("issue_event") as batch:
        batch.add_column(sa.Column("due_from", models.types.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("due_to", models.types.UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        "reminder_snooze",
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), primary_key=True),
        sa.Column("until", models.types.UTCDateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("reminder_snooze")
    with op.batch_alter_table("issue_event") as batch:
        batch.drop_column("due_to")
        batch.drop_column("due_from")
