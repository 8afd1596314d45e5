"""Alembic environment of the run store, run in code (allocator.store.db.migrate): the engine
comes in `config.attributes["engine"]`; there is no alembic.ini.

The whole upgrade is one transaction taken under a lock, so that two processes opening a new
store at once do not both create the tables: SQLite's write lock (the engine begins every
transaction with BEGIN IMMEDIATE), PostgreSQL's advisory transaction lock. The version is read
after the lock is held: the second process finds the schema already at head."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from allocator.store.db import PG_MIGRATION_LOCK
from allocator.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    if engine is None:  # pragma: no cover - `alembic` command line with a URL
        from sqlalchemy import create_engine

        url = config.get_main_option("sqlalchemy.url")
        if url is None:
            raise RuntimeError("the run store's migrations need an engine or sqlalchemy.url")
        engine = create_engine(url)
    with engine.connect() as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": PG_MIGRATION_LOCK})
        context.configure(connection=connection, target_metadata=target_metadata,
                          transactional_ddl=True, render_as_batch=True)
        context.run_migrations()


if context.is_offline_mode():  # pragma: no cover
    context.configure(url=config.get_main_option("sqlalchemy.url"),
                      target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
