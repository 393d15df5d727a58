"""Downstream task probes and attacker probes, and the evaluation report built from them."""

from pipeline.probes.baselines import (
    BASELINES,
    FittedInlp,
    FittedLeace,
    fit_baseline,
    inlp_method,
    leace_method,
)
from pipeline.probes.evaluate import PROBES, SUMMARY_KEYS, EvalConfig, evaluate, run_probes
from pipeline.probes.features import ProbeFeatures, VideoSet, load_features
from pipeline.probes.protocol import (
    PROTOCOLS,
    ProtocolReport,
    ProtocolSpec,
    evaluate_protocol,
    read_protocol,
)
from pipeline.probes.report import EvalReport, headline_table

__all__ = [
    "BASELINES",
    "PROBES",
    "PROTOCOLS",
    "SUMMARY_KEYS",
    "EvalConfig",
    "EvalReport",
    "FittedInlp",
    "FittedLeace",
    "ProbeFeatures",
    "ProtocolReport",
    "ProtocolSpec",
    "VideoSet",
    "evaluate",
    "evaluate_protocol",
    "fit_baseline",
    "headline_table",
    "inlp_method",
    "leace_method",
    "load_features",
    "read_protocol",
    "run_probes",
]
