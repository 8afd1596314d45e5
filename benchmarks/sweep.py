"""A sweep of one budget against the same points as cold CLI runs, measured.

    .venv/bin/python benchmarks/sweep.py --size small [--points 21] [--workers 2]
    .venv/bin/python benchmarks/sweep.py --size medium --cold-runs 3   # extrapolated, said so

The instance is `allocator generate --size SIZE --seed SEED`; the budget varied is the first
regional budget (B-R01), from 80% to 120% of its amount in POINTS steps. Both sides are the
real CLI in its own process, timed by wall clock from the shell's point of view:

- sweep: `allocator sweep SCENARIO --vary 'budgets[B-R01].amount=LO:HI:POINTS' --workers W`
  (its own LocalCluster: starting it, loading the scenario on each worker, solving, writing
  the folder are all counted);
- cold: `allocator solve` of a copy of the scenario with budgets.csv edited, once per point,
  one after the other, default settings (sensitivity report and report.html on), as a
  person re-running hand-edited CSVs does; `--lean` also times them with
  `output.sensitivity=false output.report=false`.

`--cold-runs K` (K < POINTS) times K of the cold points (spread over the range) and reports
21 x their mean as the estimate for all of them, marked `extrapolated`; `--cold-runs 0`
times the sweep alone (to re-time it against cold figures measured before). Every cold run's stage
objectives are compared with the sweep's row for the same budget (relative 1e-6).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from allocator.datagen import SIZES, generate_ops, write_ops_instance  # noqa: E402

BUDGET = "B-R01"


def cli(*args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "allocator.cli", *args], capture_output=True,
                          text=True, cwd=REPO)
    return time.perf_counter() - started, proc


def cold_run(scenario: Path, amount: float, work: Path, lean: bool) -> tuple[float, dict]:
    case = work / "cold-case"
    if case.exists():
        shutil.rmtree(case)
    shutil.copytree(scenario.parent, case)
    budgets = pd.read_csv(case / "budgets.csv", dtype={"budget_id": str})
    budgets.loc[budgets["budget_id"] == BUDGET, "amount"] = amount
    budgets.to_csv(case / "budgets.csv", index=False, float_format="%.17g")
    extra = ["--set", "output.sensitivity=false", "--set", "output.report=false"] if lean \
        else []
    seconds, proc = cli("solve", str(case / "scenario.toml"), "--out", str(work / "cold-run"),
                        "--force", "--no-store", *extra)
    if proc.returncode != 0:
        raise RuntimeError(f"cold run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads((work / "cold-run" / "summary.json").read_text())
    return seconds, summary["objectives"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=list(SIZES), default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--points", type=int, default=21)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cold-runs", type=int, default=None,
                        help="cold runs timed (default: all points)")
    parser.add_argument("--lean", action="store_true",
                        help="also time cold runs without sensitivity and report")
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / "results" / "sweep")
    args = parser.parse_args()

    work = args.work / f"{args.size}-{args.seed}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    tables = generate_ops(SIZES[args.size], args.seed)
    scenario = write_ops_instance(tables, work / "instance",
                                  f"{args.size}-{args.seed}")
    amount = float(tables["budgets"].set_index("budget_id").loc[BUDGET, "amount"])
    low, high = 0.8 * amount, 1.2 * amount
    points = np.linspace(low, high, args.points)

    sweep_seconds, proc = cli("sweep", str(scenario), "--vary",
                              f"budgets[{BUDGET}].amount={low!r}:{high!r}:{args.points}",
                              "--workers", str(args.workers), "--out", str(work / "sweep"),
                              "--force", "--no-progress")
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed ({proc.returncode}): {proc.stderr[-3000:]}")
    rows = pd.read_csv(work / "sweep" / "sweep.csv")
    assert (rows["status"] == "optimal").all(), rows["status"].value_counts()

    count = args.points if args.cold_runs is None else min(args.cold_runs, args.points)
    chosen = np.unique(np.round(np.linspace(0, args.points - 1, count)).astype(int))
    results: dict[str, object] = {
        "size": args.size, "seed": args.seed, "points": args.points, "workers": args.workers,
        "sweep_seconds": round(sweep_seconds, 2),
        "sweep_warm_points": int(rows["warm"].astype(str).str.lower().eq("true").sum()),
        "sweep_point_seconds_median": round(float(rows["seconds"].median()), 3),
    }
    for lean in ([False, True] if args.lean else [False]) if count else []:
        times = []
        for k in chosen:
            seconds, objectives = cold_run(scenario, float(points[k]), work, lean)
            times.append(seconds)
            row = rows.iloc[k]
            for stage, value in objectives.items():
                got = float(row[f"objective_{stage}"])
                if abs(got - value) > 1e-6 * max(1.0, abs(value)):
                    raise SystemExit(f"point {k}: sweep {stage} {got} != cold {value}")
            print(f"cold{' lean' if lean else ''} point {k}: {seconds:.1f} s", flush=True)
        key = "cold_lean" if lean else "cold"
        total = float(np.mean(times)) * args.points
        results[f"{key}_runs_timed"] = len(times)
        results[f"{key}_run_seconds_mean"] = round(float(np.mean(times)), 2)
        results[f"{key}_seconds_for_all_points"] = round(total, 1)
        results[f"{key}_extrapolated"] = len(times) < args.points
        results[f"speedup_vs_{key}"] = round(total / sweep_seconds, 2)
    if count:
        results["checked"] = "every cold run's stage objectives equal the sweep's row (rel 1e-6)"
    print(json.dumps(results, indent=1))
    with open(args.work / "results.jsonl", "a") as handle:
        handle.write(json.dumps(results) + "\n")


if __name__ == "__main__":
    main()
