"""Schema version 2: the per-workload table `evaluations` becomes `metrics`; the evaluator's words per
workload get their own table, `feedback`."""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.drop_index("ix_eval_program", table_name="evaluations")
    op.rename_table("evaluations", "metrics")
    if op.get_bind().dialect.name == "postgresql":  # keep the names PostgreSQL derived from the table's
        op.execute("alter sequence evaluations_id_seq rename to metrics_id_seq")
        op.execute("alter index evaluations_pkey rename to metrics_pkey")
    op.create_index("ix_metric_program", "metrics", ["program_id", "split"])
    op.create_table(
        "feedback", sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("program_id", sa.Integer, sa.ForeignKey("programs.id"), nullable=False),
        sa.Column("split", sa.String(16), nullable=False), sa.Column("workload", sa.String(256), nullable=False),
        sa.Column("text", sa.Text, nullable=False))
    op.create_index("ix_feedback_program", "feedback", ["program_id", "split"])
    op.execute("update adrs_meta set value = '2' where key = 'schema_version'")
