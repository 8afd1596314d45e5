"""What-if latency of the room: `python -m allocator.serve.latency SCENARIO`.

Starts the room on a free port, moves the most binding budget (the largest service-stage
price; else the first) through `count` amounts between -20% and +20% of today in a fixed
shuffled order, and times each what-if on the server (the warm re-solve) and through HTTP
(what the page waits for); then times `cold` CLI runs (`allocator solve` in a new process,
as a person would re-run an edited file) of the same kind of change. Deterministic order:
the same instance gives comparable figures from one machine to the next.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from allocator.serve.server import served


def _pick_budget(state: dict[str, Any]) -> tuple[str, float]:
    prices = [p for p in state["base"]["prices"] if p["family"] == "budget"
              and p["stage"] == "service"]
    rows = {r["budget_id"]: r["amount"] for r in state["inputs"]["budgets"]["rows"]}
    if prices:
        best = max(prices, key=lambda p: abs(p["dual"]))
        return best["id"], float(rows[best["id"]])
    first = next(iter(rows))
    return first, float(rows[first])


def _cold(scenario: Path, budget: str, amount: float, work: Path) -> float:
    """One `allocator solve` of the scenario with the budget's amount edited, in a new
    process, as a person re-running an edited file would."""
    from allocator.scenario import load_scenario

    scen = load_scenario(scenario)
    spec = scen.tables["budgets"]
    assert isinstance(spec, str), "cold runs need the budgets table as a file"
    frame = pd.read_csv(scen.base_dir / spec, dtype=str, keep_default_na=False)
    frame.loc[frame["budget_id"] == budget, "amount"] = repr(amount)
    edited = work / f"budgets-{time.monotonic_ns()}.csv"
    frame.to_csv(edited, index=False)
    out = work / f"run-{time.monotonic_ns()}"
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "allocator.cli", "solve", str(scenario),
                           "--out", str(out), "--no-store", "--set",
                           f"tables.budgets={json.dumps(str(edited))}"],
                          capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if proc.returncode not in (0, 3):
        raise RuntimeError(proc.stderr)
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def measure(scenario: Path, count: int = 20, cold: int = 3, seed: int = 0) -> dict[str, Any]:
    began = time.perf_counter()
    with served(scenario) as room, tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter() - began
        headers = {"Authorization": f"Bearer {room.token}"}
        state = httpx.get(room.base_url + "/api/run", headers=headers, timeout=60).json()
        budget, today = _pick_budget(state)
        amounts = today * np.linspace(0.8, 1.2, count)
        np.random.default_rng(seed).shuffle(amounts)
        server, http = [], []
        with httpx.Client(headers=headers, timeout=600) as client:
            for amount in amounts:
                t = time.perf_counter()
                answer = client.post(room.base_url + "/api/whatif", json={"changes": [
                    {"table": "budgets", "id": budget, "column": "amount",
                     "value": float(amount)}]}).json()
                http.append(time.perf_counter() - t)
                server.append(answer["seconds"]["solve"])
        colds = [_cold(scenario, budget, float(a), Path(tmp)) for a in amounts[:cold]]
    return {
        "scenario": str(scenario), "budget": budget, "today": today, "changes": count,
        "start_seconds": round(started, 3),
        "server_median": round(statistics.median(server), 4),
        "server_worst": round(max(server), 4),
        "http_median": round(statistics.median(http), 4), "http_worst": round(max(http), 4),
        "cold_cli_median": round(statistics.median(colds), 3) if colds else None,
        "cold_cli_runs": len(colds),
    }


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--cold", type=int, default=3)
    args = parser.parse_args()
    print(json.dumps(measure(args.scenario, args.count, args.cold), indent=2))


if __name__ == "__main__":
    main()
