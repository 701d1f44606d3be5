"""Optuna on hps: ``HpsStorage`` makes hps the storage of any Optuna program (docs/optuna.md)."""

from hps.optuna.storage import HpsStorage, HpsStorageUnavailable

__all__ = ["HpsStorage", "HpsStorageUnavailable"]
