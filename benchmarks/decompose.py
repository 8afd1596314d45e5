"""Monolithic HiGHS against the decomposed solve on a LocalCluster of 1 and 2 workers.

Three modes: "monolithic" (HiGHS on the whole model), "decomposed" (the client builds the
whole model, then Dantzig-Wolfe on the cluster) and "partitioned" (`solve_partitioned` on a
copy of the same instance written by `allocator generate --partitioned`: each worker reads
and builds its own regions, the client never builds the model; its solve seconds include
the workers' reading and building, there is no build phase apart).

Each configuration runs in its own process (so the client's peak memory is its own):
wall seconds of the solve (cluster start excluded and reported apart), iterations, seconds
per iteration, peak resident memory of the client and of each worker, bytes sent per
iteration, and both bounds with the gap. The objectives are compared with the monolithic
ones in the same table (relative difference).

    python benchmarks/decompose.py --sizes small,medium --out benchmarks/results/decompose
    python benchmarks/decompose.py --one decomposed --workers 2 --scenario S.toml  # one row
    python benchmarks/decompose.py --sizes small \
        --configs monolithic,decomposed:2,partitioned:1,partitioned:2 \
        --out benchmarks/results/partitioned      # any mix of mode:workers, in that order
    python benchmarks/decompose.py --report-only --out benchmarks/results/partitioned
    python benchmarks/decompose.py --warm --sizes small --workers 2   # demand +-2%, warm prices
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def partitioned(scenario_path: Path, workers: int,
                time_limit: float | None = None) -> dict[str, Any]:
    """`solve_partitioned` on a partitioned instance, in this process: the client reads only
    the small tables, the workers read and build their regions (inside the solve seconds).
    `time_limit`: the run's own limit (the memory figures of a run too long to finish here;
    the row says it stopped)."""
    from allocator.decompose import entry
    from allocator.decompose.partitioned import solve_partitioned
    from allocator.scenario import load_scenario

    entry.request("regions", None, workers)
    scenario = load_scenario(scenario_path, [])
    row: dict[str, Any] = {"mode": "partitioned", "workers": workers}
    start = time.perf_counter()
    client, cluster = entry.connect(entry.Request("regions", None, workers))
    row["cluster_seconds"] = round(time.perf_counter() - start, 2)
    row["client_before_solve_mb"] = round(_peak() / 2**20)  # imports, scenario, cluster
    said: list[str] = []
    try:
        start = time.perf_counter()
        solved = solve_partitioned(scenario, client=client, workers=workers, say=said.append,
                                   time_limit=time_limit)
        seconds = time.perf_counter() - start
    finally:
        entry.close(client, cluster)
    info, result = solved.decomposition, solved.result
    iterations = int(info["iterations"])
    row.update(
        size=solved.size, solve_seconds=round(seconds, 2), status=result.status.value,
        message=result.message, objectives=result.objectives, iterations=iterations,
        seconds_per_iteration=round(seconds / max(1, iterations), 3),
        stages=info["stages"], blocks=info["blocks"], linking_rows=info["linking_rows"],
        block_columns=info["block_columns"], owners=info["owners"],
        bytes_per_iteration=round(info["bytes_sent"] / max(1, iterations)),
        setup_seconds=round(info["setup_seconds"], 2),
        client_peak_mb=round(_peak() / 2**20),
        client_peak_mb_at_stages_end=round(info["client_peak_bytes"] / 2**20),
        worker_peak_mb=[round(b / 2**20) for b in info["worker_peak_bytes"]],
        said=said, warnings=solved.warnings, time_limit=time_limit)
    return row


def one(mode: str, scenario_path: Path, workers: int,
        time_limit: float | None = None) -> dict[str, Any]:
    """One configuration, in this process: the figures as a dict."""
    if mode == "partitioned":  # before anything builds the model in this process
        return partitioned(scenario_path, workers, time_limit)
    from allocator.run import prepare
    from allocator.solvers.base import SolverSettings
    from allocator.solvers.lexicographic import solve_stages, stage_objectives

    began = time.perf_counter()
    scenario, built, _ = prepare(scenario_path, [])
    model = built.model
    objectives = stage_objectives(model, scenario.objective.order, scenario.objective.mode,
                                  dict(scenario.objective.weights))
    build_seconds = time.perf_counter() - began
    row: dict[str, Any] = {"mode": mode, "workers": workers, "size": model.size(),
                           "build_seconds": round(build_seconds, 2)}
    if mode == "monolithic":
        start = time.perf_counter()
        result = solve_stages(model, objectives, "highs", SolverSettings(),
                              scenario.objective.rel_tol, scenario.objective.abs_tol)
        row.update(solve_seconds=round(time.perf_counter() - start, 2),
                   objectives=result.objectives, client_peak_mb=round(_peak() / 2**20))
        return row
    from distributed import Client, LocalCluster

    from allocator.decompose import solve_decomposed

    start = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=40,
                           scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    client = Client(cluster)
    row["cluster_seconds"] = round(time.perf_counter() - start, 2)
    try:
        start = time.perf_counter()
        result, info = solve_decomposed(model, objectives, client=client, workers=workers,
                                        rel_tol=scenario.objective.rel_tol,
                                        abs_tol=scenario.objective.abs_tol)
        seconds = time.perf_counter() - start
    finally:
        client.close()
        cluster.close()
    iterations = sum(s.iterations for s in info.stages)
    row.update(
        solve_seconds=round(seconds, 2), status=result.status.value,
        objectives=result.objectives, iterations=iterations,
        seconds_per_iteration=round(seconds / max(1, iterations), 3),
        stages=[s.as_json() for s in info.stages], blocks=info.blocks,
        linking_rows=info.linking_rows, block_columns=info.block_columns,
        bytes_per_iteration=round(info.bytes_sent / max(1, iterations)),
        setup_seconds=round(info.seconds_setup, 2),
        client_peak_mb=round(_peak() / 2**20),
        worker_peak_mb=[round(b / 2**20) for b in info.worker_peak_bytes],
        history={s.name: s.history for s in info.stages})
    return row


def warm(size: str, seed: int, budgets: str, folder: Path, workers: int) -> dict[str, Any]:
    """Day 1 solved; day 2 (every demand moved by up to +-2%) solved cold and from day 1's
    prices: iterations and seconds of each, and day 2's objectives against monolithic."""
    import numpy as np
    from distributed import Client, LocalCluster

    from allocator.datagen import SIZES, generate_ops, write_ops_instance
    from allocator.decompose import solve_decomposed
    from allocator.run import prepare
    from allocator.solvers.base import SolverSettings
    from allocator.solvers.lexicographic import solve_stages, stage_objectives

    tables = generate_ops(SIZES[size], seed, budgets)
    targets = tables["targets"].copy()
    rng = np.random.default_rng(seed + 7)
    targets["demand"] = targets["demand"] * (1 + rng.uniform(-0.02, 0.02, len(targets)))
    paths = [write_ops_instance(tables, folder / "warm" / f"{size}-day1"),
             write_ops_instance({**tables, "targets": targets},
                                folder / "warm" / f"{size}-day2")]
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=40,
                           scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    client = Client(cluster)
    row: dict[str, Any] = {"instance": f"{size}-{seed}-{budgets}", "workers": workers}
    try:
        prices = None
        for name, path, start in (("day1", paths[0], None), ("day2 cold", paths[1], None),
                                  ("day2 warm", paths[1], "day1")):
            scenario, built, _ = prepare(path, [])
            objectives = stage_objectives(built.model, scenario.objective.order,
                                          scenario.objective.mode, {})
            began = time.perf_counter()
            result, info = solve_decomposed(built.model, objectives, client=client,
                                            workers=workers,
                                            warm_prices=prices if start else None)
            row[name] = {"seconds": round(time.perf_counter() - began, 2),
                         "iterations": [s.iterations for s in info.stages],
                         "objectives": result.objectives}
            if name == "day1":
                prices = info.all_prices
        mono = solve_stages(built.model, objectives, "highs", SolverSettings())
        row["day2 monolithic"] = {"objectives": mono.objectives}
    finally:
        client.close()
        cluster.close()
    return row


def _instance(size: str, seed: int, budgets: str, folder: Path) -> Path:
    from allocator.datagen import SIZES, generate_ops, write_ops_instance

    target = folder / "instances" / f"{size}-{seed}-{budgets}"
    if (target / "scenario.toml").exists():
        return target / "scenario.toml"
    return write_ops_instance(generate_ops(SIZES[size], seed, budgets), target)


def _partitioned_instance(size: str, seed: int, budgets: str, folder: Path) -> Path:
    """The same instance (same size, seed and budgets: the same data) as Parquet folders
    by region, written by `allocator generate --partitioned`."""
    target = folder / "instances" / f"{size}-{seed}-{budgets}-partitioned"
    if (target / "scenario.toml").exists():
        return target / "scenario.toml"
    cli = Path(sys.executable).parent / "allocator"
    subprocess.run([str(cli), "generate", "--size", size, "--seed", str(seed), "--budgets",
                    budgets, "--partitioned", "--out", str(target)], check=True, cwd=ROOT)
    return target / "scenario.toml"


def _table(rows: list[dict[str, Any]]) -> str:
    lines = ["| size | configuration | solve s | iterations | s / iteration | client MB | "
             "worker MB | bytes / iteration | final gaps | objective vs monolithic |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    mono = {r["instance"]: r for r in rows if r["mode"] == "monolithic"}
    for r in rows:
        base = mono.get(r["instance"])
        diff = ""
        if base is not None and r["mode"] != "monolithic":
            diff = ", ".join(
                f"{k} {abs(v - base['objectives'][k]) / max(1.0, abs(base['objectives'][k])):.1e}"
                for k, v in r["objectives"].items())
        gaps = ", ".join(f"{s['gap']:.1e}" for s in r.get("stages", []) if s["gap"] is not None)
        config = "monolithic" if r["mode"] == "monolithic" else f"{r['mode']}, {r['workers']} w"
        if r.get("time_limit") and r.get("status") != "optimal":
            config += f", stopped at its {r['time_limit']:g} s limit ({r.get('status')})"
            diff = "not finished"
        lines.append(
            f"| {r['instance']} | {config} | {r['solve_seconds']} | {r.get('iterations', '')} "
            f"| {r.get('seconds_per_iteration', '')} | {r['client_peak_mb']} | "
            f"{', '.join(map(str, r.get('worker_peak_mb', [])))} | "
            f"{r.get('bytes_per_iteration', '')} | {gaps} | {diff} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="small,medium")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budgets", default="nested", choices=["nested", "site"])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/decompose")
    parser.add_argument("--configs",
                        help="mode:workers in order, e.g. monolithic,decomposed:2,partitioned:1 "
                             "(default: monolithic, then decomposed on each of --workers)")
    parser.add_argument("--timeout", type=float, help="seconds before a configuration is "
                        "stopped (recorded in errors.jsonl)")
    parser.add_argument("--time-limit", type=float, help="partitioned rows: the run's own time "
                        "limit (its memory figures, iterations so far; the row says so)")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild results.md from the rows in --out/raw.jsonl")
    parser.add_argument("--one", choices=["monolithic", "decomposed", "partitioned"])
    parser.add_argument("--scenario", type=Path)
    parser.add_argument("--warm", action="store_true",
                        help="day 2 (demand +-2%%) cold against warm from day 1's prices")
    args = parser.parse_args()
    if args.warm:
        args.out.mkdir(parents=True, exist_ok=True)
        for size in args.sizes.split(","):
            row = warm(size, args.seed, args.budgets, args.out, int(args.workers.split(",")[-1]))
            print(json.dumps(row), flush=True)
            with (args.out / "warm.jsonl").open("a") as raw:
                raw.write(json.dumps(row) + "\n")
        return
    if args.one:
        print(json.dumps(one(args.one, args.scenario, int(args.workers), args.time_limit)))
        return
    if args.report_only:
        rows = [json.loads(line) for line in (args.out / "raw.jsonl").read_text().splitlines()
                if line.strip()]
        (args.out / "results.md").write_text(_table(rows) + "\n")
        print(_table(rows))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    if args.configs:
        configs = [(c.split(":")[0], int(c.split(":")[1]) if ":" in c else 0)
                   for c in args.configs.split(",")]
    else:
        configs = [("monolithic", 0)] + [("decomposed", int(w))
                                         for w in args.workers.split(",")]
    rows = []
    for size in args.sizes.split(","):
        instance = f"{size}-{args.seed}-{args.budgets}"
        paths = {}
        for mode, workers in configs:
            if mode not in paths:
                paths[mode] = (_partitioned_instance if mode == "partitioned" else _instance)(
                    size, args.seed, args.budgets, args.out)
            began, load_before = time.time(), os.getloadavg()
            code = subprocess.run(  # the tree may move between rows: say which code ran
                ["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                cwd=ROOT).stdout.strip()
            try:
                limit = ["--time-limit", str(args.time_limit)] if args.time_limit else []
                proc = subprocess.run([sys.executable, __file__, "--one", mode, "--scenario",
                                       str(paths[mode]), "--workers", str(workers), *limit],
                                      capture_output=True, text=True, cwd=ROOT,
                                      timeout=args.timeout)
                failed = proc.stderr[-3000:] if proc.returncode else None
            except subprocess.TimeoutExpired:
                failed = f"stopped after {args.timeout:g} s (--timeout)"
            if failed is not None:
                print(failed, file=sys.stderr)
                with (args.out / "errors.jsonl").open("a") as raw:
                    raw.write(json.dumps({"instance": instance, "mode": mode,
                                          "workers": workers, "started": began,
                                          "error": failed}) + "\n")
                continue
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["instance"] = instance
            row["started"] = began
            row["load_before"] = [round(x, 2) for x in load_before]  # 1, 5, 15 min
            row["load_after"] = [round(x, 2) for x in os.getloadavg()]
            row["code"] = code
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "history"}), flush=True)
            with (args.out / "raw.jsonl").open("a") as raw:
                raw.write(json.dumps(row) + "\n")
    (args.out / "results.md").write_text(_table(rows) + "\n")
    print(_table(rows))


if __name__ == "__main__":
    main()
