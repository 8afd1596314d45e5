"""One benchmark configuration in a fresh process: phases timed, peak memory read, JSON out.

    python benchmarks/worker.py CONFIG --instance DIR --json OUT [--method M] [--solve] ...

CONFIG is one of:

- ``generate``: write the seeded instance for ``--size`` into ``--instance`` (if missing);
- ``allocator``: ``allocator.run.solve_scenario`` as the CLI runs it, with timing wrappers
  around the functions it calls (nothing else changed), so each phase is the product's own;
- ``floor``: the same LP by hand (``floor.py``): read, sets, build, hand-over, [solve];
- ``warm``: the allocator's model in a loaded HiGHS: service stage cold, one budget row's
  bound moved, re-run warm, then the moved model solved cold in a new Highs;
- ``peer``: one of ``peers/`` (``--peer linopy|pyoframe|pulp``): sets, build, hand-over,
  [solve];
- ``check``: the floor's LP against the allocator's, entry by entry.

Memory: ``ru_maxrss`` (getrusage, the whole process's peak RSS, C allocations included, which
tracemalloc would miss) at the end, and ``VmHWM`` right after the hand-over (peak so far).
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import Phases, hwm_mb, maxrss_mb, rss_mb

ALLOCATOR_PHASES = ("load", "validate", "formulate", "handover", "solver", "solve_glue",
                    "sensitivity", "sensitivity_highs", "extract", "report", "write")
STATE: dict[str, Any] = {}  # what the deadline watchdog reports if the run is stopped


class Probe:
    """Exclusive (self) time per phase, like a profiler with a handful of entry points.

    Functions are wrapped in place, at their definition and at every reference that the
    allocator's modules hold (``from x import f``), so the product runs its own code; a
    wrapped call inside another one pauses the outer phase. A target that no longer exists is
    noted, not fatal (the allocator is developed alongside these benchmarks).

    Threads: the thread that made the probe (the run's) is timed on its own CPU clock
    (``thread_time``), so work the allocator moves to a spare core is not charged to it; that
    work is charged, per phase, to ``background_<phase>``, outside the run's total.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.owner = threading.get_ident()
        self.stacks: dict[int, list[list[Any]]] = {}  # per thread: [phase, wall, CPU start]
        self.missing: list[str] = []

    @property
    def stack(self) -> list[list[Any]]:
        return self.stacks.setdefault(threading.get_ident(), [])

    def _charge(self, frame: list[Any], wall: float, cpu: float) -> None:
        phase = frame[0]
        if threading.get_ident() != self.owner:
            phase = f"background_{phase}"
        self.seconds[phase] = self.seconds.get(phase, 0.0) + wall - frame[1]
        self.cpu[phase] = self.cpu.get(phase, 0.0) + cpu - frame[2]

    def enter(self, phase: str) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        stack = self.stack
        if stack:
            self._charge(stack[-1], wall, cpu)
        stack.append([phase, wall, cpu])
        self.calls[phase] = self.calls.get(phase, 0) + 1

    def leave(self) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        stack = self.stack
        self._charge(stack.pop(), wall, cpu)
        if stack:
            stack[-1][1], stack[-1][2] = wall, cpu

    def snapshot(self) -> tuple[dict[str, float], dict[str, float]]:
        """Wall and CPU per phase so far, the slice of the phase running now included (read
        from the run's thread; a watcher thread sees the run's last completed slices)."""
        seconds, cpu = dict(self.seconds), dict(self.cpu)
        stack = self.stacks.get(self.owner, [])
        if stack and threading.get_ident() == self.owner:
            phase, wall0, cpu0 = stack[-1]
            seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - wall0
            cpu[phase] = cpu.get(phase, 0.0) + time.thread_time() - cpu0
        return seconds, cpu

    def inside(self, phase: str) -> bool:
        return any(frame[0] == phase for frame in self.stack)

    def wrap(self, module_name: str, attr: str, phase, after=None) -> None:
        """`phase` is a name, or a function of the probe giving the name at call time."""
        import importlib

        try:
            owner: Any = importlib.import_module(module_name)
            *path, name = attr.split(".")
            for part in path:
                owner = getattr(owner, part)
            original = getattr(owner, name)
        except (ImportError, AttributeError):
            self.missing.append(f"{module_name}.{attr}")
            return
        probe = self

        @functools.wraps(original)
        def timed(*args, **kwargs):
            name = phase(probe) if callable(phase) else phase
            probe.enter(name)
            try:
                return original(*args, **kwargs)
            finally:
                probe.leave()
                if after is not None:
                    after(name, args)

        setattr(owner, name, timed)
        if not path:  # a module-level function: patch the names other modules bound to it
            for module in list(sys.modules.values()):
                if getattr(module, "__name__", "").startswith("allocator"):
                    for key, value in list(vars(module).items()):
                        if value is original:
                            setattr(module, key, timed)


def _highs_info(highs) -> dict[str, Any]:
    info = highs.getInfo()
    return {"simplex_iterations": int(info.simplex_iteration_count),
            "ipm_iterations": int(info.ipm_iteration_count),
            "crossover_iterations": int(info.crossover_iteration_count)}


def _overrides(method: str, time_limit: float | None) -> list[str]:
    sets = [] if method == "auto" else [f'solver.method="{method}"']
    if time_limit:
        sets.append(f"solver.time_limit={time_limit}")
    return sets


# (module where it is defined, attribute, phase). Exclusive time: read_table inside load_ops
# counts as load, load_ops's own time as validate, what _prepare does besides as formulate.
ALLOCATOR_WRAPS = (
    ("allocator.tables.readers", "read_table", "load"),
    ("allocator.scenario", "load_scenario", "load"),
    ("allocator.formulations.ops.data", "load_ops", "validate"),
    ("allocator.run", "_prepare", "formulate"),
    ("allocator.solvers.highs", "HighsBackend.load", "handover"),
    ("allocator.solvers.lexicographic", "solve_stages", "solve_glue"),
    ("allocator.analysis.stage", "analyze_stage", "sensitivity"),
    ("allocator.analysis.sensitivity", "highs_sensitivity", "sensitivity"),
    ("allocator.analysis.stage", "resolve_stage_sensitivities", "sensitivity"),
    ("allocator.analysis.sensitivity", "sensitivity_frame", "extract"),
    ("allocator.formulations.ops.tables", "plan_tables", "extract"),
    ("allocator.formulations.ops", "OpsFormulation.plan_tables", "extract"),
    ("allocator.formulations.ops", "OpsFormulation.bottlenecks", "report"),
    ("allocator.formulations.ops.bottlenecks", "bottlenecks_markdown", "report"),
    ("allocator.outputs.report", "render_report", "report"),
    ("allocator.outputs.folder", "RunFolder.__init__", "write"),
    ("allocator.outputs.folder", "RunFolder.table", "write"),
    ("allocator.outputs.folder", "RunFolder.json", "write"),
    ("allocator.outputs.folder", "RunFolder.text", "write"),
    ("allocator.outputs.folder", "RunFolder.commit", "write"),
    # every HiGHS run: a stage solve, or a re-solve for the sensitivity report
    ("highspy", "Highs.run",
     lambda probe: "sensitivity_highs" if probe.inside("sensitivity") else "solver"),
)


def _allocator_phases(seconds: dict[str, float], total: float) -> dict[str, float]:
    out = {name: seconds.get(name, 0.0) for name in ALLOCATOR_PHASES}
    out["total"] = total
    out["other"] = total - sum(out[name] for name in ALLOCATOR_PHASES)
    return out


def _import_allocator() -> None:
    """Import every allocator module first, so that no later import sees an unwrapped name."""
    import importlib
    import pkgutil

    import allocator

    for info in pkgutil.walk_packages(allocator.__path__, "allocator."):
        importlib.import_module(info.name)


def run_allocator(args: argparse.Namespace) -> dict[str, Any]:
    _import_allocator()
    import allocator.run as run

    base = rss_mb()
    probe = Probe()
    seen: dict[str, Any] = {}

    iterations = {"simplex_iterations": 0, "ipm_iterations": 0, "crossover_iterations": 0}

    def after(phase: str, call_args: tuple) -> None:
        if phase == "handover":
            seen.setdefault("hwm_after_handover", hwm_mb())
        elif phase == "solver":  # a stage solve: add up what HiGHS did
            for key, value in _highs_info(call_args[0]).items():
                iterations[key] += value

    for module_name, attr, phase in ALLOCATOR_WRAPS:
        probe.wrap(module_name, attr, phase, after=after)

    sets = _overrides(args.method, args.time_limit)
    if not args.analysis:  # the core pipeline only: no sensitivity, no report
        sets += ["output.sensitivity=false", "output.report=false"]
    scenario = Path(args.instance) / "scenario.toml"
    tmp = Path(tempfile.mkdtemp(prefix="bench-run-"))
    STATE.update(probe=probe, base=base, seen=seen, tmp=tmp)
    try:
        # The run's own thread's CPU clock: what the allocator moves to the spare core
        # (sensitivity of an earlier stage, importing matplotlib) is reported apart.
        start, cpu0 = time.perf_counter(), time.thread_time()
        STATE.update(start=start, cpu0=time.process_time())
        outcome = run.solve_scenario(scenario, tmp / "out", sets)
        wall, cpu = time.perf_counter() - start, time.thread_time() - cpu0
        files = sorted(p.name for p in (tmp / "out").iterdir())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = outcome.result
    stages = [{"name": st.name, "status": st.status.value, "objective": st.objective,
               "seconds": st.seconds} for st in (result.stages if result else [])]
    return {
        "phases": _allocator_phases(probe.seconds, wall),
        "cpu": _allocator_phases(probe.cpu, cpu),
        "background_cpu": {k: v for k, v in probe.cpu.items() if k.startswith("background_")},
        "stages": stages,
        "highs_runs": probe.calls.get("solver", 0) + probe.calls.get("sensitivity_highs", 0),
        "status": outcome.summary.get("status"),
        "exit_code": int(outcome.exit_code),
        "model_size": outcome.summary.get("model_size"),
        "files": files,
        "highs": iterations,
        "memory": {"rss_after_imports": base, "hwm_after_handover": seen.get(
            "hwm_after_handover", float("nan"))},
        "notes": [f"not found, not timed: {m}" for m in probe.missing],
    }


def _by_hand(seconds: dict[str, float], total: float) -> dict[str, float]:
    """Floor and peers: sets + build is their formulate, the solve call their solver time."""
    out = dict(seconds)
    out["formulate"] = out.get("sets", 0.0) + out.get("build", 0.0)
    out["solver"] = out.pop("solve", 0.0)
    out["total"] = total
    return out


def run_floor(args: argparse.Namespace) -> dict[str, Any]:
    import floor
    import numpy as np

    base = rss_mb()
    phases = Phases()
    start, cpu0 = time.perf_counter(), time.process_time()
    with phases.time("load"):
        tables = floor.read_tables(Path(args.instance))
    with phases.time("sets"):
        sets = floor.eligible(tables)
    with phases.time("build"):
        model = floor.build(sets)
    with phases.time("handover"):
        h = floor.new_highs(args.method)
        floor.hand_over(h, model)
    hwm_handover = hwm_mb()
    stages: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    if args.solve:
        if args.time_limit:
            h.setOptionValue("time_limit", float(args.time_limit))
        with phases.time("solve"):
            stages = floor.solve_lexicographic(h, model)
        with phases.time("extract"):
            x = np.asarray(h.getSolution().col_value)
            used = np.flatnonzero(x[: sets.i.size] > 1e-9)
            plan = (sets.i[used], sets.s[used], sets.k[used], x[used])
        info = _highs_info(h)
        del plan
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"phases": _by_hand(phases.seconds, wall), "cpu": _by_hand(phases.cpu, cpu),
            "stages": stages, "highs": info,
            "model_size": {"rows": model.n_rows, "columns": model.n_cols,
                           "nonzeros": int(model.data.size)},
            "memory": {"rss_after_imports": base, "hwm_after_handover": hwm_handover}}


def run_warm(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from allocator.run import prepare, settings_from
    from allocator.solvers.highs import HighsBackend

    scenario, ops, _ = prepare(Path(args.instance) / "scenario.toml",
                               _overrides(args.method, None))
    model = ops.model
    settings = settings_from(scenario)
    service = model.objectives["service"]

    def loaded() -> HighsBackend:
        backend = HighsBackend(settings)
        backend.load(model)
        backend.set_objective(service.c, service.constant)
        return backend

    phases = Phases()
    first = loaded()
    with phases.time("cold_original"):
        cold0 = first.solve(None)
    block = model.con_blocks["budget"]
    duals = (np.abs(cold0.row_dual[block.slice]) if cold0.row_dual is not None
             else np.zeros(block.size))
    pick = int(np.argmax(duals))  # the budget that binds hardest: moving it changes the plan
    row = block.start + pick
    lo, hi = float(model.row_lo[row]), float(model.row_hi[row])
    new_hi = hi * (1 - args.budget_cut)
    highs = first.highs
    before = _highs_info(highs)
    highs.changeRowBounds(row, max(lo, -1e30), new_hi)
    if args.method not in ("auto", "simplex", "dual", "primal"):
        highs.setOptionValue("solver", "simplex")  # a basis is only reused by simplex
    with phases.time("warm"):
        warm = first.solve(None)
    after = _highs_info(highs)
    second = loaded()
    second.highs.changeRowBounds(row, max(lo, -1e30), new_hi)
    with phases.time("cold"):
        cold = second.solve(None)
    return {
        "phases": phases.seconds, "cpu": phases.cpu,
        "budget": {"label": str(block.labels.iloc[pick].to_dict()), "dual": float(duals[pick]),
                   "amount": hi, "new_amount": new_hi},
        "objectives": {"cold_original": cold0.objective, "warm": warm.objective,
                       "cold": cold.objective},
        "highs": {"warm_simplex_iterations": after["simplex_iterations"],
                  "cold_original": before, "cold": _highs_info(second.highs)},
        "memory": {},
    }


def run_peer(args: argparse.Namespace) -> dict[str, Any]:
    import importlib

    import floor

    module = importlib.import_module(f"peers.{args.peer}_model")
    try:
        importlib.import_module(args.peer)
    except ImportError as exc:
        return {"error": f"{exc}; install the peers with: pip install -e '.[peers]'",
                "phases": {}, "memory": {}}
    base = rss_mb()
    phases = Phases()
    start, cpu0 = time.perf_counter(), time.process_time()
    with phases.time("load"):
        tables = floor.read_tables(Path(args.instance))
    with phases.time("sets"):
        sets = floor.eligible(tables)
    with phases.time("build"):
        model = (module.build(sets, args.method) if args.peer == "pyoframe"
                 else module.build(sets))
    with phases.time("handover"):
        handle = (module.hand_over(model, args.method) if args.peer == "pulp"
                  else module.hand_over(model))
    hwm_handover = hwm_mb()
    stages = []
    if args.solve:
        with phases.time("solve"):
            objective = module.solve(handle, args.method)
        stages.append({"name": "service", "objective": objective,
                       "seconds": phases.seconds["solve"]})
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"phases": _by_hand(phases.seconds, wall), "cpu": _by_hand(phases.cpu, cpu),
            "stages": stages,
            "memory": {"rss_after_imports": base, "hwm_after_handover": hwm_handover}}


def run_check(args: argparse.Namespace) -> dict[str, Any]:
    """The floor's model against the allocator's, entry by entry (same LP, same order)."""
    import floor
    import numpy as np
    import scipy.sparse as sp

    from allocator.run import prepare

    f = floor.build(floor.eligible(floor.read_tables(Path(args.instance))))
    _, built, _ = prepare(Path(args.instance) / "scenario.toml", [])
    m = built.model
    mine = sp.csr_array((f.data, f.indices, f.indptr), shape=(f.n_rows, f.n_cols))
    mine.sum_duplicates()
    same_shape = m.matrix.shape == mine.shape
    checks = {
        "shape": same_shape,
        "matrix": bool(same_shape and abs(m.matrix - mine).max() == 0),
        "column bounds": bool(np.array_equal(m.lb, f.lb) and np.array_equal(m.ub, f.ub)),
        "row bounds": bool(np.array_equal(m.row_lo, f.row_lo)
                           and np.array_equal(m.row_hi, f.row_hi)),
        "service objective": bool(np.array_equal(m.objectives["service"].c, f.c_service)),
        "cost objective": bool(np.array_equal(m.objectives["cost"].c, f.c_cost)),
    }
    return {"phases": {}, "memory": {}, "checks": checks, "identical": all(checks.values())}


def run_generate(args: argparse.Namespace) -> dict[str, Any]:
    from allocator.datagen import SIZES, generate_ops, write_ops_instance

    folder = Path(args.instance)
    if not (folder / "scenario.toml").exists():
        write_ops_instance(generate_ops(SIZES[args.size], args.seed, args.budgets), folder,
                           args.size)
    return {"phases": {}, "memory": {}}


def _partial(args: argparse.Namespace) -> dict[str, Any]:
    """What an allocator run had done when its deadline came: phases so far, open ones too."""
    probe: Probe | None = STATE.get("probe")
    result: dict[str, Any] = {"stopped": f"deadline of {args.deadline or 0:g} CPU s reached",
                              "phases": {}, "memory": {}}
    if probe is None:
        return result
    seconds, cpu = probe.snapshot()
    result["phases"] = _allocator_phases(seconds, time.perf_counter() - STATE.get("start", 0.0))
    result["cpu"] = _allocator_phases(cpu, time.process_time() - STATE.get("cpu0", 0.0))
    result["running"] = [frame[0] for frame in probe.stacks.get(probe.owner, [])]
    result["highs_runs"] = probe.calls.get("solver", 0) + probe.calls.get("sensitivity_highs", 0)
    seen = STATE.get("seen", {})
    result["memory"] = {"rss_after_imports": STATE.get("base"),
                        "hwm_after_handover": seen.get("hwm_after_handover")}
    return result


def _write(args: argparse.Namespace, result: dict[str, Any], t0: float) -> None:
    result.setdefault("memory", {})
    result["memory"]["maxrss_end"] = maxrss_mb()
    result["memory"]["hwm_end"] = hwm_mb()
    result["wall"] = time.perf_counter() - t0
    result["config"] = args.config
    result["method"] = args.method
    Path(args.json).write_text(json.dumps(result, default=float, indent=1))


def _watchdog(args: argparse.Namespace, t0: float) -> None:
    """When this process has used `--deadline` seconds of CPU (not wall: the machine is
    shared), or when `<json>.stop` appears, write what was measured and end the process.
    HiGHS releases the GIL while it runs, so this thread gets its turn."""
    import os
    import threading

    stop = Path(args.json + ".stop")  # `touch` it to stop the run now, keeping its figures
    deadline = args.deadline or float("inf")

    def watch() -> None:
        while time.process_time() < deadline and not stop.exists():
            time.sleep(0.5)
        result = _partial(args)
        if stop.exists():
            result["stopped"] = f"stopped by {stop.name} after {time.process_time():.0f} CPU s"
        _write(args, result, t0)
        tmp = STATE.get("tmp")
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", choices=["generate", "allocator", "floor", "warm", "peer",
                                           "check"])
    parser.add_argument("--instance", required=True)
    parser.add_argument("--json", required=True)
    parser.add_argument("--size", default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budgets", default="nested", choices=["nested", "site"])
    parser.add_argument("--method", default="auto")
    parser.add_argument("--peer", choices=["linopy", "pyoframe", "pulp"])
    parser.add_argument("--solve", action="store_true")
    parser.add_argument("--time-limit", type=float, default=None)
    parser.add_argument("--budget-cut", type=float, default=0.05)
    parser.add_argument("--deadline", type=float, default=None,
                        help="stop after this many CPU seconds, reporting the phases so far")
    parser.add_argument("--analysis", action="store_true",
                        help="allocator: keep the sensitivity report and report.html on")
    args = parser.parse_args()
    t0 = time.perf_counter()
    runner = {"generate": run_generate, "allocator": run_allocator, "floor": run_floor,
              "warm": run_warm, "peer": run_peer, "check": run_check}[args.config]
    if args.config != "generate":
        _watchdog(args, t0)
    _write(args, runner(args), t0)


if __name__ == "__main__":
    main()
