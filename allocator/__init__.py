"""allocator: budgets, staff and site capacity allocated at least cost, with the reasons why."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the types of the lazily imported API (see __getattr__)
    from allocator.api import Run, open_run, solve
    from allocator.formulations.ops.partition import partition
    from allocator.version import __version__

__all__ = ["Run", "__version__", "open_run", "partition", "solve"]


def __getattr__(name: str) -> object:
    """The Python API (allocator.solve, open_run, Run), imported on first use so that
    `import allocator` and the CLI's start-up do not pay for pandas before they need it."""
    if name in ("solve", "open_run", "Run"):
        from allocator import api

        return getattr(api, name)
    if name == "partition":  # `allocator partition`: tables as Parquet parts by region
        from allocator.formulations.ops.partition import partition

        return partition
    if name == "__version__":  # lazily too: the `allocator` command's first instants
        from allocator.version import __version__  # (allocator/launch.py) import nothing

        return __version__
    raise AttributeError(f"module 'allocator' has no attribute {name!r}")
