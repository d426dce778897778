"""The store: the one place that reads and writes the database.

`database` holds the engine, sessions and migrations; one module per kind of record
holds the queries: `papers` (and the fetch log), `subscribers` (every change of a
subscriber's state goes through `change_status`), `outbox` (queueing, claiming and
recording deliveries) and `outbox_admin` (what operators read and do). `lock` keeps one
scheduler per store. Callers open a `Database` with `open_database(settings)` and pass
`database.session()` sessions in.
"""

from digest.store.database import Database, open_database

__all__ = ["Database", "open_database"]
