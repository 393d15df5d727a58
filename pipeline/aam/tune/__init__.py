"""`anon-store tune`: search the adapter's loss weights, architecture and epochs on val."""

from pipeline.aam.tune.config import TuneConfig
from pipeline.aam.tune.run import TuneResult, tune
from pipeline.aam.tune.select import Selection, pareto_front, select_trial
from pipeline.aam.tune.space import SearchSpace, WeightRange
from pipeline.aam.tune.trials import Trial, trial_list

__all__ = [
    "SearchSpace",
    "Selection",
    "Trial",
    "TuneConfig",
    "TuneResult",
    "WeightRange",
    "pareto_front",
    "select_trial",
    "trial_list",
    "tune",
]
