"""What live progress costs, measured: the same lexicographic solve with and without it.

    .venv/bin/python benchmarks/progress.py --size medium [--seed 0] [--repeats 3]
        [--budgets nested|site] [--work DIR]

One process, one model (`allocator generate --size SIZE`, built once); the stages are solved
cold each time by the real stage solver on HiGHS, alternately without a listener (no HiGHS
callback subscribed: what `allocator.solve()` without `on_progress` runs) and with the
terminal display listening (rich's Live drawing four times a second into a terminal-like
console in memory, the board fed by every callback). Alternating (A B B A A B ...) spreads
the shared machine's drift, and the order's, over both. Reported per repeat and as medians:
wall seconds, this process's CPU seconds (all threads: HiGHS, the display's drawing
thread), the events the display got, and the spread of the plain runs (the noise the
overhead is compared with).
`--budgets site` gives a dual-simplex first stage (a callback every iteration), nested an
interior-point one (followed through its log lines).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402

from allocator.datagen import SIZES, generate_ops, write_ops_instance  # noqa: E402
from allocator.progress import Event, Live, solving  # noqa: E402
from allocator.run import prepare, settings_from  # noqa: E402
from allocator.solvers.lexicographic import solve_stages, stage_objectives  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium", choices=list(SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--budgets", default="nested", choices=["nested", "site"])
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-progress-"))
    scenario = write_ops_instance(generate_ops(SIZES[args.size], args.seed, args.budgets),
                                  work / "instance", f"{args.size}-progress")
    loaded, built, _ = prepare(scenario, [])
    model = built.model
    objectives = stage_objectives(model, loaded.objective.order, loaded.objective.mode,
                                  dict(loaded.objective.weights.items()))
    settings = settings_from(loaded)
    names = [o.name for o in objectives]
    size = model.size()
    print(f"# {args.size} ({args.budgets} budgets, seed {args.seed}): {size['rows']:,} rows, "
          f"{size['columns']:,} columns, {size['nonzeros']:,} nonzeros", flush=True)
    results: dict[str, list[tuple[float, float, int]]] = {"plain": [], "live": []}
    for repeat in range(args.repeats):
        for mode in ("plain", "live") if repeat % 2 == 0 else ("live", "plain"):
            events: list[Event] = []
            wall, cpu = time.perf_counter(), time.process_time()
            if mode == "plain":
                result = solve_stages(model, objectives, "highs", settings)
            else:
                screen = Console(file=io.StringIO(), force_terminal=True, width=100)
                display = Live(screen)

                def listen(event: Event, display: Live = display,
                           events: list[Event] = events) -> None:
                    events.append(event)
                    display(event)

                with display, solving(listen, names, "highs", model.maximize, None) as staged:
                    result = solve_stages(model, objectives, "highs", settings, on_stage=staged)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            results[mode].append((wall, cpu, len(events)))
            print(f"repeat {repeat + 1} {mode:5}: {wall:7.2f} s wall {cpu:7.2f} s CPU "
                  f"{len(events):6,} events  {result.status.value} "
                  f"{', '.join(f'{s.name} {s.objective:.10g}' for s in result.stages)}",
                  flush=True)
    plain_wall = statistics.median(r[0] for r in results["plain"])
    plain_cpu = statistics.median(r[1] for r in results["plain"])
    live_wall = statistics.median(r[0] for r in results["live"])
    live_cpu = statistics.median(r[1] for r in results["live"])
    spread = [r[1] for r in results["plain"]]
    print(f"median plain {plain_wall:.2f} s wall {plain_cpu:.2f} s CPU; live {live_wall:.2f} s "
          f"wall {live_cpu:.2f} s CPU; overhead {100 * (live_wall / plain_wall - 1):+.1f}% "
          f"wall {100 * (live_cpu / plain_cpu - 1):+.1f}% CPU; plain runs' CPU spread "
          f"{100 * (max(spread) - min(spread)) / plain_cpu:.1f}%")


if __name__ == "__main__":
    main()
