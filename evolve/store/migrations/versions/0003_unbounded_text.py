"""Schema version 3: every text column is unbounded TEXT. PostgreSQL enforces VARCHAR(n), so a long
workload id (a trace path) or model name would have failed a whole iteration's commit there.

SQLite never enforces a declared length (VARCHAR(n) and TEXT have the same affinity), so there the
tables stay as they are and only the version changes: no copy of a large store for nothing.
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"

WIDENED = {
    "runs": ("id", "problem", "sandbox"),
    "run_events": ("run_id", "kind"),
    "programs": ("run_id", "kind", "name", "status", "reason"),
    "metrics": ("workload", "split", "metric"),
    "feedback": ("split", "workload"),
    "attempts": ("run_id", "proposer", "stage", "status", "reason"),
    "artifacts": ("name",),
    "llm_calls": ("run_id", "model"),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        for table, columns in WIDENED.items():
            for column in columns:
                op.alter_column(table, column, type_=sa.Text)
    op.execute("update adrs_meta set value = '3' where key = 'schema_version'")
