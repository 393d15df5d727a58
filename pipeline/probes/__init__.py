"""Downstream task probes and attacker probes, and the evaluation report built from them."""

from pipeline.probes.baselines import BASELINES, inlp_method, leace_method
from pipeline.probes.evaluate import PROBES, SUMMARY_KEYS, EvalConfig, evaluate, run_probes
from pipeline.probes.features import ProbeFeatures, VideoSet, load_features
from pipeline.probes.report import EvalReport, headline_table

__all__ = [
    "BASELINES",
    "PROBES",
    "SUMMARY_KEYS",
    "EvalConfig",
    "EvalReport",
    "ProbeFeatures",
    "VideoSet",
    "evaluate",
    "headline_table",
    "inlp_method",
    "leace_method",
    "load_features",
    "run_probes",
]
