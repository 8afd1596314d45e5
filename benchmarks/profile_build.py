"""cProfile of the allocator's own Python work: load, validate, build, hand-over, extract, write.

    python benchmarks/profile_build.py [--size medium] [--method ipm] [--analysis]
                                       [--out benchmarks/results]

Runs ``solve_scenario`` (sensitivity and report off unless ``--analysis``) under cProfile and
writes ``profile-<size>.txt``: the functions with the most own time and the allocator
functions with the most cumulative time, with HiGHS's ``run`` left out (it is the solver's
time, not overhead). Also keeps the raw ``profile-<size>.prof`` for snakeviz or pstats.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import tempfile
import time
from pathlib import Path

from common import BENCH, DEFAULT_SEED


def _instance(size: str, seed: int, out: Path) -> Path:
    from allocator.datagen import SIZES, generate_ops, write_ops_instance

    folder = out / "instances" / f"{size}-seed{seed}"
    if not (folder / "scenario.toml").exists():
        write_ops_instance(generate_ops(SIZES[size], seed), folder, size)
    return folder / "scenario.toml"


def _table(stats: pstats.Stats, sort: str, limit: int, pattern: str = "") -> str:
    buffer = io.StringIO()
    stats.stream = buffer  # type: ignore[attr-defined]
    stats.sort_stats(sort)
    if pattern:
        stats.print_stats(pattern, limit)
    else:
        stats.print_stats(limit)
    text = buffer.getvalue()
    return text[text.find("   ncalls"):] if "   ncalls" in text else text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--method", default="ipm")
    parser.add_argument("--analysis", action="store_true")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--out", default=str(BENCH / "results"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scenario = _instance(args.size, args.seed, out)

    import allocator.run as run

    sets = [] if args.method == "auto" else [f'solver.method="{args.method}"']
    if not args.analysis:
        sets += ["output.sensitivity=false", "output.report=false"]
    tmp = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    profiler = cProfile.Profile()
    start = time.perf_counter()
    try:
        profiler.enable()
        outcome = run.solve_scenario(scenario, tmp / "out", sets)
        profiler.disable()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    wall = time.perf_counter() - start
    suffix = f"{args.size}{'-analysis' if args.analysis else ''}"
    profiler.dump_stats(out / f"profile-{suffix}.prof")
    stats = pstats.Stats(profiler)
    solver = sum(s.seconds for s in outcome.result.stages) if outcome.result else 0.0
    header = (f"# cProfile of solve_scenario on {args.size} (seed {args.seed}), method "
              f"{args.method}, analysis {'on' if args.analysis else 'off'}\n"
              f"# wall {wall:.2f} s under the profiler, of which HiGHS stage solves {solver:.2f}"
              f" s; the summary's own phase times: {outcome.summary.get('seconds')}\n")
    body = ["## own time (tottime), all functions", _table(stats, "tottime", args.limit),
            "## cumulative time, allocator functions",
            _table(stats, "cumulative", args.limit, "allocator/")]
    text = header + "\n".join(body)
    (out / f"profile-{suffix}.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
