"""Alembic environment: run migrations on the connection digest hands over.

`Database.upgrade` passes its connection in `config.attributes["connection"]`; there is
no alembic.ini, so the same migrations run from the CLI, the service and the tests.
"""

from alembic import context

from digest.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by running alembic by hand
    raise RuntimeError("run migrations with `digest db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
