"""The benchmark suite: allocator vs the floor vs the peers, phase by phase, side by side.

    python benchmarks/run.py [--sizes small,medium,large] [--repeats 3] [--out benchmarks/results]

Every configuration runs in its own fresh process (``worker.py``), so that timings and peak
memory of one do not pollute another; repeats are separate processes too, and the tables
show medians. Results: ``<out>/results.csv`` (long form, one row per size, configuration and
figure), ``<out>/results.md`` (the tables of the README) and ``<out>/raw.jsonl`` (every run).

This process imports the standard library only: a child's peak RSS can start from its
parent's on Linux, and the parent must not be the one measured.
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import BENCH, DEFAULT_SEED, REPO

SIZES = ("tiny", "small", "medium", "large", "xl")
DEFAULT_SIZES = "small,medium"
PEERS = ("linopy", "pyoframe", "pulp")
OVERHEAD = ("load", "validate", "formulate", "handover", "solve_glue", "extract", "write")
TARGETS = {"build_vs_floor": 2.0, "overhead_pct": 10.0, "warm_speedup": 3.0,
           "memory_vs_floor": 1.3}


@dataclass
class Job:
    size: str
    label: str  # what the tables call it
    config: str  # worker.py's CONFIG
    args: list[str] = field(default_factory=list)
    repeats: int = 1
    timeout: float = 1800.0
    note: str = ""


def plan(size: str, opts: argparse.Namespace) -> list[Job]:
    """What to run for one size. Solves are the expensive part: the core pipeline is timed
    with the fastest method (``--core-method``), the by-hand method comparison and the
    end-to-end run with default settings run once each, and the slow ones are bounded."""
    big = size in ("large", "xl")
    full = opts.full or size in ("tiny", "small")
    r = opts.repeats
    fast = opts.core_method
    limit = ["--time-limit", str(opts.time_limit)] if opts.time_limit else []
    # Cheap and most telling first: on large a single solve can take most of an hour.
    jobs = [Job(size, "floor", "floor", ["--method", fast], r)]
    if size in ("tiny", "small", "medium"):
        jobs.insert(0, Job(size, "check", "check", [], 1))
    for peer in opts.peers:
        solve = ["--solve", "--method", fast] if size in ("tiny", "small") else []
        jobs.append(Job(size, f"peer:{peer}", "peer", ["--peer", peer, *solve],
                        1 if big else r, timeout=opts.peer_timeout))
    bounded = ["--deadline", str(opts.solve_deadline)]
    slow = 6 * opts.solve_deadline + 600  # wall: the machine may be shared
    jobs.append(Job(size, "allocator", "allocator", ["--method", fast, *limit, *bounded],
                    1 if big else r, timeout=slow))
    if not big or opts.full:  # on large, the same solve again: its memory and by-hand time
        jobs.append(Job(size, f"floor+solve:{fast}", "floor",
                        ["--method", fast, "--solve", *limit, *bounded], 1, timeout=slow))
    if full:
        other = "simplex" if fast != "simplex" else "ipm"
        jobs.append(Job(size, f"floor+solve:{other}", "floor",
                        ["--method", other, "--solve", *limit, *bounded], 1, timeout=slow))
    if not big or opts.full:
        jobs.append(Job(size, f"warm:{fast}", "warm", ["--method", fast, *bounded], 1,
                        timeout=slow))
    if full:
        jobs.append(Job(size, "warm:auto", "warm", ["--method", "auto", *bounded], 1,
                        timeout=slow))
    # The product as a user runs it: default method, sensitivity and report on.
    deadline = opts.deadline if not full else opts.full_deadline
    jobs.append(Job(size, "allocator:default", "allocator",
                    ["--method", "auto", "--analysis", *limit, "--deadline", str(deadline)], 1,
                    timeout=5 * deadline + 300))
    return jobs


def _commit() -> str:
    """The allocator's commit, with '+dirty' if allocator/ has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "allocator"], cwd=REPO,
                               text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def run_job(job: Job, repeat: int, instance: Path, out: Path) -> dict[str, Any]:
    stem = f"{job.size}-{job.label.replace(':', '-')}-{repeat}"
    (out / "raw").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    target = out / "raw" / f"{stem}.json"
    target.unlink(missing_ok=True)
    cmd = [sys.executable, str(BENCH / "worker.py"), job.config, "--instance", str(instance),
           "--json", str(target), "--size", job.size, *job.args]
    start = time.perf_counter()
    record: dict[str, Any] = {"size": job.size, "label": job.label, "repeat": repeat,
                              "cmd": " ".join(cmd[1:]), "commit": _commit(),
                              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    with (out / "logs" / f"{stem}.log").open("w") as log:
        try:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                  timeout=job.timeout, check=False)
            record["returncode"] = proc.returncode
        except subprocess.TimeoutExpired:
            record["returncode"] = None
            record["stopped"] = f"killed after {job.timeout:g} s"
    record["process_wall"] = time.perf_counter() - start
    if target.exists():
        if record.get("stopped"):  # the figures were written; only the teardown was cut short
            record["teardown"] = record.pop("stopped")
        record.update(json.loads(target.read_text()))
    elif "stopped" not in record:
        record["error"] = f"no result; see logs/{stem}.log"
    return record


# -- aggregation ---------------------------------------------------------------------------
def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None and v == v]
    return statistics.median(values) if values else None


def aggregate(records: list[dict[str, Any]], clock: str = "cpu"
              ) -> dict[tuple[str, str], dict[str, Any]]:
    """(size, label) -> medians of every phase (on `clock`: "cpu" or "wall") and memory
    figure, n, and notes."""
    key_of = "cpu" if clock == "cpu" else "phases"
    records = [{**r, "phases": r.get(key_of) or r.get("phases")} for r in records]
    for r in records:  # killed after writing its figures: only the teardown was cut short
        if r.get("phases") and str(r.get("stopped", "")).startswith("killed"):
            r["teardown"] = r.pop("stopped")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault((rec["size"], rec["label"]), []).append(rec)
    out = {}
    for key, recs in groups.items():
        ok = [r for r in recs if r.get("phases")]
        phases = sorted({p for r in ok for p in r["phases"]})
        mem = sorted({m for r in ok for m in r.get("memory", {})})
        agg: dict[str, Any] = {
            "n": len(ok),
            "phases": {p: _median([r["phases"].get(p) for r in ok]) for p in phases},
            "spread": {p: (min(v), max(v)) for p in phases
                       if (v := [r["phases"][p] for r in ok if r["phases"].get(p) is not None])},
            "memory": {m: _median([r["memory"].get(m) for r in ok]) for m in mem},
            "notes": sorted({r[k] for r in recs for k in ("stopped", "error") if r.get(k)}),
            "last": ok[-1] if ok else (recs[-1] if recs else {}),
        }
        out[key] = agg
    return out


def _get(agg: dict, size: str, label: str, *path: str) -> Any:
    node: Any = agg.get((size, label))
    for part in path:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _overhead(phases: dict[str, float]) -> float:
    return sum(phases.get(p) or 0.0 for p in OVERHEAD)


def metrics(agg: dict, size: str, fast: str) -> dict[str, Any]:
    """The ratios against the targets, for one size (None where not measured)."""
    m: dict[str, Any] = {}
    a = _get(agg, size, "allocator", "phases") or {}
    f = _get(agg, size, "floor", "phases") or {}
    if a and f:
        m["build_allocator"] = a["formulate"] + a["handover"]
        m["build_floor"] = f["formulate"] + f["handover"]
        m["build_vs_floor"] = m["build_allocator"] / m["build_floor"]
    if a.get("solver"):
        m["overhead_s"] = _overhead(a)
        m["overhead_pct"] = 100 * m["overhead_s"] / a["solver"]
        m["solver_core"] = a["solver"]
    d = _get(agg, size, "allocator:default", "phases") or {}
    stopped = _get(agg, size, "allocator:default", "last", "stopped")
    if d:
        m["default_total"] = d.get("total")
        status = _get(agg, size, "allocator:default", "last", "status")
        m["default_stopped"] = bool(stopped) or status not in (None, "optimal")
        m["default_status"] = status
        m["default_solver"] = d.get("solver")
        if d.get("solver") and not m["default_stopped"]:
            m["overhead_pct_default"] = 100 * _overhead(d) / d["solver"]
    hand = {}
    for method in ("simplex", "ipm", "auto"):
        ph = _get(agg, size, f"floor+solve:{method}", "phases")
        if ph and ph.get("solver"):
            hand[method] = ph
    if hand:
        best = min(hand, key=lambda k: hand[k]["solver"])
        m["fastest_method"] = best
        m["fastest_solver"] = hand[best]["solver"]
        m["fastest_total"] = hand[best]["total"]
        m["hand"] = {k: v["solver"] for k, v in hand.items()}
        if d.get("total"):
            m["default_vs_fastest"] = d["total"] / hand[best]["total"]
    w = _get(agg, size, f"warm:{fast}", "phases")
    if w and w.get("warm"):
        m["warm"] = w["warm"]
        m["cold"] = w["cold"]
        m["warm_speedup"] = w["cold"] / w["warm"]
    wa = _get(agg, size, "warm:auto", "phases")
    if wa and wa.get("warm"):
        m["warm_speedup_auto"] = wa["cold"] / wa["warm"]
        m["cold_auto"] = wa["cold"]
    am = _get(agg, size, "allocator", "memory") or {}
    fm = _get(agg, size, f"floor+solve:{fast}", "memory") or {}
    if am.get("maxrss_end") and fm.get("maxrss_end"):
        m["mem_allocator"] = am["maxrss_end"]
        m["mem_floor"] = fm["maxrss_end"]
        m["memory_vs_floor"] = am["maxrss_end"] / fm["maxrss_end"]
        above_a = am["maxrss_end"] - am.get("rss_after_imports", 0)
        above_f = fm["maxrss_end"] - fm.get("rss_after_imports", 0)
        m["memory_above_imports_vs_floor"] = above_a / above_f if above_f > 0 else None
    fh = _get(agg, size, "floor", "memory") or {}
    if am.get("hwm_after_handover") and fh.get("hwm_after_handover"):
        m["mem_at_handover_allocator"] = am["hwm_after_handover"]
        m["mem_at_handover_floor"] = fh["hwm_after_handover"]
        m["memory_at_handover_vs_floor"] = am["hwm_after_handover"] / fh["hwm_after_handover"]
    return m


# -- output --------------------------------------------------------------------------------
def _s(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _verdict(value: float | None, target: float, higher_is_better: bool = False) -> str:
    if value is None:
        return "not measured"
    if higher_is_better:
        return "met" if value >= target else f"missed ({value / target:.2f}× of target)"
    return "met" if value <= target else f"missed by {value / target:.2f}×"


def write_results(records: list[dict[str, Any]], out: Path, sizes: list[str],
                  opts: argparse.Namespace) -> str:
    fast = opts.core_method
    clocks = {clock: aggregate(records, clock) for clock in ("cpu", "wall")}
    with (out / "results.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["size", "config", "figure", "median", "min", "max", "n", "note"])
        for clock, by_key in clocks.items():
            for (size, label), a in sorted(by_key.items()):
                note = "; ".join(a["notes"])
                for phase, value in a["phases"].items():
                    lo, hi = a["spread"].get(phase, (None, None))
                    writer.writerow([size, label, f"{clock}_s.{phase}", value, lo, hi, a["n"],
                                     note])
                if clock == "cpu":
                    for key, value in a["memory"].items():
                        writer.writerow([size, label, f"MiB.{key}", value, "", "", a["n"], note])
            for size in sizes:
                for key, value in metrics(by_key, size, fast).items():
                    if isinstance(value, int | float | bool):
                        writer.writerow([size, f"ratios ({clock})", key, value, "", "", "", ""])

    agg = clocks[opts.clock]
    other = clocks["wall" if opts.clock == "cpu" else "cpu"]
    other_name = "wall" if opts.clock == "cpu" else "CPU"
    lines = [f"# Benchmark results ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"Machine: {platform.machine()}, Python {platform.python_version()}; seed "
             f"{opts.seed}; budgets `{getattr(opts, 'budgets', 'nested')}`; core method "
             f"`{fast}`; medians of up to {opts.repeats} runs, each a "
             f"fresh process. Times are {'process CPU' if opts.clock == 'cpu' else 'wall'} "
             f"seconds ({other_name} time in brackets in the first table, and in results.csv).",
             "Allocator commits measured: "
             + (", ".join(sorted({str(r.get("commit", "unknown")) for r in records
                                  if r.get("size") in sizes})) or "unknown") + ".", ""]
    # 1. targets
    lines += ["## Against the targets", "",
              "| figure | " + " | ".join(sizes) + " | target |",
              "|---|" + "---|" * len(sizes) + "---|"]
    ms = {size: metrics(agg, size, fast) for size in sizes}
    ms_other = {size: metrics(other, size, fast) for size in sizes}

    def row(title: str, key: str, target: str, fmt=lambda v: _s(v)) -> None:
        cells = []
        for size in sizes:
            cell = fmt(ms[size].get(key))
            alt = ms_other[size].get(key)
            if isinstance(alt, float) and cell != "–" and not key.startswith("memory"):
                cell += f" [{fmt(alt).split(' (')[0]}]"
            cells.append(cell)
        lines.append(f"| {title} | " + " | ".join(cells) + f" | {target} |")

    row("formulate + hand-over vs floor", "build_vs_floor", "≤ 2×",
        lambda v: "–" if v is None else f"{v:.2f}× ({_verdict(v, 2.0)})")
    row("overhead / solver time, core run", "overhead_pct", "≤ 10%",
        lambda v: "–" if v is None else f"{v:.1f}% ({_verdict(v, 10.0)})")
    row("overhead / solver time, default run", "overhead_pct_default", "≤ 10%",
        lambda v: "–" if v is None else f"{v:.1f}%")
    row("warm re-solve speed-up (cold / warm)", "warm_speedup", "≥ 3×",
        lambda v: "–" if v is None else f"{v:.1f}× ({_verdict(v, 3.0, True)})")
    row("warm re-solve speed-up vs cold default method", "warm_speedup_auto", "≥ 3×",
        lambda v: "–" if v is None else f"{v:.1f}×")
    row("peak memory vs floor (ru_maxrss)", "memory_vs_floor", "≤ 1.3×",
        lambda v: "–" if v is None else f"{v:.2f}× ({_verdict(v, 1.3)})")
    row("peak memory above imports vs floor", "memory_above_imports_vs_floor", "",
        lambda v: "–" if v is None else f"{v:.2f}×")
    row("peak memory up to the hand-over vs floor", "memory_at_handover_vs_floor", "≤ 1.3×",
        lambda v: "–" if v is None else f"{v:.2f}× ({_verdict(v, 1.3)})")
    row("end-to-end default vs fastest method by hand", "default_vs_fastest", "",
        lambda v: "–" if v is None else f"{v:.1f}×")
    if any(ms[s].get("default_stopped") for s in sizes):  # then a lower bound
        cells = lines[-1].split(" | ")
        for n, size in enumerate(sizes, start=1):
            if ms[size].get("default_stopped") and cells[n] != "–":
                cells[n] = "≥ " + cells[n] + " (default run stopped or without a plan)"
        lines[-1] = " | ".join(cells)
    row("fastest method by hand", "fastest_method", "")
    lines.append("")

    # 2. phases
    phase_cols = ("load", "validate", "formulate", "handover", "solver", "solve_glue",
                  "sensitivity", "sensitivity_highs", "extract", "report", "write", "total")
    lines += ["## Phases (median seconds; peak RSS MiB)", "",
              "| size | configuration | n | " + " | ".join(phase_cols) + " | peak MiB |",
              "|---|---|---|" + "---|" * (len(phase_cols) + 1)]
    for size in sizes:
        for (s2, label), a in sorted(agg.items(), key=lambda kv: kv[0][1]):
            if s2 != size or not a["phases"] or label.startswith("warm"):
                continue
            ph = dict(a["phases"])
            if "sets" in ph:  # floor and peers: sets+build is their formulate
                ph["formulate"] = ph.get("formulate")
            if "solve" in ph and "solver" not in ph:
                ph["solver"] = ph["solve"]
            cells = [_s(ph.get(c), 3) for c in phase_cols]
            stop = " (stopped)" if a["notes"] or a["last"].get("stopped") else ""
            lines.append(f"| {size} | {label}{stop} | {a['n']} | " + " | ".join(cells)
                         + f" | {_s(a['memory'].get('maxrss_end'), 0)} |")
    lines.append("")

    # 3. peers
    lines += ["## Peers: build + hand-over (median seconds) and ratio to the floor", "",
              "| size | model | sets | build | hand-over | build+hand-over | × floor | "
              "× allocator | peak MiB | service objective |", "|---|" + "---|" * 9]
    for size in sizes:
        base = ms[size].get("build_floor")
        mine = ms[size].get("build_allocator")
        for label in ["allocator", "floor", *[f"peer:{p}" for p in opts.peers]]:
            a = agg.get((size, label))
            if not a or not a["phases"]:
                note = "; ".join(a["notes"]) if a else "not run"
                lines.append(f"| {size} | {label} | " + " | ".join(["–"] * 7) + f" | {note} |")
                continue
            ph = a["phases"]
            total = (ph.get("formulate") or 0) + (ph.get("handover") or 0)
            stages = a["last"].get("stages") or []
            obj = f"{stages[0]['objective']:.10g}" if stages else ""
            lines.append(
                f"| {size} | {label} | {_s(ph.get('sets'), 3)} | "
                f"{_s(ph.get('build', ph.get('formulate')), 3)} | {_s(ph.get('handover'), 3)} | "
                f"{_s(total, 3)} | {_s(total / base if base else None)} | "
                f"{_s(total / mine if mine else None)} | "
                f"{_s(a['memory'].get('maxrss_end'), 0)} | {obj} |")
    lines.append("")

    # 4. methods, warm start, default run
    lines += ["## Methods by hand, warm start, the default run", ""]
    for size in sizes:
        m = ms[size]
        hand = m.get("hand", {})
        parts = [f"{k} {v:.2f} s" for k, v in sorted(hand.items())]
        lines.append(f"- **{size}**: solver time by hand (both stages): "
                     f"{', '.join(parts) or '–'}.")
        d = agg.get((size, "allocator:default"))
        if d and d["phases"]:
            ph = d["phases"]
            last = d["last"]
            state = (f"{last.get('stopped')}, while in "
                     f"{' > '.join(last.get('running', [])) or '?'}"
                     if last.get("stopped") else
                     f"exit code {last.get('exit_code')}, {last.get('status')}")
            lines.append(
                f"  Default settings end to end: {_s(ph.get('total'))} s ({state}); stage "
                f"solves {_s(ph.get('solver'))} s, sensitivity {_s(ph.get('sensitivity'))} s "
                f"+ {_s(ph.get('sensitivity_highs'))} s of HiGHS re-solves "
                f"({last.get('highs_runs', '?')} HiGHS runs in all), report "
                f"{_s(ph.get('report'))} s, write {_s(ph.get('write'))} s; HiGHS iterations "
                f"{last.get('highs', {})}; on the spare core, off the total: "
                f"{_s(sum((last.get('background_cpu') or {}).values()))} CPU s (an earlier "
                "stage's sensitivity, run while the next stage solves).")
        for label in (f"warm:{fast}", "warm:auto"):
            w = agg.get((size, label))
            if w and w["phases"]:
                ph, last = w["phases"], w["last"]
                lines.append(
                    f"  Warm start ({label.split(':')[1]} cold, simplex warm), budget "
                    f"{last.get('budget', {}).get('label')} cut 5%: cold "
                    f"{_s(ph.get('cold'))} s, warm {_s(ph.get('warm'), 3)} s "
                    f"({last.get('highs', {}).get('warm_simplex_iterations')} simplex "
                    f"iterations); objectives warm {last['objectives']['warm']:.10g}, "
                    f"cold {last['objectives']['cold']:.10g}.")
    checked = [r for r in records if r.get("label") == "check" and r.get("size") in sizes]
    if checked:
        said = [f"{r['size']} " + ("yes" if r.get("identical") else f"NO {r.get('checks')}")
                for r in checked]
        lines += ["", "Floor and allocator build the same LP (matrix, bounds, objectives, "
                  "entry by entry): " + ", ".join(said) + "."]
    notes = sorted({f"{s}/{lab}: {n}" for (s, lab), a in agg.items() for n in a["notes"]})
    if notes:
        lines += ["", "Notes:", *[f"- {n}" for n in notes]]
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    return text


def _read_raw(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES,
                        help=f"comma-separated, of {', '.join(SIZES)} (xl only when named)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(BENCH / "results"))
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--budgets", default="nested", choices=["nested", "site"],
                        help="the generator's budgets: nested (coupling rows: interior point "
                             "is fastest) or site (none: dual simplex is)")
    parser.add_argument("--core-method", default="ipm", choices=["auto", "simplex", "ipm"],
                        help="method of the repeated core-pipeline runs (the fastest here)")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help="comma-separated peers, or 'none'")
    parser.add_argument("--peer-timeout", type=float, default=300.0)
    parser.add_argument("--time-limit", type=float, default=None,
                        help="solver.time_limit for the solving runs (default: the "
                             "scenario's, 600 s)")
    parser.add_argument("--deadline", type=float, default=180.0,
                        help="stop the default-settings end-to-end run after this many CPU s")
    parser.add_argument("--solve-deadline", type=float, default=1800.0,
                        help="stop any other solving run after this many CPU s")
    parser.add_argument("--only", default="",
                        help="comma-separated labels to run, or prefixes ending in ':', "
                             "e.g. 'allocator,floor,peer:'")
    parser.add_argument("--append", action="store_true",
                        help="keep <out>/raw.jsonl and add to it (with --only, to fill gaps)")
    parser.add_argument("--full", action="store_true",
                        help="also, on every size: simplex by hand, warm start against a cold "
                             "default-method solve, and the default run up to --full-deadline")
    parser.add_argument("--full-deadline", type=float, default=3600.0)
    parser.add_argument("--clock", default="cpu", choices=["cpu", "wall"],
                        help="the clock of the tables (both are in results.csv)")
    parser.add_argument("--merge", default="",
                        help="with --report-only: comma-separated results folders whose runs "
                             "replace this one's for the same size and configuration (the "
                             "merged runs are then written to <out>/raw.jsonl)")
    parser.add_argument("--report-only", action="store_true",
                        help="rebuild results.csv/.md from <out>/raw.jsonl without running")
    opts = parser.parse_args()
    sizes = [s.strip() for s in opts.sizes.split(",") if s.strip()]
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        parser.error(f"unknown sizes {bad}; choose from {SIZES}")
    opts.peers = [] if opts.peers == "none" else [p for p in opts.peers.split(",") if p]
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    raw = out / "raw.jsonl"
    if opts.report_only:
        records = _read_raw(raw)
        for extra in filter(None, opts.merge.split(",")):
            more = _read_raw(Path(extra) / "raw.jsonl")
            replaced = {(r["size"], r["label"]) for r in more}
            records = [r for r in records if (r["size"], r["label"]) not in replaced] + more
        if opts.merge:
            raw.write_text("".join(json.dumps(r, default=float) + "\n" for r in records))
        present = [s for s in SIZES if any(r["size"] == s for r in records)]
        print(write_results(records, out, [s for s in sizes if s in present] or present, opts))
        return
    records: list[dict[str, Any]] = []
    if opts.append and raw.exists():
        records = [json.loads(line) for line in raw.read_text().splitlines() if line.strip()]
    else:
        raw.write_text("")
    only = [o.strip() for o in opts.only.split(",") if o.strip()]
    for size in sizes:
        shape = "" if opts.budgets == "nested" else f"-{opts.budgets}-budgets"
        instance = out / "instances" / f"{size}-seed{opts.seed}{shape}"
        gen = run_job(Job(size, "generate", "generate",
                          ["--seed", str(opts.seed), "--budgets", opts.budgets]), 0,
                      instance, out)
        if gen.get("returncode") != 0:
            sys.exit(f"could not generate {size}: {gen}")
        for job in plan(size, opts):
            if only and job.label not in only and not any(
                    o.endswith(":") and job.label.startswith(o) for o in only):
                continue
            if opts.append:  # a label run again replaces what was there
                records = [r for r in records if (r["size"], r["label"]) != (size, job.label)]
            for repeat in range(job.repeats):
                print(f"[{time.strftime('%H:%M:%S')}] {size:6} {job.label:22} run "
                      f"{repeat + 1}/{job.repeats}", flush=True)
                record = run_job(job, repeat, instance, out)
                records.append(record)
                raw.write_text("".join(json.dumps(r, default=float) + "\n" for r in records))
                if record.get("error"):
                    print(f"    {record['error']}", flush=True)
        write_results(records, out, [s for s in sizes if any(r["size"] == s for r in records)],
                      opts)
    print(write_results(records, out, sizes, opts))


if __name__ == "__main__":
    main()
