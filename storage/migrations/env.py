"""Alembic environment: migrations always run on a connection handed in by storage.db.migrate."""

from alembic import context
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from storage.db import include_in_migrations

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations through `finetune-bot migrate`, which passes a connection.")


context.configure(
    connection=connection,
    target_metadata=SQLModel.metadata,
    include_object=include_in_migrations,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
