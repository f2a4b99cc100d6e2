"""auth: who submitted an experiment (disabling them cancels its queued runs) and the sign-in attempt counters

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('experiments') as batch:
        batch.add_column(sa.Column('created_by', _ID, nullable=True))
        batch.create_foreign_key('fk_experiments_created_by_users', 'users', ['created_by'], ['id'])
        batch.create_index('ix_experiments_created_by', ['created_by'], unique=False)
    op.create_table('login_attempts',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('window_start', sa.Double(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )


def downgrade() -> None:
    op.drop_table('login_attempts')
    with op.batch_alter_table('experiments') as batch:
        batch.drop_index('ix_experiments_created_by')
        batch.drop_constraint('fk_experiments_created_by_users', type_='foreignkey')
        batch.drop_column('created_by')
