"""the job a job was retrained from, at another provider

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 16:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trainingjob", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retrained_from_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_trainingjob_retrained_from_id", "trainingjob", ["retrained_from_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("trainingjob", schema=None) as batch_op:
        batch_op.drop_constraint("fk_trainingjob_retrained_from_id", type_="foreignkey")
        batch_op.drop_column("retrained_from_id")
