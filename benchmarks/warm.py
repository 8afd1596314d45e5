"""Warm start from last night, measured: day 2 solved cold and warm from day 1's run folder.

    .venv/bin/python benchmarks/warm.py --size medium [--seed 0] [--repeats 1] [--work DIR]

Day 1 is `allocator generate --size SIZE`; day 2 is day 1 with 1% of the demands changed (by
-10%..+10%), 0.1% of the staff gone and as many new (copies of other people's rows under new
ids, so that they fit the instance). Each run is the real CLI in its own process (`allocator
solve ... --no-store`, default settings: sensitivity report and report.html on), cold
(`--cold`) and warm (`--warm-from DAY1_FOLDER`) in turn. Reported: the solve phase and the
whole run (wall seconds from summary.json; the machine is shared, so the process's CPU
seconds too), the objectives of both and the largest FTE difference between the two plans.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from allocator.datagen import SIZES, generate_ops, write_ops_instance  # noqa: E402


def day_two(tables: dict[str, pd.DataFrame], seed: int, demand_share: float = 0.01,
            staff_share: float = 0.001) -> dict[str, pd.DataFrame]:
    """The next night's data: a few demands moved, a few people gone and a few new."""
    rng = np.random.default_rng(seed + 1)
    out = {name: frame.copy() for name, frame in tables.items()}
    targets = out["targets"]
    moved = rng.choice(len(targets), max(1, round(demand_share * len(targets))), replace=False)
    targets.loc[moved, "demand"] = np.round(
        targets.loc[moved, "demand"].to_numpy() * rng.uniform(0.9, 1.1, moved.size), 2)
    staff = out["staff"]
    count = max(1, round(staff_share * len(staff)))
    gone = rng.choice(len(staff), count, replace=False)
    new = staff.iloc[rng.choice(len(staff), count, replace=False)].copy()
    new["staff_id"] = [f"NEW{k:05d}" for k in range(count)]
    out["staff"] = pd.concat([staff.drop(index=staff.index[gone]), new], ignore_index=True)
    return out


def solve(scenario: Path, out: Path, *extra: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "allocator.cli", "solve", str(scenario),
                           "--out", str(out), "--force", "--no-store", *extra],
                          capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"solve failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"summary": summary, "process_wall": wall,
            "cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)}


def solver_cpu(scenario: Path, warm_from: Path | None) -> dict:
    """The stages alone, in this process: the solver's CPU seconds (its thread's: HiGHS
    runs in the calling thread with threads = 1), which a shared machine disturbs far less
    than wall seconds; model loading into HiGHS included, as in the run's solve phase."""
    from allocator.run import PhaseClock, _prepare, settings_from
    from allocator.solvers.lexicographic import solve_stages, stage_objectives
    from allocator.warm import read_warm, start_backend

    scenario_, _formulation, built = _prepare(scenario, [], PhaseClock())
    objectives = stage_objectives(built.model, scenario_.objective.order,
                                  scenario_.objective.mode, {})
    settings = settings_from(scenario_)
    cpu, wall = time.thread_time(), time.perf_counter()
    warm = None if warm_from is None else read_warm(warm_from, built.model,
                                                   [o.name for o in objectives])
    backend, _notes = start_backend(built.model, scenario_.solver.name, settings, warm)
    result = solve_stages(built.model, objectives, scenario_.solver.name, settings,
                          scenario_.objective.rel_tol, scenario_.objective.abs_tol,
                          backend=backend)
    return {"cpu_s": time.thread_time() - cpu, "wall_s": time.perf_counter() - wall,
            "iterations": list(getattr(backend, "iterations", [])),
            "objectives": {s.name: s.objective for s in result.stages}}


def plan_difference(a: Path, b: Path) -> tuple[float, int]:
    keys = ["staff_id", "site_id", "service_id"]
    read = {"staff_id": str, "site_id": str, "service_id": str}
    pa, pb = pd.read_csv(a / "plan.csv", dtype=read), pd.read_csv(b / "plan.csv", dtype=read)
    both = pa.merge(pb, on=keys, how="outer", suffixes=("_a", "_b")).fillna(0.0)
    delta = (both["fte_a"] - both["fte_b"]).abs()
    return float(delta.max()) if len(delta) else 0.0, int((delta > 1e-6).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=list(SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--set", dest="sets", action="append", default=[],
                        help="extra --set KEY=VALUE for every solve")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="allocator-warm-"))
    tables = generate_ops(SIZES[args.size], args.seed)
    day1 = write_ops_instance(tables, work / "day1", f"{args.size}-warm")
    day2 = write_ops_instance(day_two(tables, args.seed), work / "day2", f"{args.size}-warm")
    sets = [x for item in args.sets for x in ("--set", item)]
    print(f"# {args.size} (seed {args.seed}), work folder {work}", flush=True)
    first = solve(day1, work / "run-day1", "--cold", *sets)
    size = first["summary"]["model_size"]
    print(f"day 1: {size['rows']:,} rows, {size['columns']:,} columns, "
          f"{size['nonzeros']:,} nonzeros; solve {first['summary']['seconds']['solve']:.2f} s",
          flush=True)
    rows = []
    for rep in range(args.repeats):
        for mode in ("cold", "warm"):
            extra = ["--cold"] if mode == "cold" else ["--warm-from", str(work / "run-day1")]
            found = solve(day2, work / f"run-day2-{mode}", *extra, *sets)
            s = found["summary"]
            rows.append({"repeat": rep, "mode": mode, "solve_s": s["seconds"]["solve"],
                         "total_s": s["seconds"]["total"], "process_wall_s":
                         found["process_wall"], "process_cpu_s": found["cpu"],
                         **{f"obj_{k}": v for k, v in s["objectives"].items()},
                         "notes": " | ".join(n for n in s["notes"] if "warm" in n)})
            print(json.dumps(rows[-1]), flush=True)
    frame = pd.DataFrame(rows)
    cold, warm = frame[frame["mode"] == "cold"], frame[frame["mode"] == "warm"]
    largest, differing = plan_difference(work / "run-day2-cold", work / "run-day2-warm")
    print()
    print("| | cold | warm | cold / warm |")
    print("|---|---|---|---|")
    for col, what in (("solve_s", "solve phase (s, wall)"), ("total_s", "whole run (s, wall)"),
                      ("process_cpu_s", "process CPU (s)")):
        c, w = cold[col].median(), warm[col].median()
        print(f"| {what} | {c:.2f} | {w:.2f} | {c / w:.1f}x |")
    for col in [c for c in frame.columns if c.startswith("obj_")]:
        c, w = float(cold[col].iloc[-1]), float(warm[col].iloc[-1])
        print(f"| objective {col[4:]} | {c:.10g} | {w:.10g} | rel. diff "
              f"{abs(c - w) / max(abs(c), 1e-12):.1e} |")
    print(f"\nplans: {differing} plan rows differ, largest FTE difference {largest:.2e}")
    print(f"warm notes: {warm['notes'].iloc[-1]}")
    print("\nthe stages alone, in-process (solver thread CPU seconds):")
    inproc = {mode: solver_cpu(day2, None if mode == "cold" else work / "run-day1")
              for mode in ("cold", "warm")}
    for mode, found in inproc.items():
        print(f"  {mode}: cpu {found['cpu_s']:.2f} s, wall {found['wall_s']:.2f} s, simplex "
              f"iterations by stage {found['iterations']}, objectives {found['objectives']}")
    print(f"  cold / warm (CPU): {inproc['cold']['cpu_s'] / inproc['warm']['cpu_s']:.1f}x")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
