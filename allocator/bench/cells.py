"""One cell = one fresh process with a hard timeout, so a crash or a hang costs one cell.

``run_cell`` is the Dask task. It has this worker thread's zygote (``zygote.py``) fork a
child, which runs ``child_main``: read the instance, solve, write the answer as JSON to a
file (not to stdout, which solvers are free to litter). At the hard timeout the child's
whole process group is killed, so a CBC binary started by PuLP dies with it. A child that
dies without an answer is a ``crashed`` row; one killed at the timeout a ``timeout`` row.

Peak memory: ``maxrss_mb`` is ``ru_maxrss`` of the cell process (from ``wait4`` in the
zygote); ``hwm_mb`` is the child's own ``VmHWM`` read just before it exits. Both include the
solver libraries preloaded before the fork, as a fresh process that imported them would.
``base_mb`` is the same process's resident size when it starts, before it reads anything:
an idle worker's interpreter and libraries. Most of a small cell's peak is that baseline, so
the summary reports both, and the difference as the solve's own memory.

A scenario file is timed over its whole lexicographic solve, with the scenario's own hold
tolerances (as ``allocator solve`` runs it); every stage's optimum and time is reported
(``stages``, ``stage_s``), so cells can be checked against each other stage by stage.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from allocator.bench.schema import CellStatus

_CRASH_TAIL = 600  # characters of the cell's stderr kept in the row's message


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc (VmHWM: peak, VmRSS: now), MiB; NaN where
    /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _hwm_mb() -> float:
    return _status_mb("VmHWM")


def encode_stages(values: dict[str, float]) -> str:
    """``name=value;...``: one CSV cell for every stage, in solve order, full precision."""
    return ";".join(f"{name}={value!r}" for name, value in values.items())


def decode_stages(text: object) -> dict[str, float]:
    if not isinstance(text, str) or not text.strip():
        return {}
    pairs = (item.partition("=") for item in text.split(";") if "=" in item)
    return {name: float(value) for name, _, value in pairs}


def _watch_parent() -> None:
    """Exit when the worker that started us dies: an orphaned solve would skew every timing
    taken after it on this machine."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                with contextlib.suppress(OSError):
                    os.killpg(0, signal.SIGKILL)  # a solver binary we started goes too
                os._exit(75)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _load(spec: dict[str, Any]) -> tuple[Any, list[Any], float, dict[str, Any]]:
    """The model and its objectives, timed; a scenario goes through the product's own build."""
    from allocator.solvers.lexicographic import stage_objectives

    start = time.perf_counter()
    path = Path(spec["path"])
    tolerances = {"rel_tol": 1e-6, "abs_tol": 1e-9}
    if spec["kind"] == "scenario":
        from allocator.run import prepare

        scenario, built, _times = prepare(path, [])
        model = built.model
        objective = scenario.objective
        objectives = stage_objectives(model, [str(s) for s in objective.order],
                                      objective.mode,
                                      {str(k): float(v) for k, v in objective.weights.items()})
        tolerances = {"rel_tol": objective.rel_tol, "abs_tol": objective.abs_tol}
    else:
        from allocator.solvers.mps import read_mps

        model = read_mps(path)
        objectives = [model.objectives["objective"]]
    build_s = time.perf_counter() - start
    sign = -1.0 if model.maximize else 1.0
    info = {"rows": model.num_rows, "cols": model.num_vars, "integers": model.num_integer,
            "kind": "mip" if model.num_integer else "lp",
            "sense": "max" if model.maximize else "min",
            "obj_constant": sign * float(objectives[0].constant), "sign": sign,
            "tolerances": tolerances}
    return model, objectives, build_s, info


def solve_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Read, solve and report one cell, in this process. Errors become a status, not a raise."""
    from allocator.bench.grid import Config
    from allocator.errors import AllocatorError, CapabilityError
    from allocator.solvers.lexicographic import solve_stages

    config_data = dict(spec["config"])
    config_data["options"] = tuple(sorted(config_data["options"].items()))
    config = Config(**config_data)
    row: dict[str, Any] = {}
    try:
        model, objectives, build_s, info = _load(spec)
        sign = info.pop("sign")
        tolerances = info.pop("tolerances")
        row.update(info, build_s=build_s)
        result = solve_stages(model, objectives, config.solver, config.settings(spec["seed"]),
                              **tolerances)
    except CapabilityError as exc:
        return row | {"status": CellStatus.NOT_APPLICABLE.value, "message": str(exc)}
    except AllocatorError as exc:
        return row | {"status": CellStatus.ERROR.value, "message": str(exc)}
    except Exception as exc:  # a solver's own exception: one failed cell, with its traceback
        tail = "".join(traceback.format_exception(exc))[-_CRASH_TAIL:]
        return row | {"status": CellStatus.ERROR.value,
                      "message": f"{type(exc).__name__}: {exc}\n{tail}"}
    first = result.stages[0] if result.stages else None
    row.update(
        status=CellStatus.from_solver(result.status).value,
        objective=sign * first.objective if first else float("nan"),
        bound=sign * first.bound if first else float("nan"),
        gap=first.gap if first else float("nan"),
        solver_s=sum(s.seconds for s in result.stages),
        solve_s=result.seconds,
        message=(result.message + " " + "; ".join(result.notes)).strip(),
        stages=encode_stages({s.name: sign * s.objective for s in result.stages}),
        stage_s=encode_stages({s.name: s.seconds for s in result.stages}),
    )
    return row


def child_main(spec_file: str, out_file: str) -> None:
    """Entry point of the cell process (forked by the zygote; also runnable by hand to replay
    one cell: ``python -m allocator.bench.cells SPEC.json OUT.json``)."""
    start = time.perf_counter()
    base_mb = _status_mb("VmRSS")  # before anything is read: the idle worker's footprint
    _watch_parent()
    spec = json.loads(Path(spec_file).read_text())
    fault = spec.get("fault") or ""
    if fault == "exit-cell":
        os._exit(70)
    if fault == "hang-cell":
        time.sleep(10 * float(spec["timeout"]) + 60)
    row = solve_spec(spec)
    row["hwm_mb"] = _hwm_mb()
    row["base_mb"] = base_mb
    row["child_wall_s"] = time.perf_counter() - start
    tmp = Path(out_file + ".part")
    tmp.write_text(json.dumps(row, default=float))
    tmp.replace(out_file)  # the parent never reads half a file


# ---------------------------------------------------------------- the worker side


def _fault_on_worker(fault: str) -> None:
    """Test-only: kill this Dask worker the first time, to prove that its cell is rerun."""
    if fault.startswith("exit-worker-once:"):
        marker = Path(fault.split(":", 1)[1])
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(1)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def run_cell(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one cell in a fresh child process under a hard timeout; always returns a row.

    This is the Dask task. It raises only when it cannot get a process at all (Dask then
    retries it); everything the cell itself does wrong (crash, hang, solver error) is a row.
    """
    from allocator.bench.zygote import ZygoteDied, zygote

    _fault_on_worker(spec.get("fault") or "")
    timeout = float(spec["timeout"])
    with tempfile.TemporaryDirectory(prefix="allocator-cell-") as tmp:
        spec_file, out_file, err_file = (Path(tmp) / n for n in ("spec.json", "out.json",
                                                                 "stderr.txt"))
        spec_file.write_text(json.dumps(spec))
        try:
            ended = zygote().run(str(spec_file), str(out_file), str(err_file), timeout)
        except ZygoteDied:
            # The harness lost its own process (a zygote slow to fork under heavy load, or
            # killed): not the cell's doing, so once more on a fresh zygote rather than a
            # Dask-level retry that reports an 'error' if it fails again.
            ended = zygote(fresh=True).run(str(spec_file), str(out_file), str(err_file),
                                           timeout)
        row: dict[str, Any] = {"wall_s": ended.wall_s, "maxrss_mb": ended.maxrss_mb,
                               "exit_code": ended.exit_code, "worker": _worker_name(),
                               "timeout_s": timeout}
        if out_file.exists():
            row.update(json.loads(out_file.read_text()))
            row.pop("child_wall_s", None)
        elif ended.timed_out:
            row.update(status=CellStatus.TIMEOUT.value,
                       message=f"killed after the hard timeout of {timeout:g} s")
        else:
            tail = err_file.read_text(errors="replace")[-_CRASH_TAIL:].strip() \
                if err_file.exists() else ""
            row.update(status=CellStatus.CRASHED.value,
                       message=f"cell process exited with code {ended.exit_code} and no "
                               f"answer{': ' + tail if tail else ''}")
    return row


if __name__ == "__main__":
    child_main(sys.argv[1], sys.argv[2])
