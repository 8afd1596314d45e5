"""Benchmarking solver settings against published answers (``allocator bench``).

Instances × configurations × replicates, each cell in its own process with a hard timeout,
fanned out on Dask; every answer checked against the published optimum; summaries as
shifted geometric means, solved counts, wins and a performance profile; ``compare`` for two
runs. Modules, in the order data flows:

- ``grid``: instances, configurations and cells (CLI flags or a TOML grid file);
- ``cells``: one cell in a child process (the Dask task and the child's entry point);
- ``runner``: the Dask fan-out, results.csv appended as cells finish, resume;
- ``verify``: published optima and the verdict on each answer;
- ``summary``, ``plots``, ``report``: rankings, the profile, CSV/Markdown/HTML;
- ``compare``: two runs, with the replicates' spread so noise is not called a regression;
- ``tune``: successive halving over a solver's settings, the winner re-checked against the
  default on fresh seeds, best.toml; ``settings_file``: best.toml's ``[solver]`` as the
  ``--set`` overrides of ``allocator solve --solver-settings``.

Exports load on first use (PEP 562): ``allocator --help`` imports this package through the
CLI and should not pay for pandas, matplotlib or Dask.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    # The function compare() is not exported: the package attribute `compare` is the module.
    "Comparison": "compare", "Thresholds": "compare",
    "Cell": "grid", "Config": "grid", "Grid": "grid", "Instance": "grid",
    "find_instances": "grid", "load_grid": "grid",
    "BenchRun": "runner", "local_client": "runner", "run_cells": "runner",
    "CellStatus": "schema", "Verdict": "schema",
    "Summary": "summary", "load_results": "summary", "shifted_geomean": "summary",
    "summarize": "summary",
    "ExpectedTable": "verify",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'allocator.bench' has no attribute {name!r}")
    value = getattr(import_module(f"allocator.bench.{_EXPORTS[name]}"), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value
