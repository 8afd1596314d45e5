"""How `allocator solve --decompose` reaches the pipeline, and when `auto` decomposes.

The CLI sets the request here (a process-wide setting: the pipeline runs in a worker thread,
where a context variable would not follow) and run.py asks `decomposition()` once the model
is built. `auto` decomposes when a scheduler is given or the model has at least
AUTO_NONZEROS nonzeros. That size is not a measured break-even: on this 2-core machine the
decomposed solve was slower at every size run (small 1.4 s against 0.6 s, medium 135 s
against 36 s; docs/decompose.md), so the threshold sits near xl, where one machine's memory
and the monolithic solve's time (nnz^1.75) become the limit. In practice `auto` means "when
a cluster is named".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from allocator.core.model import LinearModel

AUTO_NONZEROS = 20_000_000  # about the xl preset (26.5M): where one machine's solve strains
MODES = ("auto", "regions", "off")


@dataclass(frozen=True)
class Request:
    mode: str = "off"
    scheduler: str | None = None  # tcp://host:8786, or None for a LocalCluster
    workers: int = 2  # LocalCluster workers when no scheduler is given
    polish: bool = False  # each block's plan moved to a vertex (worker.polish_block)


_request = Request()


def request(mode: str = "off", scheduler: str | None = None, workers: int = 2,
            polish: bool = False) -> None:
    """Set what the next solves in this process do (the CLI calls it once)."""
    global _request
    if mode not in MODES:
        raise ValueError(f"decompose must be one of {', '.join(MODES)}, not {mode!r}")
    _request = Request(mode, scheduler, workers, polish)


def current() -> Request:
    return _request


def wanted(model: LinearModel, req: Request | None = None) -> bool:
    req = req or _request
    if req.mode == "off":
        return False
    if req.mode == "regions":  # whole mode too: price-and-branch, asked for by name
        return True
    if model.num_integer:  # auto never trades HiGHS's branch-and-bound for an open gap
        return False
    return req.scheduler is not None or model.nnz >= AUTO_NONZEROS


def connect(req: Request) -> tuple[Any, Any]:
    """A Dask client on the given scheduler, or on a new LocalCluster (closed by the caller:
    `close(client, cluster)`)."""
    from distributed import Client, LocalCluster

    if req.scheduler is not None:
        return Client(req.scheduler), None
    cluster = LocalCluster(n_workers=req.workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=40,
                           scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    return Client(cluster), cluster


def close(client: Any, cluster: Any) -> None:
    client.close()
    if cluster is not None:
        cluster.close()


def solve_if_wanted(model: LinearModel, objectives: list[Any], rel_tol: float, abs_tol: float,
                    time_limit: float | None, mip_gap: float | None = None,
                    warm_prices: dict[str, dict[str, float]] | None = None,
                    ) -> tuple[Any, dict[str, Any], dict[str, dict[str, float]]] | None:
    """The decomposed solve when the request asks for it (None: solve monolithic), with
    what summary.json reports of it and every linking row's final price by stage
    (master_prices.csv; `warm_prices`: an earlier run's, to start from)."""
    req = _request
    if not wanted(model, req):
        return None
    from allocator.decompose.solve import solve_decomposed

    started = time.monotonic()
    client, cluster = connect(req)
    if time_limit is not None:  # starting the cluster came out of the run's time
        time_limit = max(0.01, time_limit - (time.monotonic() - started))
    try:
        result, info = solve_decomposed(model, objectives, client=client, workers=req.workers,
                                        rel_tol=rel_tol, abs_tol=abs_tol,
                                        time_limit=time_limit, mip_gap=mip_gap,
                                        warm_prices=warm_prices, polish=req.polish)
    finally:
        close(client, cluster)
    return result, {"mode": req.mode, **info.as_json()}, info.all_prices
