"""corrections: void columns on visit, patrol and issue; the correction trail

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

RECORDS = ("visit", "patrol", "issue")


def upgrade() -> None:
    for table in RECORDS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("voided_at", models.types.UTCDateTime(timezone=True), nullable=True))
            batch_op.add_column(sa.Column("voided_by", sa.Integer(), nullable=True))
            batch_op.add_column(sa.Column("void_reason", sa.Text(), nullable=True))
            batch_op.create_foreign_key(f"fk_{table}_voided_by", "app_user", ["voided_by"], ["id"])
    op.create_table(
        "correction",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("record_kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("actor_id", sa.Integer(), sa.ForeignKey("app_user.id"), nullable=False),
        sa.Column("at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("old_values", sa.JSON(), nullable=False),
        sa.Column("new_values", sa.JSON(), nullable=False),
    )
    op.create_index("ix_correction_record", "correction", ["record_kind", "record_id"])


def downgrade() -> None:
    op.drop_index("ix_correction_record", table_name="correction")
    op.drop_table("correction")
    for table in reversed(RECORDS):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_voided_by", type_="foreignkey")
            batch_op.drop_column("void_reason")
            batch_op.drop_column("voided_by")
            batch_op.drop_column("voided_at")
