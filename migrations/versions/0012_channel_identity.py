"""channel identities: a person is reached through one or more chat channels

Revision ID: 0012
Revises: 0011

`link_code` holds the short-lived codes of `/link`, which bind a second channel to a person.

Before, a user *was* a Telegram id (`app_user.telegram_id`, unique, not null). Now each person has
one row per channel they use (`channel_identity`: channel, key), unique per channel; today's
Telegram ids move over as channel `telegram`. Downgrade moves them back; a person with no Telegram
identity (only possible after this revision) gets the negative of their user id, which no Telegram
user has, so the NOT NULL UNIQUE column can be restored.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_identity",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("channel", "key", name="uq_channel_identity"),
    )
    op.create_index("ix_channel_identity_user_id", "channel_identity", ["user_id"])
    op.execute("INSERT INTO channel_identity (user_id, channel, key, created_at) "
               "SELECT id, 'telegram', CAST(telegram_id AS VARCHAR(128)), created_at FROM app_user ORDER BY id")
    with op.batch_alter_table("app_user") as batch:
        batch.drop_column("telegram_id")
    op.create_table(
        "link_code",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
        sa.Column("expires_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", models.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_link_code_user_id", "link_code", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_link_code_user_id", table_name="link_code")
    op.drop_table("link_code")
    with op.batch_alter_table("app_user") as batch:
        batch.add_column(sa.Column("telegram_id", sa.BigInteger(), nullable=True))
    op.execute("UPDATE app_user SET telegram_id = (SELECT CAST(i.key AS BIGINT) FROM channel_identity i "
               "WHERE i.user_id = app_user.id AND i.channel = 'telegram')")
    op.execute("UPDATE app_user SET telegram_id = -id WHERE telegram_id IS NULL")
    with op.batch_alter_table("app_user") as batch:
        batch.alter_column("telegram_id", existing_type=sa.BigInteger(), nullable=False)
        batch.create_unique_constraint("app_user_telegram_id_key", ["telegram_id"])
    op.drop_index("ix_channel_identity_user_id", table_name="channel_identity")
    op.drop_table("channel_identity")
