"""``run_models``: the registered model versions a run used, for lineage

Like ``run_datasets``: one row per (run, the run's name for the model), written with the queued
runs of an experiment that declares ``models:`` in runyard.yml, or by ``runyard.load_model`` inside
a run. A model version a run used keeps its row (the foreign key has no cascade); deleting the run
removes its rows.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
_F = sa.Float(precision=53)


def upgrade() -> None:
    op.create_table('run_models',
    sa.Column('run_id', _ID, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('model_version_id', _ID, nullable=False),
    sa.Column('recorded_at', _F, nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['model_version_id'], ['model_versions.id']),
    sa.PrimaryKeyConstraint('run_id', 'name')
    )
    op.create_index(op.f('ix_run_models_model_version_id'), 'run_models', ['model_version_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_run_models_model_version_id'), table_name='run_models')
    op.drop_table('run_models')
