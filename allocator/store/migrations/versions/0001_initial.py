"""The run store: runs, their stages, input tables and top binding constraints.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _child(name: str, *columns: sa.Column) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  nullable=False),
        *columns,
    )
    op.create_index(f"ix_{name}_run_id", name, ["run_id"])


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("uid", sa.String(32), nullable=False, unique=True),
        sa.Column("scenario_name", sa.String(200), nullable=False),
        sa.Column("scenario_path", sa.Text(), nullable=False),
        sa.Column("scenario_sha256", sa.String(64)),
        sa.Column("model", sa.String(40)),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("exit_code", sa.Integer()),
        sa.Column("reason", sa.Text()),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("os_user", sa.String(255)),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("pid_start", sa.BigInteger()),
        sa.Column("command", sa.JSON()),
        sa.Column("overrides", sa.JSON()),
        sa.Column("versions", sa.JSON()),
        sa.Column("settings", sa.JSON()),
        sa.Column("seconds", sa.JSON()),
        sa.Column("total_seconds", sa.Float()),
        sa.Column("solve_seconds", sa.Float()),
        sa.Column("model_rows", sa.Integer()),
        sa.Column("model_columns", sa.Integer()),
        sa.Column("model_nonzeros", sa.BigInteger()),
        sa.Column("model_integers", sa.Integer()),
        sa.Column("mip_gap", sa.Float()),
        sa.Column("folder", sa.Text(), nullable=False),
        sa.Column("summary_sha256", sa.String(64)),
        sa.Column("warnings", sa.JSON()),
        sa.Column("notes", sa.JSON()),
    )
    op.create_index("ix_runs_scenario_started", "runs", ["scenario_name", "started_at"])
    op.create_index("ix_runs_status", "runs", ["status"])
    _child(
        "run_stages",
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("status", sa.String(40)),
        sa.Column("objective", sa.Float()),
        sa.Column("plan_value", sa.Float()),
        sa.Column("bound", sa.Float()),
        sa.Column("gap", sa.Float()),
        sa.Column("seconds", sa.Float()),
    )
    _child(
        "run_inputs",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("source", sa.Text()),
        sa.Column("rows", sa.Integer()),
        sa.Column("sha256_16", sa.String(64)),
    )
    _child(
        "run_constraints",
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(100)),
        sa.Column("kind", sa.String(40)),
        sa.Column("family", sa.String(100)),
        sa.Column("labels", sa.Text()),
        sa.Column("activity", sa.Float()),
        sa.Column("rhs", sa.Float()),
        sa.Column("dual", sa.Float()),
        sa.Column("rhs_low", sa.Float()),
        sa.Column("rhs_high", sa.Float()),
        sa.Column("range_kind", sa.String(20)),
        sa.Column("impact", sa.Float()),
        sa.Column("sentence", sa.Text()),
    )


def downgrade() -> None:
    for name in ("run_constraints", "run_inputs", "run_stages"):
        op.drop_index(f"ix_{name}_run_id", table_name=name)
        op.drop_table(name)
    op.drop_index("ix_runs_status", table_name="runs")
    op.drop_index("ix_runs_scenario_started", table_name="runs")
    op.drop_table("runs")
