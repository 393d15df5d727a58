"""The extract-features stage: videos -> frozen encoder -> raw feature store."""

from pipeline.extract.config import ExtractConfig
from pipeline.extract.run import ExtractProgress, ExtractResult, extract

__all__ = ["ExtractConfig", "ExtractProgress", "ExtractResult", "extract"]
