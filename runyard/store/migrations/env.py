"""Alembic environment: runs migrations on the engine or connection handed in by _migrate."""

from __future__ import annotations

from alembic import context

from runyard.store._models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:  # noqa: ANN001
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = config.attributes["engine"]
    with engine.connect() as conn:
        _run(conn)
        conn.commit()
