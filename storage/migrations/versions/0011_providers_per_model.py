"""the provider each chat, golden set and evaluation side answers at

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 15:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = {
    "chat_thread": ("provider", "compare_provider"),
    "golden_set": ("provider",),
    "evaluation": ("provider", "baseline_provider", "judge_provider"),
}


def upgrade() -> None:
    # "" is the default provider: every row written before this revision was made with the one provider.
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.add_column(
                    sa.Column(column, sqlmodel.sql.sqltypes.AutoString(length=32), server_default="", nullable=False)
                )


def downgrade() -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in reversed(columns):
                batch_op.drop_column(column)
