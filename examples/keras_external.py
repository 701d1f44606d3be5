"""Drive an hps study from a Keras 3 model (``KERAS_BACKEND=torch``: no TensorFlow needed).

The script creates an external study over Keras' own optimizers (Adam or RMSprop, learning rate, and
Adam's beta_1), then runs ``--trials`` trials on scikit-learn's bundled 8x8 digits. A Keras callback
reports ``val_accuracy`` to hps after every epoch and stops ``fit`` when hps says prune; the trial then
ends as pruned, otherwise it completes with the last validation accuracy. The SDK's context manager
heartbeats while ``fit`` runs and records a crash as a failed trial.

    KERAS_BACKEND=torch python examples/keras_external.py --api http://127.0.0.1:8000 --token $HPS_TOKEN
"""

from __future__ import annotations

import os

# Keras reads its backend once, at import: torch here, whatever the environment says otherwise.
os.environ["KERAS_BACKEND"] = "torch"

import argparse
import uuid
from typing import Any

import keras
import numpy as np
from sklearn.datasets import load_digits

from hps import HpsClient, TrialRun

SPACE = {
    "params": {
        "optimizer": {"type": "categorical", "choices": ["adam", "rmsprop"]},
        "learning_rate": {"type": "float", "low": 1e-4, "high": 0.05, "scale": "log"},
        "beta_1": {"type": "float", "low": 0.8, "high": 0.99, "when": {"optimizer": ["adam"]}},
    }
}
EPOCHS = 5


class ReportToHps(keras.callbacks.Callback):  # type: ignore[misc]  # keras ships no type hints
    """After each epoch: report ``val_accuracy``; stop training when hps answers prune."""

    def __init__(self, trial: TrialRun) -> None:
        super().__init__()
        self.trial = trial
        self.last = 0.0

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        """Keras calls this with the epoch's metrics, validation ones included."""
        self.last = float((logs or {})["val_accuracy"])
        if self.trial.report(epoch, self.last).should_prune:
            self.model.stop_training = True


def build_model(params: dict[str, Any]) -> keras.Model:
    """A small dense classifier compiled with the sampled optimizer."""
    if params["optimizer"] == "adam":
        optimizer = keras.optimizers.Adam(learning_rate=params["learning_rate"], beta_1=params["beta_1"])
    else:
        optimizer = keras.optimizers.RMSprop(learning_rate=params["learning_rate"])
    model = keras.Sequential(
        [keras.Input(shape=(64,)), keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model


def main(api: str, token: str, n_trials: int) -> None:
    """Create a study and run ``n_trials`` trials of it."""
    images, labels = load_digits(return_X_y=True)
    x, y = (images / 16.0).astype("float32"), labels.astype("int64")
    order = np.random.default_rng(0).permutation(len(x))
    train, valid = order[:1400], order[1400:]
    with HpsClient(api, token) as hps:
        study = hps.create_study(
            {
                "name": f"keras-digits-{uuid.uuid4().hex[:6]}",
                "direction": "maximize",
                "metric": "val_accuracy",
                "search_space": SPACE,
                "sampler": {"name": "tpe", "seed": 0},
                "pruner": {"name": "median", "n_startup_trials": 2},
                "budget": {"n_trials": n_trials},
            }
        )
        print(f"study {study.id} {study.name} on keras backend {keras.backend.backend()}")
        for _ in range(n_trials):
            with hps.run_trial(study.id) as trial:
                keras.utils.set_random_seed(trial.number)
                reporter = ReportToHps(trial)
                build_model(trial.params).fit(
                    x[train],
                    y[train],
                    validation_data=(x[valid], y[valid]),
                    epochs=EPOCHS,
                    batch_size=64,
                    callbacks=[reporter],
                    verbose=0,
                )
                if trial.should_prune:
                    trial.prune()
                trial.complete(reporter.last)
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
