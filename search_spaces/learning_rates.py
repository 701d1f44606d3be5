"""Learning rates that suit a model family, and fitting a preset's to them.

The presets' learning-rate ranges and starts are PyTorch's defaults and the textbook recipes (Adam at 1e-3,
SGD at 0.1), which suit a small network trained, or re-headed, on a small dataset. A pretrained transformer
fine-tuned end to end wants rates one to two orders of magnitude smaller (the BERT paper searched 2e-5 to
5e-5): at 1e-3 it forgets what it learned and sits at chance. A task or a registered model therefore names
its family's :class:`LearningRates`, and a study that uses a preset gets the preset fitted to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from hps.search_spaces.schema import FloatParam, ParamValue, SearchSpace

LR = "lr"


@dataclass(frozen=True)
class LearningRates:
    """The lr range to search (log scale) and the lr each optimizer's start uses."""

    low: float
    high: float
    starts: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high:
            raise ValueError(f"learning rates need 0 < low < high, got {self.low} and {self.high}")
        for optimizer, lr in self.starts.items():
            if not self.low <= lr <= self.high:
                raise ValueError(f"the start lr of {optimizer} ({lr}) lies outside [{self.low}, {self.high}]")


def fit_learning_rates(
    space: SearchSpace, rates: LearningRates, *, keep_range: bool = False, keep_starts: bool = False
) -> SearchSpace:
    """``space`` (resolved: params, no preset) with its ``lr`` searched over ``rates``' range, unless
    ``keep_range``, and each start's ``lr`` set to its optimizer's start rate (clipped into the range when
    ``rates`` names none), unless ``keep_starts``. A space without a float ``lr`` is returned unchanged."""
    params = dict(space.params or {})
    current = params.get(LR)
    if not isinstance(current, FloatParam):
        return space
    low, high = (current.low, current.high) if keep_range else (rates.low, rates.high)
    params[LR] = current.model_copy(update={"low": low, "high": high, "scale": "log", "step": None})
    starts = space.starts
    if starts is not None and not keep_starts:
        starts = [_fit_start(start, rates, low, high) for start in starts]
    return SearchSpace(description=space.description, params=params, starts=starts)


def _fit_start(
    start: Mapping[str, ParamValue], rates: LearningRates, low: float, high: float
) -> dict[str, ParamValue]:
    fitted = dict(start)
    if LR not in fitted:
        return fitted
    optimizer = fitted.get("optimizer")
    wanted = rates.starts.get(str(optimizer)) if optimizer is not None else None
    given = fitted[LR]
    lr = wanted if wanted is not None else float(given) if isinstance(given, int | float) else low
    fitted[LR] = min(max(lr, low), high)
    return fitted
