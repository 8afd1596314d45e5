"""The run store: every `allocator solve` recorded in a database (docs/run-store.md).

SQLite by default (`runs.sqlite` beside the run folders), PostgreSQL by URL; the schema is
kept by Alembic migrations (allocator/store/migrations/) applied whenever a store is opened.
Nothing is imported until used (SQLAlchemy costs every CLI command a fifth of a second).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {"Store": "db", "StoreError": "db", "open_store": "db", "resolve_url": "db",
          "Recorder": "record", "Recording": "record", "mark_interrupted_active": "record"}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"allocator.store.{_WHERE[name]}"), name)
    raise AttributeError(name)
