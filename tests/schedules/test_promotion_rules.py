"""Promotion rules (first run, margin, relative margin, direction, another metric) and fitting a warm
start's configurations to a changed search space."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from hps.search_spaces import SearchSpace, compile_space
from hps.server.schedules.promotion import Candidate, decide, incumbent_of
from hps.server.schedules.warm_start import fit_config
from hps.wire.schedules import PromotionSpec

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def candidate(value: float, *, metric: str = "val_accuracy", direction: str = "maximize") -> Candidate:
    return Candidate(value, metric, direction, {"lr": 0.01}, study_id=9, study_name="s-9", trial_number=3)


def incumbent(value: float, *, metric: str = "val_accuracy", direction: str = "maximize") -> dict[str, Any]:
    return incumbent_of(candidate(value, metric=metric, direction=direction), run_id=1, now=NOW)


def test_the_first_winner_becomes_the_incumbent() -> None:
    decision = decide(None, candidate(0.5), PromotionSpec(margin=0.1))
    assert decision.outcome == "promoted" and "first" in decision.reason


@pytest.mark.parametrize(
    ("held", "new", "margin", "outcome"),
    [
        (0.90, 0.915, 0.01, "promoted"),
        (0.90, 0.905, 0.01, "kept"),  # better, but not by the margin
        (0.90, 0.91, 0.01, "kept"),  # exactly the margin is not more than it
        (0.90, 0.80, 0.0, "kept"),  # worse
        (0.90, 0.9001, 0.0, "promoted"),  # no margin: any improvement
    ],
)
def test_maximize_needs_more_than_the_margin(held: float, new: float, margin: float, outcome: str) -> None:
    decision = decide(incumbent(held), candidate(new), PromotionSpec(margin=margin))
    assert decision.outcome == outcome
    assert decision.incumbent_value == held and decision.candidate_value == new


def test_minimize_counts_lower_as_better_and_relative_margins_scale() -> None:
    rule = PromotionSpec(margin=0.1, relative=True)  # 10% of the incumbent's value
    held = incumbent(2.0, metric="loss", direction="minimize")
    assert decide(held, candidate(1.85, metric="loss", direction="minimize"), rule).outcome == "kept"
    promoted = decide(held, candidate(1.75, metric="loss", direction="minimize"), rule)
    assert promoted.outcome == "promoted" and promoted.required == pytest.approx(0.2)
    assert decide(held, candidate(2.5, metric="loss", direction="minimize"), rule).outcome == "kept"


def test_another_metric_or_direction_is_not_compared() -> None:
    for other in (candidate(0.99, metric="val_f1"), candidate(0.1, direction="minimize")):
        decision = decide(incumbent(0.5), other, PromotionSpec())
        assert decision.outcome == "not_comparable" and "no comparison" in decision.reason
        record = decision.as_json(PromotionSpec())
        assert record["incumbent_value"] == 0.5 and record["decision"] == "not_comparable"


SPACE = compile_space(
    SearchSpace(
        params={
            "optimizer": {"type": "categorical", "choices": ["sgd", "adamw"]},
            "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "scale": "log"},
            "momentum": {"type": "float", "low": 0.0, "high": 0.9, "when": {"optimizer": ["sgd"]}},
            "weight_decay": {
                "type": "float",
                "low": 0.0,
                "high": 0.1,
                "step": 0.01,
                "when": {"optimizer": ["adamw"]},
            },
            "batch_size": {"type": "int", "low": 16, "high": 64, "step": 16},
        }
    )
)


def test_fitting_keeps_what_fits_and_clips_numbers_to_the_bounds() -> None:
    fitted, notes = fit_config(
        SPACE, {"optimizer": "adamw", "lr": 0.5, "weight_decay": 0.034, "batch_size": 100, "eps": 1e-8}
    )
    assert fitted == {"optimizer": "adamw", "lr": 1e-2, "weight_decay": 0.03, "batch_size": 64}
    assert "dropped eps: not a parameter of this search space" in notes
    assert "clipped lr from 0.5 to 0.01" in notes
    assert any(note.startswith("clipped batch_size from 100 to 64") for note in notes)
    assert fit_config(SPACE, fitted) == (fitted, [])


def test_a_categorical_value_no_longer_offered_drops_the_configuration() -> None:
    fitted, notes = fit_config(SPACE, {"optimizer": "rmsprop", "lr": 1e-3, "batch_size": 32})
    assert fitted is None
    assert notes[0] == "dropped optimizer='rmsprop': not among the choices ['sgd', 'adamw']"
    assert notes[-1].startswith("not seeded: optimizer is required")


def test_a_conditional_param_whose_condition_fails_is_dropped() -> None:
    fitted, notes = fit_config(
        SPACE, {"optimizer": "adamw", "lr": 1e-3, "momentum": 0.5, "weight_decay": 0.01, "batch_size": 32}
    )
    assert fitted == {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.01, "batch_size": 32}
    assert notes == ["dropped momentum: its condition (optimizer in ['sgd']) no longer holds"]


def test_a_new_required_param_means_the_configuration_is_not_seeded() -> None:
    fitted, notes = fit_config(SPACE, {"optimizer": "sgd", "lr": 1e-3, "batch_size": 32})
    assert fitted is None and notes == [
        "not seeded: momentum is required here and the source has no value for it"
    ]
