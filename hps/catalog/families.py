"""Model families and the learning rates that suit them when fine-tuned.

A study that uses a preset gets the preset's learning-rate range and its starts' rates fitted to the family
of the model it fine-tunes (``search_spaces.learning_rates``); a study that writes its own ``lr`` keeps it.
Built-in tasks and models name their family; an operator's model names its own in the registry file
(``family: transformer``). ``GET /v1/tasks`` and ``GET /v1/models`` show them.
"""

from __future__ import annotations

from collections.abc import Mapping

from hps.search_spaces import LearningRates

# A pretrained transformer fine-tuned end to end. bench/lr_families.py, AdamW on the bundled MiniLM and
# reviews (two seeds): median validation accuracy 0.77 at 1e-5, 0.98 at 2e-5, 1.00 at 5e-5, 0.99 at 1e-4,
# 0.98 at 3e-4, and chance (0.50) at 1e-3 and 3e-3 — the BERT paper's 2e-5..5e-5 region and a little above.
# The range stops at 1e-3, where the collapse starts; Adam-style optimizers start at 5e-5, Adagrad (whose
# steps shrink) and SGD (no per-weight scaling) at the top of the range. RMSprop's start is not measured.
TRANSFORMER = LearningRates(
    low=5e-6,
    high=1e-3,
    starts={"adamw": 5e-5, "adam": 5e-5, "rmsprop": 1e-5, "adagrad": 1e-3, "sgd": 1e-3},
)

FAMILIES: Mapping[str, LearningRates | None] = {
    "transformer": TRANSFORMER,
    # A small network trained, or re-headed, on a small dataset: the presets as written (PyTorch's defaults
    # and the textbook SGD recipe), which bench/search_efficiency.py measured on digits.
    "small-network": None,
    "cnn": None,
}


def learning_rates(family: str) -> LearningRates | None:
    """The rates of a family (None: fit nothing); ``KeyError`` for an unknown family."""
    return FAMILIES[family]
