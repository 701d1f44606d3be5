"""Search spaces for hps studies: schema, validation, presets, Optuna compiling.

Imported by the server (to validate and sample) and by workers (to read
params); it depends on neither.
"""

from hps.search_spaces.compile import CompiledSpace, ParamsMismatch, compile_space
from hps.search_spaces.learning_rates import LearningRates, fit_learning_rates
from hps.search_spaces.presets import UnknownPreset, keep_choices, list_presets, load_preset, resolve
from hps.search_spaces.schema import (
    CategoricalParam,
    FloatParam,
    IntParam,
    Param,
    ParamValue,
    SearchSpace,
    SearchSpaceError,
)

__all__ = [
    "CategoricalParam",
    "CompiledSpace",
    "FloatParam",
    "IntParam",
    "LearningRates",
    "Param",
    "ParamValue",
    "ParamsMismatch",
    "SearchSpace",
    "SearchSpaceError",
    "UnknownPreset",
    "compile_space",
    "fit_learning_rates",
    "keep_choices",
    "list_presets",
    "load_preset",
    "resolve",
]
