"""The run store: every `allocator solve` recorded in a database (docs/run-store.md).

SQLite by default (`runs.sqlite` beside the run folders), PostgreSQL by URL; the schema is
kept by Alembic migrations (allocator/store/migrations/) applied whenever a store is opened.
"""

from allocator.store.db import Store, StoreError, open_store, resolve_url
from allocator.store.record import Recorder, Recording, mark_interrupted_active

__all__ = ["Recorder", "Recording", "Store", "StoreError", "mark_interrupted_active",
           "open_store", "resolve_url"]
