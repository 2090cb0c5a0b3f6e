"""Schema version 4: `measurements`, what `adrs verify` measured of a run's programs on a real device."""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "measurements", sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Text, sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.Column("program_id", sa.Integer, sa.ForeignKey("programs.id"), nullable=True),
        *[sa.Column(c, sa.Text, nullable=False) for c in ("name", "kind", "verifier", "workloads", "status",
                                                          "reason")],
        sa.Column("sim_score", sa.Float, nullable=True), sa.Column("sim_basis", sa.Text, nullable=False),
        sa.Column("score", sa.Float, nullable=True), sa.Column("median_s", sa.Float, nullable=True),
        sa.Column("spread", sa.Float, nullable=True), sa.Column("repeats", sa.Integer, nullable=True),
        sa.Column("drift_flagged", sa.Boolean, nullable=False),
        *[sa.Column(c, sa.Text, nullable=False) for c in ("drift", "device_kind", "device", "driver")],
        *[sa.Column(c, sa.Float, nullable=True) for c in ("sm_clock_mhz", "mem_clock_mhz", "temperature_c")],
        sa.Column("detail", sa.Text, nullable=False), sa.Column("created_at", sa.Float, nullable=False))
    op.create_index("ix_measurements_run_id", "measurements", ["run_id"])
    op.execute("update adrs_meta set value = '4' where key = 'schema_version'")
