"""Drive an hps study from a plain PyTorch training loop, with the SDK's trial context manager.

The script creates an external study (no task: hps only samples and prunes), then runs ``--trials``
trials: each builds a small MLP for scikit-learn's bundled 8x8 digits with the sampled optimizer, learning
rate, momentum and weight decay, reports the validation accuracy after every epoch, stops early when hps
says prune, and completes with the final accuracy. A crash inside the block would be recorded as a failed
trial; the lease is kept alive by a heartbeat thread however long an epoch takes.

    python examples/torch_external.py --api http://127.0.0.1:8000 --token $HPS_TOKEN --trials 8
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import torch
from sklearn.datasets import load_digits
from torch import nn

from hps import HpsClient

SPACE = {
    "params": {
        "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
        "lr": {"type": "float", "low": 1e-4, "high": 0.3, "scale": "log"},
        "momentum": {"type": "float", "low": 0.0, "high": 0.95, "when": {"optimizer": ["sgd"]}},
        "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "scale": "log"},
    }
}
EPOCHS = 6


def digits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Train and validation splits of the 1797 bundled digits, pixels scaled to [0, 1]."""
    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images / 16.0, dtype=torch.float32)
    y = torch.tensor(labels, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    train, valid = order[:1400], order[1400:]
    return x[train], y[train], x[valid], y[valid]


def build_optimizer(model: nn.Module, params: dict[str, Any]) -> torch.optim.Optimizer:
    """The sampled optimizer; ``momentum`` exists only when hps sampled SGD."""
    lr, decay = float(params["lr"]), float(params["weight_decay"])
    if params["optimizer"] == "sgd":
        momentum = float(params["momentum"])
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=decay)
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=decay)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of ``x`` classified right."""
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def main(api: str, token: str, n_trials: int) -> None:
    """Create a study and run ``n_trials`` trials of it."""
    torch.set_num_threads(1)
    x_train, y_train, x_valid, y_valid = digits()
    with HpsClient(api, token) as hps:
        study = hps.create_study(
            {
                "name": f"torch-digits-{uuid.uuid4().hex[:6]}",
                "direction": "maximize",
                "metric": "val_accuracy",
                "search_space": SPACE,
                "sampler": {"name": "tpe", "seed": 0},
                "pruner": {"name": "median", "n_startup_trials": 2},
                "budget": {"n_trials": n_trials},
            }
        )
        print(f"study {study.id} {study.name}")
        for _ in range(n_trials):
            with hps.run_trial(study.id) as trial:
                torch.manual_seed(trial.number)
                model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
                optimizer = build_optimizer(model, trial.params)
                for epoch in range(EPOCHS):
                    for batch in torch.randperm(len(x_train)).split(64):
                        optimizer.zero_grad()
                        nn.functional.cross_entropy(model(x_train[batch]), y_train[batch]).backward()
                        optimizer.step()
                    score = accuracy(model, x_valid, y_valid)
                    if trial.report(epoch, score).should_prune:
                        trial.prune(f"val_accuracy {score:.3f} after epoch {epoch}")
                trial.complete(score)
            print(f"trial {trial.number}: {trial.result.state if trial.result else '-'} {trial.params}")
        best = hps.best(study.id)
        print(f"study {study.id}: best val_accuracy {best.value:.3f} (trial {best.number}), {best.params}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--trials", type=int, default=10)
    arguments = parser.parse_args()
    main(arguments.api, arguments.token, arguments.trials)
