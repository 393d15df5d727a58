"""User-facing error types: the CLI turns any of these into one line and a non-zero exit."""

from __future__ import annotations

from pathlib import Path


class AnonStoreError(Exception):
    """An error caused by the user's input or environment, reported without a traceback."""


class ManifestError(AnonStoreError):
    """The manifest is missing, malformed, or points at files that are not there."""


class ConfigError(AnonStoreError):
    """A configuration value is out of range or inconsistent with the data."""


class EncoderError(AnonStoreError):
    """The encoder cannot be loaded or is not a supported video model."""


class StoreError(AnonStoreError):
    """A feature store is missing, incomplete, of the wrong kind, or cannot be written."""


class AdapterError(AnonStoreError):
    """An adapter checkpoint is missing, corrupt, or made for another encoder."""


class VideoError(AnonStoreError):
    """One video cannot be used; extraction records `reason` for it and moves on."""

    reason = "unreadable"

    def __init__(self, path: str | Path, detail: str = "") -> None:
        self.path = str(path)
        self.detail = detail
        message = f"{self.path}: {self.reason}"
        super().__init__(f"{message} ({detail})" if detail else message)

    def __reduce__(self) -> tuple:
        # Rebuilt from (path, detail), not from the message: decode worker processes send them.
        return (type(self), (self.path, self.detail))


class CorruptVideoError(VideoError):
    """The container or stream cannot be decoded."""

    reason = "corrupt"


class TruncatedVideoError(VideoError):
    """Fewer frames decode than the manifest promises."""

    reason = "truncated"


class VideoTooShortError(VideoError):
    """The video has fewer frames than one clip needs."""

    reason = "too_short"
