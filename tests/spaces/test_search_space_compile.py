"""Compiling to Optuna: define-by-run sampling, reverse_log, encode/decode, grids.

Real Optuna with in-memory storage throughout.
"""

import dataclasses
import math
import warnings
from collections.abc import Callable

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.samplers import BaseSampler, GridSampler, RandomSampler, TPESampler
from optuna.trial import FixedTrial, Trial, create_trial

from hps.search_spaces import (
    CategoricalParam,
    CompiledSpace,
    FloatParam,
    IntParam,
    ParamsMismatch,
    ParamValue,
    SearchSpace,
    compile_space,
    list_presets,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def preset(name: str) -> CompiledSpace:
    return compile_space(SearchSpace(preset=name))


def check_config(compiled: CompiledSpace, config: dict[str, ParamValue]) -> None:
    """Assert ``config`` has exactly the params whose conditions hold, each in range."""
    for name, param in compiled.params.items():
        active = all(
            config.get(parent, math.nan) in allowed for parent, allowed in compiled.conditions[name].items()
        )
        assert (name in config) == active, name
        if name not in config:
            continue
        value = config[name]
        if isinstance(param, CategoricalParam):
            assert value in param.choices
        else:
            assert isinstance(value, int | float) and not isinstance(value, bool)
            assert param.low <= value <= param.high, (name, value)
            if isinstance(param, IntParam):
                assert type(value) is int


def run_study(compiled: CompiledSpace, sampler: BaseSampler, n_trials: int) -> optuna.Study:
    """Optimize a dummy objective, storing each drawn hps config as a user attr."""

    def objective(trial: Trial) -> float:
        config = compiled.suggest(trial)
        check_config(compiled, config)
        trial.set_user_attr("config", config)
        return sum(float(v) for v in config.values() if isinstance(v, int | float))

    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    return study


SAMPLERS: dict[str, Callable[[], BaseSampler]] = {
    "tpe": lambda: TPESampler(seed=7),
    "random": lambda: RandomSampler(seed=7),
}


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
@pytest.mark.parametrize("name", list_presets())
def test_every_preset_samples_100_trials(name: str, sampler: str) -> None:
    compiled = preset(name)
    study = run_study(compiled, SAMPLERS[sampler](), 100)
    assert len(study.trials) == 100
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert compiled.decode(trial.params) == trial.user_attrs["config"]
        assert set(trial.params) <= set(compiled.distributions())


def test_optimizers_preset_conditions() -> None:
    compiled = preset("optimizers")
    study = run_study(compiled, RandomSampler(seed=1), 200)
    expected = {
        "momentum": {"sgd", "rmsprop"},
        "nesterov": {"sgd"},
        "beta1": {"adam", "adamw"},
        "beta2": {"adam", "adamw"},
        "eps": {"adam", "adamw"},
        "weight_decay": {"sgd", "adamw"},
        "alpha": {"rmsprop"},
        "lr_decay": {"adagrad"},
        "history_size": {"lbfgs"},
        "max_iter": {"lbfgs"},
        "line_search_fn": {"lbfgs"},
    }
    seen = set()
    for trial in study.trials:
        config = trial.user_attrs["config"]
        seen.add(config["optimizer"])
        assert "lr" in config
        for name, optimizers in expected.items():
            assert (name in config) == (config["optimizer"] in optimizers), (name, config)
    assert seen == {"sgd", "adam", "adamw", "rmsprop", "adagrad", "lbfgs"}


def test_schedules_preset_warmup_only_with_linear_warmup() -> None:
    study = run_study(preset("schedules"), TPESampler(seed=3), 60)
    for trial in study.trials:
        config = trial.user_attrs["config"]
        assert ("warmup_ratio" in config) == (config["schedule"] == "linear_warmup")


def test_visit_order_puts_when_parents_first_and_is_otherwise_stable() -> None:
    space = SearchSpace.model_validate(
        {
            "params": {
                "b": {"type": "float", "low": 0, "high": 1, "when": {"a": ["on"]}},
                "c": {"type": "int", "low": 0, "high": 3},
                "a": {"type": "categorical", "choices": ["on", "off"]},
                "d": {"type": "float", "low": 0, "high": 1},
            }
        }
    )
    compiled = compile_space(space)
    assert list(compiled.params) == ["a", "b", "c", "d"]
    config = compiled.suggest(FixedTrial({"a": "on", "b": 0.5, "c": 2, "d": 0.1}))
    assert list(config) == ["a", "b", "c", "d"]
    assert compiled.suggest(FixedTrial({"a": "off", "c": 2, "d": 0.1})) == {
        "a": "off",
        "c": 2,
        "d": 0.1,
    }


def test_reverse_log_names_and_distribution() -> None:
    compiled = preset("adam")
    assert compiled.optuna_name("beta2") == "1-beta2"
    assert compiled.optuna_name("beta1") == "beta1"
    distributions = compiled.distributions()
    assert "beta2" not in distributions
    assert distributions["1-beta2"] == FloatDistribution(1 - 0.9999, 1 - 0.9, log=True)
    assert distributions["optimizer"] == CategoricalDistribution(["adam"])
    config = compiled.suggest(FixedTrial({"optimizer": "adam", "lr": 1e-3, "beta1": 0.9,
                                          "1-beta2": 1e-3, "eps": 1e-8}))  # fmt: skip
    assert config["beta2"] == pytest.approx(0.999)


def test_reverse_log_is_log_uniform_in_one_minus_value() -> None:
    compiled = preset("adam")
    study = run_study(compiled, RandomSampler(seed=11), 1000)
    betas = [trial.user_attrs["config"]["beta2"] for trial in study.trials]
    assert all(0.9 <= b <= 0.9999 for b in betas)
    assert all("1-beta2" in trial.params for trial in study.trials)
    logs = [math.log10(1 - b) for b in betas]
    # log10(1 - beta2) is uniform on [-4, -1]: mean -2.5, two thirds below -2.
    assert sum(logs) / len(logs) == pytest.approx(-2.5, abs=0.1)
    share_above_099 = sum(b > 0.99 for b in betas) / len(betas)
    assert share_above_099 == pytest.approx(2 / 3, abs=0.05)  # linear would give ~0.1


def test_encode_decode_round_trip_through_optuna() -> None:
    compiled = preset("optimizers")
    drawn = run_study(compiled, RandomSampler(seed=5), 30)
    study = optuna.create_study()
    for trial in drawn.trials:
        config = trial.user_attrs["config"]
        values, distributions = compiled.encode(config)
        # 1 - (1 - y) is not always y in floating point, so reverse_log values
        # come back equal only to float precision.
        assert values.keys() == trial.params.keys()
        for key, value in values.items():
            if key.startswith("1-"):
                assert value == pytest.approx(trial.params[key], rel=1e-9)
            else:
                assert value == trial.params[key]
        study.add_trial(create_trial(params=values, distributions=distributions, value=0.0))
        assert compiled.decode(study.trials[-1].params) == config


def test_encode_returns_the_choice_itself() -> None:
    compiled = preset("sgd")
    config: dict[str, ParamValue] = {
        "optimizer": "sgd",
        "lr": 0.1,
        "momentum": 0.9,
        "nesterov": 1,
        "weight_decay": 1e-4,
    }
    values, _ = compiled.encode(config)
    assert values["nesterov"] is True


ENCODE_ERRORS: list[tuple[dict[str, ParamValue], list[str]]] = [
    ({"optimizer": "adam", "lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "x": 1},
     ["x:", "not a parameter"]),
    ({"optimizer": "adam", "lr": 1e-3, "momentum": 0.9, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
     ["momentum:", "given, but its condition does not hold", "optimizer in ['sgd', 'rmsprop']"]),
    ({"optimizer": "adam", "lr": 1e-3, "beta2": 0.999, "eps": 1e-8},
     ["beta1:", "missing", "optimizer in ['adam', 'adamw']"]),
    ({"optimizer": "adam", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
     ["lr:", "missing", "always required"]),
    ({"optimizer": "adam", "lr": 2.0, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
     ["lr:", "outside"]),
    ({"optimizer": "adam", "lr": math.nan, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
     ["lr:", "outside"]),
    ({"optimizer": "adam", "lr": "0.1", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
     ["lr:", "expected a number"]),
    ({"optimizer": "adam", "lr": True, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
     ["lr:", "expected a number"]),
    ({"optimizer": "adam", "lr": 1e-3, "beta1": 0.9, "beta2": 0.99999, "eps": 1e-8},
     ["beta2:", "outside"]),
    ({"optimizer": "adamax", "lr": 1e-3}, ["optimizer:", "not among the choices"]),
]  # fmt: skip


@pytest.mark.parametrize(("config", "words"), ENCODE_ERRORS)
def test_encode_errors_name_the_param(config: dict[str, ParamValue], words: list[str]) -> None:
    with pytest.raises(ParamsMismatch) as info:
        preset("optimizers").encode(config)
    message = str(info.value)
    assert any(word in message for word in words if word.endswith(":")), message
    for word in words:
        if not word.endswith(":"):
            assert word in message


def test_encode_errors_for_discrete_numbers() -> None:
    compiled = discrete_space()
    good: dict[str, ParamValue] = {"n": 4, "ratio": 0.2, "flag": True, "width": 3}
    assert compiled.encode(good)[0] == good
    for name, bad, words in [
        ("n", 3, "outside [2, 8] with step 2"),
        ("n", 4.0, "expected an integer"),
        ("n", False, "expected an integer"),
        ("ratio", 0.25, "not low (0.1) plus a multiple of step (0.1)"),
    ]:
        with pytest.raises(ParamsMismatch, match=rf"^{name}: .*") as info:
            compiled.encode({**good, name: bad})
        assert words in str(info.value)


def test_decode_rejects_unknown_optuna_names() -> None:
    with pytest.raises(ParamsMismatch, match="beta2: not a parameter"):
        preset("adam").decode({"beta2": 0.999})


def discrete_space() -> CompiledSpace:
    return compile_space(
        SearchSpace.model_validate(
            {
                "params": {
                    "n": {"type": "int", "low": 2, "high": 8, "step": 2},
                    "ratio": {"type": "float", "low": 0.1, "high": 0.3, "step": 0.1},
                    "flag": {"type": "categorical", "choices": [True, False]},
                    "width": {"type": "int", "low": 1, "high": 4, "scale": "log"},
                }
            }
        )
    )


def test_grid_values_of_a_discrete_space() -> None:
    compiled = discrete_space()
    grid = compiled.grid_values()
    assert grid == {
        "n": [2, 4, 6, 8],
        "ratio": [0.1, 0.2, 0.3],
        "flag": [True, False],
        "width": [1, 2, 3, 4],
    }
    assert compiled.size() == 4 * 3 * 2 * 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # GridSampler warns on values outside a distribution
        study = run_study(compiled, GridSampler(grid, seed=0), 96)
    configs = {tuple(t.user_attrs["config"].values()) for t in study.trials}
    assert len(configs) == 96


def test_continuous_spaces_have_no_grid() -> None:
    for name in ["adam", "adamw", "sgd", "optimizers", "schedules"]:
        assert preset(name).grid_values() is None
        assert preset(name).size() is None


def test_bert_grid_visits_all_18_points() -> None:
    compiled = preset("bert-grid")
    assert compiled.size() == 18
    grid = compiled.grid_values()
    assert grid is not None
    assert all(isinstance(param, CategoricalParam) for param in compiled.params.values())
    study = run_study(compiled, GridSampler(grid, seed=0), 18)
    configs = [t.user_attrs["config"] for t in study.trials]
    assert len({tuple(c.values()) for c in configs}) == 18
    for config in configs:
        assert list(config) == ["lr", "batch_size", "epochs", "optimizer", "schedule"]
        assert config["optimizer"] == "adamw" and config["schedule"] == "linear_warmup"


def test_compiled_space_is_read_only() -> None:
    compiled = preset("optimizers")
    assert compiled.space.preset is None and compiled.space.params is not None
    assert compiled.conditions["beta1"] == {"optimizer": ("adam", "adamw")}
    assert compiled.conditions["lr"] == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        compiled.params = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        compiled.params["lr"] = FloatParam(type="float", low=0, high=1)  # type: ignore[index]
    with pytest.raises(TypeError):
        compiled.conditions["beta1"]["optimizer"] = ("sgd",)  # type: ignore[index]


def test_distributions_match_what_suggest_records() -> None:
    compiled = preset("optimizers")
    study = run_study(compiled, RandomSampler(seed=2), 40)
    distributions = compiled.distributions()
    for trial in study.trials:
        for key, distribution in trial.distributions.items():
            assert distributions[key] == distribution


def test_optuna_name_of_an_unknown_param_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        preset("adam").optuna_name("momentum")


def test_random_draws_of_stepped_params_stay_on_their_grid() -> None:
    compiled = discrete_space()
    study = run_study(compiled, RandomSampler(seed=4), 100)
    for trial in study.trials:
        # encode rejects values off the range or off the step grid.
        values, _ = compiled.encode(trial.user_attrs["config"])
        assert values == trial.params


def test_enqueued_encoded_params_are_drawn_as_given() -> None:
    compiled = preset("adamw")
    config: dict[str, ParamValue] = {
        "optimizer": "adamw",
        "lr": 3e-4,
        "beta1": 0.9,
        "beta2": 0.999,
        "eps": 1e-8,
        "weight_decay": 0.01,
    }
    study = optuna.create_study(sampler=TPESampler(seed=0))
    study.enqueue_trial(compiled.encode(config)[0])
    trial = study.ask()
    assert compiled.suggest(trial) == config


def test_per_optimizer_lr_ranges_are_sampled_as_their_own_optuna_params() -> None:
    narrowed = preset("fine-tuning").with_lr_ranges({"adamw": (1e-5, 1e-3), "sgd": (1e-3, 1e-1)})
    study = optuna.create_study(sampler=TPESampler(seed=3, n_startup_trials=5, multivariate=True, group=True))
    for _ in range(40):
        trial = study.ask()
        config = narrowed.suggest(trial)
        study.tell(trial, -abs(math.log10(float(config["lr"])) + 3))
        low, high = {"adamw": (1e-5, 1e-3), "sgd": (1e-3, 1e-1)}[str(config["optimizer"])]
        assert low <= float(config["lr"]) <= high
        assert f"lr@{config['optimizer']}" in trial.params and "lr" not in trial.params
        assert narrowed.decode(trial.params) == config
        values, _ = narrowed.encode(config)
        assert values == trial.params
    assert {"lr", "lr@adamw", "lr@sgd"} <= set(narrowed.distributions())
    with pytest.raises(ParamsMismatch, match=r"lr: 0.5 is outside \[0.001, 0.1\]"):
        narrowed.encode({"optimizer": "sgd", "lr": 0.5, "momentum": 0.9})


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ({"adam": (1e-5, 1e-3)}, "'adam' is not among its choices"),
        ({"adamw": (1e-7, 1e-3)}, r"does not lie within \[1e-06, 1.0\]"),
        ({"adamw": (1e-3, 1e-5)}, "does not lie within"),
    ],
)
def test_per_optimizer_lr_ranges_must_fit_the_space(
    ranges: dict[str, tuple[float, float]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        preset("fine-tuning").with_lr_ranges(ranges)
