"""anon-store: a privacy-preserving feature store for video understanding."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("anon-store")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"
