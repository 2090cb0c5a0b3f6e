"""Alembic migrations of the lineage store, one revision per schema version ("0001" is version 1).

Revisions are frozen: they spell out the tables as they were, never import the models of schema.py.
Each one ends by writing its version into adrs_meta, which is what opening a store checks.
"""
