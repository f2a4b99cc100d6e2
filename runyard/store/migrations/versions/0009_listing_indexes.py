"""listing indexes: a project's runs by id (newest first without a sort), tags by key

``runs (project_id, id)`` pages a project's runs in id order straight from the index (10,000
runs: the page no longer sorts them all); ``tags (key)`` finds the runs with (or without) a tag,
e.g. the runs deleted through the MLflow-compatible API, without reading every tag.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 18:00:00
"""

from __future__ import annotations

from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_runs_project_id', 'runs', ['project_id', 'id'])
    op.create_index('ix_tags_key', 'tags', ['key'])


def downgrade() -> None:
    op.drop_index('ix_tags_key', table_name='tags')
    op.drop_index('ix_runs_project_id', table_name='runs')
