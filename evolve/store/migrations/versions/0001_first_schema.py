"""Schema version 1: runs, events, programs, per-workload `evaluations`, attempts, artifacts, LLM calls.

Stores of version 1 were made by create_all before Alembic; this revision is what they are stamped with,
and what the tests build a version-1 store from.
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table("adrs_meta", sa.Column("key", sa.String(64), primary_key=True),
                    sa.Column("value", sa.Text, nullable=False))
    op.create_table(
        "runs", sa.Column("id", sa.String(128), primary_key=True),
        sa.Column("problem", sa.String(256), nullable=False), sa.Column("problem_dir", sa.Text, nullable=False),
        sa.Column("seed", sa.Integer, nullable=False), sa.Column("config", sa.Text, nullable=False),
        sa.Column("sandbox", sa.String(32), nullable=False), sa.Column("isolation", sa.Text, nullable=False),
        sa.Column("versions", sa.Text, nullable=False), sa.Column("created_at", sa.Float, nullable=False))
    op.create_table(
        "run_events", sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.id"), nullable=False, index=True),
        sa.Column("kind", sa.String(32), nullable=False), sa.Column("detail", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False))
    op.create_table(
        "programs", sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.id"), nullable=False, index=True),
        sa.Column("iteration", sa.Integer), sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("programs.id")),
        sa.Column("island", sa.Integer, nullable=False), sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("source", sa.Text, nullable=False), sa.Column("diff", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False), sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("score", sa.Float), sa.Column("origin", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False), sa.UniqueConstraint("run_id", "iteration"))
    op.create_table(
        "evaluations", sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("program_id", sa.Integer, sa.ForeignKey("programs.id"), nullable=False),
        sa.Column("workload", sa.String(256), nullable=False), sa.Column("split", sa.String(16), nullable=False),
        sa.Column("metric", sa.String(64), nullable=False), sa.Column("value", sa.Float, nullable=False),
        sa.Column("samples", sa.Text))
    op.create_index("ix_eval_program", "evaluations", ["program_id", "split"])
    op.create_table(
        "attempts", sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.id"), nullable=False, index=True),
        sa.Column("iteration", sa.Integer, nullable=False), sa.Column("island", sa.Integer, nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("programs.id")),
        sa.Column("proposer", sa.String(128), nullable=False), sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False), sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("message", sa.Text, nullable=False), sa.Column("proposal", sa.Text, nullable=False),
        sa.Column("program_id", sa.Integer, sa.ForeignKey("programs.id")),
        sa.Column("duration_s", sa.Float, nullable=False), sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("run_id", "iteration"))
    op.create_table(
        "artifacts", sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("program_id", sa.Integer, sa.ForeignKey("programs.id"), index=True),
        sa.Column("attempt_id", sa.Integer, sa.ForeignKey("attempts.id"), index=True),
        sa.Column("name", sa.String(64), nullable=False), sa.Column("content", sa.Text, nullable=False))
    op.create_table(
        "llm_calls", sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.String(128), sa.ForeignKey("runs.id"), nullable=False, index=True),
        sa.Column("attempt_id", sa.Integer, sa.ForeignKey("attempts.id")),
        sa.Column("program_id", sa.Integer, sa.ForeignKey("programs.id")),
        sa.Column("model", sa.String(256), nullable=False), sa.Column("messages", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=False), sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False), sa.Column("cost_usd", sa.Float),
        sa.Column("latency_s", sa.Float, nullable=False), sa.Column("error", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False))
    op.execute("insert into adrs_meta (key, value) values ('schema_version', '1')")
