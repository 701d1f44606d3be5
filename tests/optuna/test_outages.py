"""API outages: ``HpsStorage`` retries a call that gets no answer with backoff for ``retry_for_s``
seconds, then raises a clear ``HpsStorageUnavailable`` (Optuna's ``StorageInternalError``)."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.exceptions import StorageInternalError

from harness.ports import free_port
from hps.optuna import HpsStorage, HpsStorageUnavailable


def test_no_server_is_retried_for_a_while_then_a_clear_error() -> None:
    storage = HpsStorage(f"http://127.0.0.1:{free_port()}", token="t", retry_for_s=2.0, timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(HpsStorageUnavailable, match=r"did not serve POST /v1/optuna/studies.*unreachable"):
        optuna.create_study(storage=storage, study_name="never")
    waited = time.monotonic() - started
    assert 0.5 < waited < 10  # it retried with backoff, and gave up in bounded time
    assert issubclass(HpsStorageUnavailable, StorageInternalError)
