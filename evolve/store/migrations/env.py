"""Alembic's entry point, run by evolve/store/migrate.py on a connection it opened (no alembic.ini)."""
from alembic import context

connection = context.config.attributes["connection"]
# one transaction for the whole upgrade: on PostgreSQL a failed step leaves the store as it was
context.configure(connection=connection, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
