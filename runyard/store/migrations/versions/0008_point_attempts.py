"""point attempts: metric points and summaries record the run's attempt; experiments keep warnings

A restarted run logs its steps again: each attempt's points are kept apart (metric_blocks'
key gains ``attempt``), and a summary describes the latest attempt that logged the metric.
Points stored before this revision belong to attempt 1.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 04:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_COLS = 'run_id, key_id, block, count, min, min_step, min_ts, max, max_step, max_ts, data'


def _blocks_table(name: str, *, attempt: bool) -> None:
    cols = [sa.Column('run_id', _ID, nullable=False), sa.Column('key_id', _ID, nullable=False)]
    if attempt:
        cols.append(sa.Column('attempt', sa.Integer(), server_default='1', nullable=False))
    cols += [
        sa.Column('block', sa.BigInteger(), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.Column('min', sa.Double(), nullable=True),
        sa.Column('min_step', sa.BigInteger(), nullable=False),
        sa.Column('min_ts', sa.Double(), nullable=False),
        sa.Column('max', sa.Double(), nullable=True),
        sa.Column('max_step', sa.BigInteger(), nullable=False),
        sa.Column('max_ts', sa.Double(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
    ]
    key = ['run_id', 'key_id', 'attempt', 'block'] if attempt else ['run_id', 'key_id', 'block']
    op.create_table(name, *cols, sa.PrimaryKeyConstraint(*key, name=f'{name}_pkey'))


def upgrade() -> None:
    # A new primary key: the table is copied (SQLite cannot alter a primary key in place).
    _blocks_table('metric_blocks_new', attempt=True)
    op.execute(f"INSERT INTO metric_blocks_new ({_COLS}, attempt) SELECT {_COLS}, 1 FROM metric_blocks")
    op.drop_table('metric_blocks')
    op.rename_table('metric_blocks_new', 'metric_blocks')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE metric_blocks RENAME CONSTRAINT metric_blocks_new_pkey TO metric_blocks_pkey')
    with op.batch_alter_table('metric_summaries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warnings', sa.Text(), server_default='[]', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('experiments', schema=None) as batch_op:
        batch_op.drop_column('warnings')
    with op.batch_alter_table('metric_summaries', schema=None) as batch_op:
        batch_op.drop_column('attempt')
    # Only the latest attempt's points fit the old key.
    _blocks_table('metric_blocks_old', attempt=False)
    op.execute(
        f"INSERT INTO metric_blocks_old ({_COLS}) SELECT {_COLS} FROM metric_blocks b WHERE attempt = "
        "(SELECT MAX(attempt) FROM metric_blocks c WHERE c.run_id = b.run_id AND c.key_id = b.key_id)"
    )
    op.drop_table('metric_blocks')
    op.rename_table('metric_blocks_old', 'metric_blocks')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('ALTER TABLE metric_blocks RENAME CONSTRAINT metric_blocks_old_pkey TO metric_blocks_pkey')
