"""The store: the one place that reads and writes the database.

`database` holds the engine, sessions and migrations; one module per kind of record
(`papers`, and later subscribers and the outbox) holds the queries. Callers open a
`Database` with `open_database(settings)` and pass `database.session()` sessions in.
"""

from digest.store.database import Database, open_database

__all__ = ["Database", "open_database"]
