"""Building torch optimizers and learning-rate schedules from sampled params, on real torch."""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import pytest
import torch

from hps.workers.optimizers import (
    DEFAULT_LR,
    OptimizerConfigError,
    build_optimizer,
    build_schedule,
    training_settings,
)

CPU = torch.device("cpu")


def _parameters() -> list[torch.nn.Parameter]:
    return list(torch.nn.Linear(3, 2).parameters())


def _build(params: dict[str, object], device: torch.device = CPU) -> torch.optim.Optimizer:
    return build_optimizer(params, _parameters(), device)


@pytest.mark.parametrize(
    ("params", "cls", "expected"),
    [
        (
            {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
            torch.optim.SGD,
            {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-4},
        ),
        (
            {
                "optimizer": "adam",
                "lr": 2e-4,
                "beta1": 0.85,
                "beta2": 0.995,
                "eps": 1e-7,
                "weight_decay": 1e-3,
            },
            torch.optim.Adam,
            {"lr": 2e-4, "betas": (0.85, 0.995), "eps": 1e-7, "weight_decay": 1e-3},
        ),
        (
            {
                "optimizer": "adamw",
                "lr": 3e-5,
                "beta1": 0.8,
                "beta2": 0.95,
                "eps": 1e-9,
                "weight_decay": 0.05,
            },
            torch.optim.AdamW,
            {"lr": 3e-5, "betas": (0.8, 0.95), "eps": 1e-9, "weight_decay": 0.05},
        ),
        (
            {
                "optimizer": "rmsprop",
                "lr": 0.01,
                "momentum": 0.5,
                "alpha": 0.95,
                "eps": 1e-6,
                "weight_decay": 0.0,
            },
            torch.optim.RMSprop,
            {"lr": 0.01, "momentum": 0.5, "alpha": 0.95, "eps": 1e-6, "weight_decay": 0.0},
        ),
        (
            {"optimizer": "adagrad", "lr": 0.1, "lr_decay": 0.001, "eps": 1e-9, "weight_decay": 1e-5},
            torch.optim.Adagrad,
            {"lr": 0.1, "lr_decay": 0.001, "eps": 1e-9, "weight_decay": 1e-5},
        ),
    ],
)
def test_each_optimizer_gets_the_sampled_values(
    params: dict[str, object], cls: type[torch.optim.Optimizer], expected: dict[str, Any]
) -> None:
    optimizer = _build(params)
    assert type(optimizer) is cls
    group = optimizer.param_groups[0]
    for name, value in expected.items():
        assert group[name] == value, name


def test_absent_params_keep_torch_defaults_but_lr_is_ours() -> None:
    optimizer = _build({"optimizer": "rmsprop"})
    torch_default = torch.optim.RMSprop(_parameters())
    group, default_group = optimizer.param_groups[0], torch_default.param_groups[0]
    assert group["lr"] == DEFAULT_LR != default_group["lr"]
    for name in ("alpha", "eps", "momentum", "weight_decay"):
        assert group[name] == default_group[name]


def test_one_tuned_beta_keeps_the_default_other() -> None:
    assert _build({"optimizer": "adam", "beta2": 0.98}).param_groups[0]["betas"] == (0.9, 0.98)


def test_default_optimizer_is_adamw() -> None:
    optimizer = _build({})
    assert type(optimizer) is torch.optim.AdamW
    assert optimizer.param_groups[0]["lr"] == DEFAULT_LR


def test_training_params_are_accepted_and_ignored() -> None:
    params: dict[str, object] = {
        "optimizer": "sgd",
        "lr": 0.1,
        "epochs": 3,
        "batch_size": 16,
        "schedule": "linear_warmup",
        "warmup_ratio": 0.1,
    }
    assert type(_build(params)) is torch.optim.SGD


def _one_step_with_zero_gradient(optimizer_name: str) -> float:
    weight = torch.nn.Parameter(torch.tensor([2.0]))
    optimizer = build_optimizer({"optimizer": optimizer_name, "lr": 0.1, "weight_decay": 0.1}, [weight], CPU)
    weight.grad = torch.zeros(1)
    optimizer.step()
    return weight.item()


def test_adamw_decays_weights_decoupled_and_adam_through_the_gradient() -> None:
    # AdamW shrinks the weight by lr * wd and its zero gradient moves nothing: 2 * (1 - 0.01).
    assert _one_step_with_zero_gradient("adamw") == pytest.approx(1.98)
    # Adam adds wd * w to the gradient, which its normalisation turns into a full lr step: 2 - 0.1.
    assert _one_step_with_zero_gradient("adam") == pytest.approx(1.9)


def test_cpu_leaves_kernel_choice_to_torch() -> None:
    group = _build({"optimizer": "adam"}).param_groups[0]
    assert group["fused"] is None
    assert group["foreach"] is None


@pytest.mark.parametrize(
    ("name", "flag"),
    [("sgd", "fused"), ("adam", "fused"), ("adamw", "fused"), ("adagrad", "fused"), ("rmsprop", "foreach")],
)
def test_cuda_asks_for_fused_kernels_where_torch_has_them(name: str, flag: str) -> None:
    # Only the choice is checked: the params are on the CPU and no step is taken, so no GPU is needed.
    group = _build({"optimizer": name}, torch.device("cuda")).param_groups[0]
    assert group[flag] is True


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"optimizer": "lion"}, ["optimizer", "lion", "sgd", "adamw", "rmsprop", "adagrad"]),
        ({"optimizer": "adam", "lr_max": 0.1}, ["lr_max"]),
        ({"optimizer": "adam", "momentum": 0.9}, ["momentum", "adam"]),
        ({"optimizer": "sgd", "beta1": 0.9}, ["beta1", "sgd"]),
        ({"optimizer": "adamw", "alpha": 0.9}, ["alpha", "adamw"]),
        ({"optimizer": "rmsprop", "nesterov": True}, ["nesterov", "rmsprop"]),
        ({"optimizer": "sgd", "lr_decay": 0.1}, ["lr_decay", "sgd"]),
        ({"lr": 0.0}, ["lr"]),
        ({"lr": -0.1}, ["lr"]),
        ({"lr": "fast"}, ["lr"]),
        ({"lr": True}, ["lr"]),
        ({"lr": math.nan}, ["lr"]),
        ({"lr": math.inf}, ["lr"]),
        ({"beta1": 1.0}, ["beta1"]),
        ({"beta2": -0.1}, ["beta2"]),
        ({"eps": 0.0}, ["eps"]),
        ({"weight_decay": -1e-3}, ["weight_decay"]),
        ({"optimizer": "sgd", "momentum": 1.0}, ["momentum"]),
        ({"optimizer": "rmsprop", "alpha": 1.5}, ["alpha"]),
        ({"optimizer": "adagrad", "lr_decay": -0.1}, ["lr_decay"]),
        ({"optimizer": "sgd", "nesterov": "yes"}, ["nesterov"]),
        ({"optimizer": "sgd", "nesterov": True}, ["nesterov", "momentum"]),
        ({"optimizer": "sgd", "nesterov": True, "momentum": 0.0}, ["nesterov", "momentum"]),
    ],
)
def test_bad_params_raise_an_error_naming_them(params: dict[str, object], named: list[str]) -> None:
    with pytest.raises(OptimizerConfigError) as raised:
        _build(params)
    assert isinstance(raised.value, ValueError)
    assert raised.value.param == named[0]
    for word in named:
        assert word in str(raised.value)


def test_nesterov_off_needs_no_momentum() -> None:
    assert _build({"optimizer": "sgd", "nesterov": False}).param_groups[0]["nesterov"] is False


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"schedule": "step"}, ["schedule", "step", "constant", "cosine", "linear_warmup"]),
        ({"schedule": "cosine", "warmup_ratio": 0.1}, ["warmup_ratio", "cosine"]),
        ({"schedule": "linear_warmup", "warmup_ratio": 1.0}, ["warmup_ratio"]),
        ({"epochs": 0}, ["epochs"]),
        ({"epochs": True}, ["epochs"]),
        ({"batch_size": 2.5}, ["batch_size"]),
        ({"batch_size": "32"}, ["batch_size"]),
    ],
)
def test_bad_training_params_raise_an_error_naming_them(params: dict[str, object], named: list[str]) -> None:
    with pytest.raises(OptimizerConfigError) as raised:
        training_settings(params)
    assert raised.value.param == named[0]
    for word in named:
        assert word in str(raised.value)


def test_training_settings_defaults_and_whole_floats() -> None:
    settings = training_settings({"epochs": 3.0})
    assert settings.epochs == 3
    assert settings.batch_size is None
    assert settings.schedule == "constant"
    assert settings.warmup_ratio == 0.1


def _lrs(params: dict[str, object], total_steps: int) -> list[float]:
    """The lr before each of ``total_steps`` steps and after the last one."""
    optimizer = _build({"optimizer": "sgd", "lr": 0.1, **params})
    schedule = build_schedule(optimizer, params, total_steps)
    lrs = [optimizer.param_groups[0]["lr"]]
    for _ in range(total_steps):
        optimizer.step()
        schedule.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_constant_schedule_keeps_the_lr() -> None:
    assert _lrs({}, 10) == [pytest.approx(0.1)] * 11
    assert _lrs({"schedule": "constant"}, 3) == [pytest.approx(0.1)] * 4


def test_cosine_schedule_anneals_to_zero() -> None:
    lrs = _lrs({"schedule": "cosine"}, 20)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[10] == pytest.approx(0.05)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(later < earlier for earlier, later in pairwise(lrs))


def test_linear_warmup_rises_then_falls_to_zero() -> None:
    lrs = _lrs({"schedule": "linear_warmup", "warmup_ratio": 0.2}, 20)  # 4 warm-up steps
    assert lrs[0] == pytest.approx(0.1 / 5)
    assert lrs[:5] == sorted(lrs[:5])
    assert lrs[4] == pytest.approx(0.1)
    assert lrs[12] == pytest.approx(0.05)
    assert all(later < earlier for earlier, later in pairwise(lrs[4:]))
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_linear_warmup_defaults_to_a_tenth_of_the_steps() -> None:
    lrs = _lrs({"schedule": "linear_warmup"}, 30)  # 3 warm-up steps
    assert lrs[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])
    assert lrs[4] < lrs[3]


def test_schedule_rejects_unknown_names_and_no_steps() -> None:
    optimizer = _build({})
    with pytest.raises(OptimizerConfigError, match="'step'"):
        build_schedule(optimizer, {"schedule": "step"}, 10)
    with pytest.raises(ValueError, match="total_steps"):
        build_schedule(optimizer, {}, 0)
