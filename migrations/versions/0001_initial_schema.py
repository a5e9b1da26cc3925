"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 05:35:21.851156
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('app_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('telegram_id', sa.BigInteger(), nullable=False),
    sa.Column('display_name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('language', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('telegram_id')
    )
    op.create_table('grid',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('community', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('target_coverage', sa.Float(), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('persisted_state',
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('data', sa.JSON(), nullable=True),
    sa.Column('updated_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('kind', 'key')
    )
    op.create_table('household',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('grid_id', sa.Integer(), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('head_name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('head_phone', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['grid_id'], ['grid.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('grid_id', 'address', name='uq_household_grid_address')
    )
    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.create_index('ix_household_grid_active', ['grid_id', 'active'], unique=False)

    op.create_table('invitation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('grid_ids', sa.JSON(), nullable=False),
    sa.Column('issued_by', sa.Integer(), nullable=True),
    sa.Column('used_by', sa.Integer(), nullable=True),
    sa.Column('used_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('expires_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['issued_by'], ['app_user.id'], ),
    sa.ForeignKeyConstraint(['used_by'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('user_grid',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('grid_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['grid_id'], ['grid.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['app_user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'grid_id')
    )
    with op.batch_alter_table('user_grid', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_grid_grid_id'), ['grid_id'], unique=False)

    op.create_table('visit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('draft_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('household_id', sa.Integer(), nullable=False),
    sa.Column('worker_id', sa.Integer(), nullable=False),
    sa.Column('visited_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('people_met', sa.Integer(), nullable=False),
    sa.Column('situations', sa.JSON(), nullable=False),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('photos', sa.JSON(), nullable=False),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['household_id'], ['household.id'], ),
    sa.ForeignKeyConstraint(['worker_id'], ['app_user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('draft_id')
    )
    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.create_index('ix_visit_household_visited_at', ['household_id', 'visited_at'], unique=False)
        batch_op.create_index('ix_visit_visited_at', ['visited_at'], unique=False)
        batch_op.create_index('ix_visit_worker_visited_at', ['worker_id', 'visited_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('visit', schema=None) as batch_op:
        batch_op.drop_index('ix_visit_worker_visited_at')
        batch_op.drop_index('ix_visit_visited_at')
        batch_op.drop_index('ix_visit_household_visited_at')

    op.drop_table('visit')
    with op.batch_alter_table('user_grid', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_grid_grid_id'))

    op.drop_table('user_grid')
    op.drop_table('invitation')
    with op.batch_alter_table('household', schema=None) as batch_op:
        batch_op.drop_index('ix_household_grid_active')

    op.drop_table('household')
    op.drop_table('persisted_state')
    op.drop_table('grid')
    op.drop_table('app_user')
