"""The run store's tables (SQLAlchemy 2.0 ORM). Changed only through an Alembic revision
(allocator/store/migrations/versions/): the tables here and the newest revision agree.

One row of `runs` per `allocator solve`; its stages, input tables and top binding constraints
in tables of their own, so that a question across nights ("when was the South budget
binding, and at what price?") is one SQL query. The plan itself stays in the run folder
(`runs.folder`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

RUNNING = "running"
INTERRUPTED = "interrupted"
LOST = "lost"
FAILED = "failed"  # stopped by an error before a run folder was written (bad input, crash)


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True)  # uuid4 hex: unique everywhere
    scenario_name: Mapped[str] = mapped_column(String(200))
    scenario_path: Mapped[str] = mapped_column(Text)
    scenario_sha256: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(40))
    # running, then: optimal, feasible, infeasible, "time limit, no solution", error (from
    # the run's summary), failed (no run folder: bad input, crash), interrupted, lost
    status: Mapped[str] = mapped_column(String(40))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)  # why it failed, stopped or was lost
    started_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    host: Mapped[str] = mapped_column(String(255))
    os_user: Mapped[str | None] = mapped_column(String(255))  # ("user" is reserved in SQL)
    pid: Mapped[int] = mapped_column(Integer)
    pid_start: Mapped[int | None] = mapped_column(BigInteger)  # /proc start time: pid reuse
    command: Mapped[list[str] | None] = mapped_column(JSON)
    overrides: Mapped[list[str] | None] = mapped_column(JSON)
    versions: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    settings: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # solver, policy, objective
    seconds: Mapped[dict[str, float] | None] = mapped_column(JSON)  # by phase, as summary
    total_seconds: Mapped[float | None] = mapped_column(Float)
    solve_seconds: Mapped[float | None] = mapped_column(Float)
    model_rows: Mapped[int | None] = mapped_column(Integer)
    model_columns: Mapped[int | None] = mapped_column(Integer)
    model_nonzeros: Mapped[int | None] = mapped_column(BigInteger)
    model_integers: Mapped[int | None] = mapped_column(Integer)
    mip_gap: Mapped[float | None] = mapped_column(Float)
    folder: Mapped[str] = mapped_column(Text)  # absolute path of the run folder (--out)
    summary_sha256: Mapped[str | None] = mapped_column(String(64))  # the folder still ours?
    warnings: Mapped[list[str] | None] = mapped_column(JSON)
    notes: Mapped[list[str] | None] = mapped_column(JSON)

    stages: Mapped[list[RunStage]] = relationship(
        back_populates="run", order_by="RunStage.position", cascade="all, delete-orphan",
        passive_deletes=True)
    inputs: Mapped[list[RunInput]] = relationship(
        back_populates="run", order_by="RunInput.name", cascade="all, delete-orphan",
        passive_deletes=True)
    constraints: Mapped[list[RunConstraint]] = relationship(
        back_populates="run", order_by="RunConstraint.rank", cascade="all, delete-orphan",
        passive_deletes=True)

    __table_args__ = (
        Index("ix_runs_scenario_started", "scenario_name", "started_at"),
        Index("ix_runs_status", "status"),
    )


class RunStage(Base):
    __tablename__ = "run_stages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(100))
    status: Mapped[str | None] = mapped_column(String(40))
    objective: Mapped[float | None] = mapped_column(Float)
    plan_value: Mapped[float | None] = mapped_column(Float)
    bound: Mapped[float | None] = mapped_column(Float)
    gap: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)

    run: Mapped[Run] = relationship(back_populates="stages")


class RunInput(Base):
    __tablename__ = "run_inputs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    source: Mapped[str | None] = mapped_column(Text)
    rows: Mapped[int | None] = mapped_column(Integer)
    sha256_16: Mapped[str | None] = mapped_column(String(64))

    run: Mapped[Run] = relationship(back_populates="inputs")


class RunConstraint(Base):
    """One of the run's top binding constraints (bottlenecks.csv, ranked by impact), by its
    business labels (budget B-SOU, site LEE's capacity), with its shadow price and range."""

    __tablename__ = "run_constraints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    stage: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str | None] = mapped_column(String(40))  # constraint | input
    family: Mapped[str | None] = mapped_column(String(100))  # budget, capacity, fte, ...
    labels: Mapped[str | None] = mapped_column(Text)  # business ids
    activity: Mapped[float | None] = mapped_column(Float)
    rhs: Mapped[float | None] = mapped_column(Float)
    dual: Mapped[float | None] = mapped_column(Float)  # shadow price, objective per unit rhs
    rhs_low: Mapped[float | None] = mapped_column(Float)
    rhs_high: Mapped[float | None] = mapped_column(Float)
    range_kind: Mapped[str | None] = mapped_column(String(20))
    impact: Mapped[float | None] = mapped_column(Float)
    sentence: Mapped[str | None] = mapped_column(Text)

    run: Mapped[Run] = relationship(back_populates="constraints")
