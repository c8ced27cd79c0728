"""vetcache's HTTP face: the OpenAI-compatible gateway, its settings and its CLI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vetcache")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
