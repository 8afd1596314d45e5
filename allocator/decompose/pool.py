"""Where the block owners live: in this process, or as Dask actors, one per worker.

Why actors: a block's HiGHS model and basis are the state worth keeping between iterations
(a warm re-price takes milliseconds, a rebuild seconds); a plain task would rebuild it
every time or pin it in a worker global that Dask does not know about. Actors are not
fault-tolerant by themselves: `DaskPool` keeps each owner's blocks (as sent) and, when a
call fails because its worker died, starts a new owner on a live worker with the same
blocks and tells the master which blocks lost their proposals (`rebuilt`).
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from allocator.decompose.worker import BlockData, BlockOwner, Proposal


def _start_call(actor: Any, method: str, *args: Any) -> Any:
    """An actor call's future, or None when Dask already knows its worker is lost (the
    call then raises at once instead of through its future)."""
    try:
        return getattr(actor, method)(*args)
    except Exception:
        return None


class LostProposals(RuntimeError):
    """Owners died while the plan was gathered: their blocks were rebuilt, and the last
    stage must price them again before the plan can be combined."""

    def __init__(self, blocks: list[int]) -> None:
        super().__init__(f"blocks {blocks} lost their proposals")
        self.blocks = blocks


class LocalPool:
    """Owners in this process: the same calls as on a cluster, without one."""

    workers = 0
    address = "in-process"

    def __init__(self, groups: Sequence[Sequence[BlockData]],
                 owners: Sequence[Any] | None = None) -> None:
        self.owners: list[Any] = list(owners) if owners is not None else \
            [BlockOwner(list(g)) for g in groups]
        self.rebuilt: set[int] = set()
        self.bytes_sent = 0
        self.rebuilds = 0

    def set_holds(self, holds: list[str]) -> None:
        for owner in self.owners:
            owner.set_holds(holds)

    def price(self, stage: str, prices: np.ndarray,
              seconds: float | None = None) -> list[Proposal]:
        ends = None if seconds is None else time.perf_counter() + seconds
        return sorted((p for owner in self.owners for p in owner.price(
            stage, prices, None if ends is None else ends - time.perf_counter())),
            key=lambda p: p.block)  # block order, whatever the packing (as DaskPool)

    def combine(self, weights: dict[int, dict[int, float]],
                polish: list[str] | None = None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for owner in self.owners:
            mine = {b: w for b, w in weights.items() if b in owner.blocks}
            out.update(owner.combine(mine, polish))
        return out

    def finish(self, weights: dict[int, dict[int, float]],
               polish: list[str] | None = None) -> dict[int, Any]:
        out: dict[int, Any] = {}
        for owner in self.owners:
            out.update(owner.finish({b: w for b, w in weights.items() if b in owner.blocks},
                                    polish))
        return out

    def memory(self) -> list[int]:
        return []

    def call(self, method: str, *args: Any) -> list[Any]:
        """`method` on every owner, in order."""
        return [getattr(owner, method)(*args) for owner in self.owners]

    def close(self) -> None:
        self.owners.clear()


class DaskPool:
    """One `BlockOwner` actor per worker of a Dask cluster (local or `tcp://...`)."""

    def __init__(self, client: Any, groups: Sequence[Any], wait_seconds: float = 60.0,
                 owner: type = BlockOwner, block_ids: Sequence[Sequence[int]] | None = None,
                 ) -> None:
        """`groups`: what each owner is made from (`owner(group)`): its BlockData list, or
        a recipe (regional.RegionRecipe) with `block_ids` saying which blocks it makes."""
        self.client = client
        self.groups = list(groups)
        self.owner = owner
        self.block_ids = [list(ids) for ids in block_ids] if block_ids is not None else \
            [[b.index for b in g] for g in self.groups]
        self.wait_seconds = wait_seconds
        self.holds: list[str] = []
        self.rebuilt: set[int] = set()  # blocks whose earlier proposals are gone
        self.rebuilds = 0
        self.bytes_sent = 0
        addresses = self._live()
        self.address = str(client.scheduler.address)
        self.workers = len(addresses)
        self.actors: list[Any] = [None] * len(self.groups)
        self.where: list[str] = [""] * len(self.groups)
        for k in range(len(self.groups)):
            self._start(k, addresses[k % len(addresses)])

    def _live(self) -> list[str]:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            addresses = sorted(self.client.scheduler_info(n_workers=-1)["workers"])
            if addresses:
                return addresses
            if time.monotonic() > deadline:
                raise RuntimeError("no Dask worker is alive to own the blocks")
            time.sleep(0.2)

    def _start(self, k: int, address: str) -> None:
        data = self.client.scatter(self.groups[k], workers=[address], direct=True)
        future = self.client.submit(self.owner, data, actor=True, workers=[address],
                                    allow_other_workers=False, pure=False)
        self.actors[k] = future.result()
        self.where[k] = address
        if self.holds:
            self.actors[k].set_holds(self.holds).result()

    def _rebuild(self, k: int) -> None:
        """The owner's worker is gone: its blocks start again on a live worker."""
        time.sleep(0.5)  # let the scheduler notice the loss before choosing a worker
        live = [a for a in self._live() if a != self.where[k]] or self._live()
        load = {a: sum(1 for w in self.where if w == a) for a in live}
        self._start(k, min(live, key=lambda a: (load[a], a)))
        self.rebuilt.update(self.block_ids[k])
        self.rebuilds += 1

    def _call(self, method: str, *args: Any) -> list[Any]:
        """The method on every owner at once; an owner whose worker died is rebuilt and
        asked again (once per owner and call)."""
        futures = [_start_call(actor, method, *args) for actor in self.actors]
        out: list[Any] = []
        for k, future in enumerate(futures):
            try:
                if future is None:
                    raise RuntimeError("the owner's worker is gone")
                out.append(future.result())
            except Exception:
                self._rebuild(k)
                out.append(getattr(self.actors[k], method)(*args).result())
        return out

    def set_holds(self, holds: list[str]) -> None:
        self.holds = list(holds)
        self._call("set_holds", self.holds)

    def price(self, stage: str, prices: np.ndarray,
              seconds: float | None = None) -> list[Proposal]:
        answers = self._call("price", stage, prices, seconds)
        self.bytes_sent += len(self.actors) * (prices.nbytes + len(stage))
        self.bytes_sent += sum(len(pickle.dumps(a, protocol=5)) for a in answers)
        # block order, not owner order: the master (and so the plan) must not depend on how
        # the blocks were packed onto workers
        return sorted((p for answer in answers for p in answer), key=lambda p: p.block)

    def combine(self, weights: dict[int, dict[int, float]],
                polish: list[str] | None = None) -> dict[int, Any]:
        return self._gather("combine", weights, polish)

    def finish(self, weights: dict[int, dict[int, float]],
               polish: list[str] | None = None) -> dict[int, Any]:
        """RegionOwner.finish on every owner: each block's checked plan and tables."""
        return self._gather("finish", weights, polish)

    def call(self, method: str, *args: Any) -> list[Any]:
        """`method` on every owner, in order (rebuilt and asked again if lost)."""
        return self._call(method, *args)

    def _gather(self, method: str, weights: dict[int, dict[int, float]],
                *args: Any) -> dict[int, Any]:
        futures = []
        for actor, ids in zip(self.actors, self.block_ids, strict=True):
            mine = {b: weights.get(b, {}) for b in ids}
            futures.append(_start_call(actor, method, mine, *args))
        out: dict[int, Any] = {}
        lost = False
        for k, future in enumerate(futures):
            try:
                if future is None:
                    raise RuntimeError("the owner's worker is gone")
                out.update(future.result())
            except Exception:  # its worker died: the proposals to combine are gone with it
                self._rebuild(k)
                lost = True
        if lost:
            raise LostProposals(sorted(self.rebuilt))
        return out

    def memory(self) -> list[int]:
        """Peak resident memory of each owner's worker process, bytes."""
        try:
            return [int(a.memory().result()) for a in self.actors]
        except Exception:
            return []

    def close(self) -> None:
        self.actors = []
