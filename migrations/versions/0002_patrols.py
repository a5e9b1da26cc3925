"""patrols tables: shop, patrol, finding, finding_event, rectification

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('shop',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('grid_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('licence_no', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('contact', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['created_by'], ['app_user.id'], ),
    sa.ForeignKeyConstraint(['grid_id'], ['grid.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('grid_id', 'name', 'address', name='uq_shop_grid_name_address')
    )
    with op.batch_alter_table('shop', schema=None) as batch_op:
        batch_op.create_index('ix_shop_grid_active', ['grid_id', 'active'], unique=False)

    op.create_table('patrol',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('draft_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=False),
    sa.Column('patrolled_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('photos', sa.JSON(), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shop.id'], ),
    sa.ForeignKeyConstraint(['worker_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('draft_id')
    )
    with op.batch_alter_table('patrol', schema=None) as batch_op:
        batch_op.create_index('ix_patrol_patrolled_at', ['patrolled_at'], unique=False)
        batch_op.create_index('ix_patrol_shop_patrolled_at', ['shop_id', 'patrolled_at'], unique=False)
        batch_op.create_index('ix_patrol_worker_patrolled_at', ['worker_id', 'patrolled_at'], unique=False)

    op.create_table('finding',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patrol_id', sa.Integer(), nullable=False),
    sa.Column('item', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('weight', sa.Float(), nullable=False),
    sa.Column('key', sa.Boolean(), nullable=False),
    sa.Column('disposition', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('outcome_by', sa.Integer(), nullable=True),
    sa.Column('outcome_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['outcome_by'], ['app_user.id'], ),
    sa.ForeignKeyConstraint(['patrol_id'], ['patrol.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('finding', schema=None) as batch_op:
        batch_op.create_index('ix_finding_patrol', ['patrol_id'], unique=False)

    op.create_table('finding_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('finding_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('from_outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('to_outcome', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('deadline', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('patrol_id', sa.Integer(), nullable=True),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.ForeignKeyConstraint(['actor_id'], ['app_user.id'], ),
    sa.ForeignKeyConstraint(['finding_id'], ['finding.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['patrol_id'], ['patrol.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('finding_event', schema=None) as batch_op:
        batch_op.create_index('ix_finding_event_finding', ['finding_id'], unique=False)

    op.create_table('rectification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('finding_id', sa.Integer(), nullable=False),
    sa.Column('shop_id', sa.Integer(), nullable=False),
    sa.Column('ordered_by', sa.Integer(), nullable=True),
    sa.Column('ordered_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('deadline', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('reinspection_patrol_id', sa.Integer(), nullable=True),
    sa.Column('closed_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reminded_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['finding_id'], ['finding.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ordered_by'], ['app_user.id'], ),
    sa.ForeignKeyConstraint(['reinspection_patrol_id'], ['patrol.id'], ),
    sa.ForeignKeyConstraint(['shop_id'], ['shop.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('finding_id')
    )
    with op.batch_alter_table('rectification', schema=None) as batch_op:
        batch_op.create_index('ix_rectification_shop_status', ['shop_id', 'status'], unique=False)
        batch_op.create_index('ix_rectification_status_deadline', ['status', 'deadline'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('rectification', schema=None) as batch_op:
        batch_op.drop_index('ix_rectification_status_deadline')
        batch_op.drop_index('ix_rectification_shop_status')

    op.drop_table('rectification')
    with op.batch_alter_table('finding_event', schema=None) as batch_op:
        batch_op.drop_index('ix_finding_event_finding')

    op.drop_table('finding_event')
    with op.batch_alter_table('finding', schema=None) as batch_op:
        batch_op.drop_index('ix_finding_patrol')

    op.drop_table('finding')
    with op.batch_alter_table('patrol', schema=None) as batch_op:
        batch_op.drop_index('ix_patrol_worker_patrolled_at')
        batch_op.drop_index('ix_patrol_shop_patrolled_at')
        batch_op.drop_index('ix_patrol_patrolled_at')

    op.drop_table('patrol')
    with op.batch_alter_table('shop', schema=None) as batch_op:
        batch_op.drop_index('ix_shop_grid_active')

    op.drop_table('shop')
