"""file intakes: one row per share being taken in, resumable after a crash; who posts a notification

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 01:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "file_intake",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("channel_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("file_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("message_ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("thread_ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("lease_expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("file_id", "message_ts", name="uq_file_intake_share"),
    )
    with op.batch_alter_table("file_intake", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_file_intake_status"), ["status"], unique=False)
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notification", schema=None) as batch_op:
        batch_op.drop_column("claimed_by")
    with op.batch_alter_table("file_intake", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_file_intake_status"))
    op.drop_table("file_intake")
