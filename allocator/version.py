"""The installed version, in a module of its own so that any module can import it without
importing the package's front door (and so without an import cycle through it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("allocator")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+local"
