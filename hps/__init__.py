"""hps: hyperparameter search for the optimizer of a fine-tuning run.

What users import::

    from hps import HpsClient

    with HpsClient("http://hps:8000", token) as hps, hps.run_trial("my-study") as trial:
        trial.complete(train(**trial.params))

The installed package holds the service (``hps.server``), the workers (``hps.workers``), the search spaces
(``hps.search_spaces``), the migrations (``hps.migrations``) and the homes both sides share: the wire
(``hps.wire``), the client (``hps.client``), the catalog (``hps.catalog``) and the report
(``hps.report``); docs/architecture.md draws the arrows between them.
"""

from hps.client import HpsClient, HpsError, TrialPruned, TrialRun

__all__ = ["HpsClient", "HpsError", "TrialPruned", "TrialRun"]
