"""dataset version numbers are never given twice: ``datasets.last_version``

The highest version number a dataset ever had. Deleting its latest version no longer lets the next
push take the same number again, so ``digits:3`` (pinned by an experiment, named in lineage) always
means one content. Filled from the versions that exist.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 01:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('datasets') as batch:
        batch.add_column(sa.Column('last_version', sa.Integer(), nullable=False, server_default='0'))
    op.execute("UPDATE datasets SET last_version = COALESCE((SELECT MAX(version) FROM dataset_versions "
               "WHERE dataset_versions.dataset_id = datasets.id), 0)")


def downgrade() -> None:
    with op.batch_alter_table('datasets') as batch:
        batch.drop_column('last_version')
