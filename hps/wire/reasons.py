"""Why a trial failed: the machine-readable code a failure's reason starts with (``"oom: CUDA out of
memory"``). Part of the API contract: the service re-queues the params of infrastructure failures, and
workers, the SDK and the service all write and read these codes from here."""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """The codes a ``failed`` completion's reason may start with."""

    LEASE_EXPIRED = "lease-expired"  # the service reaped a trial nobody heartbeated
    OOM = "oom"  # the device ran out of memory
    WORKER_LOST = "worker-lost"  # the worker went away without a word
    DEVICE_ERROR = "device-error"  # the device is unusable (the worker exits)
    INTERRUPTED = "interrupted"  # the worker (or the SDK's block) was asked to stop
    ERROR = "error"  # the task itself raised: a bug or bad params, never retried as is


# Failures of the infrastructure rather than of the configuration: the same params get another attempt.
RETRYABLE = frozenset(
    {ReasonCode.LEASE_EXPIRED, ReasonCode.OOM, ReasonCode.WORKER_LOST, ReasonCode.DEVICE_ERROR}
)


def reason(code: ReasonCode, detail: str) -> str:
    """A reason as workers and the service write it: ``"<code>: <detail>"``."""
    return f"{code}: {detail}"


def reason_code(text: str | None) -> str:
    """The machine-readable part of a reason: ``"oom: CUDA out of memory"`` → ``"oom"``."""
    return (text or "").split(":", 1)[0].strip().lower()
