"""chat turns kept as they happen

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 21:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_turn",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("ts", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("role", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["thread_id"], ["chat_thread.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("thread_id", "ts", name="uq_chat_turn"),
    )
    with op.batch_alter_table("chat_turn", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chat_turn_thread_id"), ["thread_id"], unique=False)
    with op.batch_alter_table("chat_thread", schema=None) as batch_op:
        batch_op.add_column(sa.Column("records_turns", sa.Boolean(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("chat_thread", schema=None) as batch_op:
        batch_op.drop_column("records_turns")
    with op.batch_alter_table("chat_turn", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chat_turn_thread_id"))
    op.drop_table("chat_turn")
