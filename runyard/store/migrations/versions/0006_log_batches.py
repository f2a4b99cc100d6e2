"""log batches: idempotency keys of appended log batches, so a retried batch is stored once

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 22:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('log_batches',
    sa.Column('run_id', _ID, nullable=False),
    sa.Column('batch_id', sa.String(length=64), nullable=False),
    sa.Column('last_offset', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.Double(), nullable=False),
    sa.PrimaryKeyConstraint('run_id', 'batch_id')
    )


def downgrade() -> None:
    op.drop_table('log_batches')
