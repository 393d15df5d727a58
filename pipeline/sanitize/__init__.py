"""The sanitize stage: raw store + trained adapter -> sanitized store (no raw embedding copied)."""

from pipeline.sanitize.config import SanitizeConfig
from pipeline.sanitize.run import SanitizeProgress, SanitizeResult, sanitize

__all__ = ["SanitizeConfig", "SanitizeProgress", "SanitizeResult", "sanitize"]
