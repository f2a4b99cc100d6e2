"""metric points packed by block: metric_blocks.data replaces the metrics table

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 14:40:00

Every point moves into its block's packed value (``runyard/store/_points.py``), in
step order; the per-point table and its index are dropped. Downgrade unpacks them.
"""

from __future__ import annotations

from array import array

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    from runyard.store._points import BLOCK_STEPS, pack, stats_of

    with op.batch_alter_table('metric_blocks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data', sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    blocks = sa.table('metric_blocks', *(sa.column(c) for c in (
        'run_id', 'key_id', 'block', 'count', 'min', 'min_step', 'min_ts', 'max', 'max_step', 'max_ts', 'data')))
    # Points of one step keep the order they were written in (the table has no id: the row's
    # physical address is that order, as the packed format keeps it).
    arrival = "rowid" if conn.dialect.name == "sqlite" else "ctid"
    series = conn.execute(sa.text("SELECT DISTINCT run_id, key_id FROM metrics")).all()
    for run_id, key_id in series:  # one series in memory at a time
        points = conn.execute(sa.text(f"SELECT step, value, ts FROM metrics WHERE run_id = :r AND key_id = :k "
                                      f"ORDER BY step, {arrival}"), {"r": run_id, "k": key_id}).all()
        by_block: dict[int, tuple[list[int], list[float], list[float]]] = {}
        for step, value, t in points:
            steps, values, ts = by_block.setdefault(step // BLOCK_STEPS, ([], [], []))
            steps.append(step)
            values.append(float('nan') if value is None else value)
            ts.append(t)
        for block, (steps, values, ts) in by_block.items():
            conn.execute(
                blocks.update()
                .where(blocks.c.run_id == run_id, blocks.c.key_id == key_id, blocks.c.block == block)
                .values(data=pack(steps, values, ts), count=len(steps),
                        **dict(zip(('min', 'min_step', 'min_ts', 'max', 'max_step', 'max_ts'), stats_of(steps, values, ts),
                                   strict=True)))
            )
    conn.execute(sa.text("DELETE FROM metric_blocks WHERE data IS NULL"))  # extremes of points that no longer exist
    # (count and extremes are recomputed from the points above: the packed value is the truth from now on)
    with op.batch_alter_table('metric_blocks', schema=None) as batch_op:
        batch_op.alter_column('data', existing_type=sa.LargeBinary(), nullable=False)
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_metrics_run_key_step')
    op.drop_table('metrics')


def downgrade() -> None:
    from runyard.store._points import decode

    op.create_table('metrics',
    sa.Column('run_id', _BigId, nullable=False),
    sa.Column('key_id', _BigId, nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('value', sa.Float(precision=53), nullable=True),
    sa.Column('ts', sa.Float(precision=53), nullable=False)
    )
    with op.batch_alter_table('metrics', schema=None) as batch_op:
        batch_op.create_index('ix_metrics_run_key_step', ['run_id', 'key_id', 'step'], unique=False)
    conn = op.get_bind()
    metrics = sa.table('metrics', sa.column('run_id'), sa.column('key_id'), sa.column('step'), sa.column('value'),
                       sa.column('ts'))
    for run_id, key_id, count, data in conn.execute(sa.text("SELECT run_id, key_id, count, data FROM metric_blocks")).all():
        steps, values, ts = array('q'), array('d'), array('d')
        decode(data, count, steps, values, ts)
        conn.execute(metrics.insert(), [
            {"run_id": run_id, "key_id": key_id, "step": s, "value": None if v != v else v, "ts": t}
            for s, v, t in zip(steps, values, ts, strict=True)
        ])
    with op.batch_alter_table('metric_blocks', schema=None) as batch_op:
        batch_op.drop_column('data')
