"""The client side of hps: the typed HTTP client, backoff through outages, leases kept alive by heartbeats,
and ``run_trial``. Shared by the CLI, the workers and users' scripts; imports neither the server nor the
workers."""

from hps.client.http import HpsClient, HpsError
from hps.client.trial_run import TrialPruned, TrialRun

__all__ = ["HpsClient", "HpsError", "TrialPruned", "TrialRun"]
