"""slack installations: slack_sdk's installation and OAuth state tables, for multi-workspace installs

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 19:10:00

The tables are slack_sdk's own (AsyncSQLAlchemyInstallationStore and AsyncSQLAlchemyOAuthStateStore
read and write them); their definitions come from the library pinned in uv.lock, so the columns are
exactly what it expects.
"""

from collections.abc import Sequence

from alembic import op

from storage.db import slack_oauth_metadata

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    slack_oauth_metadata().create_all(op.get_bind())


def downgrade() -> None:
    slack_oauth_metadata().drop_all(op.get_bind())
