"""An external client driving an hps study with ask → report → complete.

Any program can do this over HTTP; this one minimises f(x) = (x - 3)² by gradient descent with momentum,
using the learning rate and momentum hps samples, and reports the loss every 10 steps so the pruner can
stop hopeless trials early.

    python examples/ask_tell.py --api http://127.0.0.1:8000 --token $HPS_ADMIN_TOKEN
"""

from __future__ import annotations

import argparse
import math
import uuid

from hps import HpsClient

SPACE = {
    "params": {
        "lr": {"type": "float", "low": 1e-4, "high": 1.5, "scale": "log"},
        "momentum": {"type": "float", "low": 0.0, "high": 0.99},
    }
}


def descend(lr: float, momentum: float, steps: int = 50) -> list[float]:
    """Loss after each step of heavy-ball gradient descent on (x - 3)², from x = 0."""
    x, velocity, losses = 0.0, 0.0, []
    for _ in range(steps):
        gradient = 2.0 * (x - 3.0)
        velocity = momentum * velocity - lr * gradient
        x += velocity
        losses.append((x - 3.0) ** 2)
    return losses


def run(api: str, token: str, n_trials: int = 20) -> dict[str, float]:
    """Tune lr and momentum for ``n_trials`` trials; return the best params."""
    with HpsClient(api, token) as hps:
        study = hps.create_study(
            {
                "name": f"ask-tell-{uuid.uuid4().hex[:6]}",
                "direction": "minimize",
                "metric": "loss",
                "search_space": SPACE,
                "sampler": {"name": "tpe", "seed": 0, "n_startup_trials": 5},
                "pruner": {"name": "median", "n_startup_trials": 3},
                "budget": {"n_trials": n_trials},
            }
        )
        for _ in range(n_trials):
            trial = hps.ask(study.id)
            losses = descend(float(trial.params["lr"]), float(trial.params["momentum"]))
            outcome = None
            for step in range(9, len(losses), 10):
                if not math.isfinite(losses[step]) or losses[step] > 1e6:
                    outcome = hps.complete(study.id, trial.number, state="diverged", reason="loss exploded")
                    break
                answer = hps.report(study.id, trial.number, step=step, value=losses[step])
                if answer.should_prune:
                    outcome = hps.complete(study.id, trial.number, state="pruned", reason=f"step {step}")
                    break
            if outcome is None:
                hps.complete(study.id, trial.number, value=losses[-1])
        best = hps.best(study.id)
        print(f"study {study.id}: best loss {best.value:.3g} with {best.params}")
        return {name: float(value) for name, value in best.params.items() if isinstance(value, float)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--trials", type=int, default=20)
    arguments = parser.parse_args()
    run(arguments.api, arguments.token, arguments.trials)
