"""allocator: budgets, staff and site capacity allocated at least cost, with the reasons why."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("allocator")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+local"
