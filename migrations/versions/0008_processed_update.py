"""processed_update: ids of the updates handled, so a redelivered update is handled once

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "processed_update",
        sa.Column("bot_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("processed_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("bot_id", "update_id"),
    )
    op.create_index("ix_processed_update_processed_at", "processed_update", ["processed_at"])


def downgrade() -> None:
    op.drop_index("ix_processed_update_processed_at", table_name="processed_update")
    op.drop_table("processed_update")
