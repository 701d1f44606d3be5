"""``HpsClient.run_trial`` against a real server: heartbeats keep the lease, and however the block
ends, the trial ends in the state docs/sdk.md promises."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from harness.api import unique
from harness.databases import sqlite_url
from harness.external import external_spec
from harness.servers import ADMIN_TOKEN, RunningServer, serving
from hps.client.http import HpsClient, HpsError
from hps.client.trial_run import NO_COMPLETE_REASON, TrialPruned

LEASE_S = 2.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """Two-second leases reaped within a third of a second: a trial nobody heartbeats is lost quickly,
    and one the SDK keeps alive visibly outlives its first lease."""
    directory = tmp_path_factory.mktemp("sdk-server")
    with serving(
        sqlite_url(directory),
        directory,
        HPS_LEASE_SECONDS=str(LEASE_S),
        HPS_REAPER_INTERVAL_SECONDS="0.3",
    ) as running:
        yield running


@pytest.fixture
def client(server: RunningServer) -> Iterator[HpsClient]:
    with HpsClient(server.base_url, ADMIN_TOKEN) as hps:
        yield hps


def new_study(client: HpsClient, **overrides: object) -> int:
    spec = {**external_spec(unique("sdk"), n_trials=4), **overrides}
    return client.create_study(spec).id


def test_an_unbeaten_lease_is_reaped_at_this_setting(client: HpsClient) -> None:
    """The control: without heartbeats the server takes the trial back, so the next test means something."""
    study_id = new_study(client)
    asked = client.ask(study_id)
    time.sleep(LEASE_S * 1.75)
    with pytest.raises(HpsError) as lost:
        client.report(study_id, asked.number, step=0, value=0.5)
    assert lost.value.status == 409 and lost.value.code == "lease_lost"


def test_heartbeats_keep_the_lease_past_its_first_expiry(client: HpsClient) -> None:
    study_id = new_study(client)
    with client.run_trial(study_id) as trial:
        first_expiry = trial.lease_expires_at
        time.sleep(LEASE_S * 1.75)  # longer than one lease, with no report
        assert trial.heartbeats >= 2 and not trial.lease_lost
        assert trial.lease_expires_at > first_expiry
        assert trial.report(0, 0.5).should_prune is False
        trial.complete(0.5)
    finished = client.trial(study_id, trial.number)
    assert (finished.state, finished.value, finished.attempt) == ("complete", 0.5, 1)
    assert [t.number for t in client.trials(study_id)] == [trial.number]  # nothing was reaped or re-queued


def test_an_exception_fails_the_trial_and_propagates(client: HpsClient) -> None:
    study_id = new_study(client)
    with pytest.raises(ValueError, match="loss is nan"), client.run_trial(study_id) as trial:
        trial.report(0, 0.1)
        raise ValueError("loss is nan")
    failed = client.trial(study_id, trial.number)
    assert (failed.state, failed.reason) == ("failed", "ValueError: loss is nan")
    assert client.get_study(study_id).progress.queued == 0  # a bug in the script is not retried


def test_an_interrupt_fails_the_trial_as_interrupted_and_queues_a_retry(client: HpsClient) -> None:
    study_id = new_study(client)
    with pytest.raises(KeyboardInterrupt), client.run_trial(study_id) as trial:
        raise KeyboardInterrupt
    assert client.trial(study_id, trial.number).reason == "interrupted: KeyboardInterrupt"
    with client.run_trial(study_id) as retry:
        assert retry.params == trial.params
        retry.complete(0.4)
    assert client.trial(study_id, retry.number).retry_of == trial.number


def test_a_prune_answer_is_recorded_as_pruned(client: HpsClient) -> None:
    study_id = new_study(client, pruner={"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0})
    with client.run_trial(study_id) as good:
        good.report(0, 0.9)
        good.complete(0.9)
    with client.run_trial(study_id) as bad:
        if bad.report(0, 0.1).should_prune:
            bad.prune()
        bad.complete(0.1)
    assert bad.should_prune
    pruned = client.trial(study_id, bad.number)
    assert (pruned.state, pruned.reason) == ("pruned", "pruned at step 0")


def test_raising_trial_pruned_prunes_with_its_message(client: HpsClient) -> None:
    study_id = new_study(client)
    with client.run_trial(study_id) as trial:
        raise TrialPruned("plateau after 3 epochs")
    assert trial.result is not None and trial.result.state == "pruned"
    assert client.trial(study_id, trial.number).reason == "plateau after 3 epochs"


def test_a_block_that_never_completes_fails_the_trial(client: HpsClient) -> None:
    study_id = new_study(client)
    with client.run_trial(study_id) as trial:
        trial.report(0, 0.3)
    ended = client.trial(study_id, trial.number)
    assert (ended.state, ended.reason) == ("failed", NO_COMPLETE_REASON)


def test_a_study_by_name_and_an_explicit_finish(client: HpsClient) -> None:
    name = unique("named")
    study_id = client.create_study(external_spec(name)).id
    with client.run_trial(name) as trial:
        assert trial.study_id == study_id and set(trial.params) == {"lr"}
        trial.finish("diverged", "loss exploded")
    assert client.trial(study_id, trial.number).state == "diverged"
    with pytest.raises(HpsError) as missing:
        client.run_trial(unique("missing"))
    assert missing.value.status == 404


def test_a_cancelled_study_asks_the_trial_to_stop(client: HpsClient) -> None:
    study_id = new_study(client)
    with client.run_trial(study_id) as trial:
        client.cancel_study(study_id)
        assert trial.report(0, 0.2).should_stop and trial.should_stop
        trial.finish("failed", "study cancelled")
    assert client.trial(study_id, trial.number).state == "failed"


def test_no_more_trials_is_what_docs_sdk_md_says(client: HpsClient) -> None:
    study_id = client.create_study(external_spec(unique("spent"), n_trials=1)).id
    with client.run_trial(study_id) as trial:
        # The budget is handed out while its last trial still runs.
        with pytest.raises(HpsError) as spent, client.run_trial(study_id):
            pass
        assert (spent.value.code, spent.value.no_more_trials) == ("budget_exhausted", True)
        trial.complete(0.5)
    # Once that trial has finished the study is completed.
    assert client.get_study(study_id).state == "completed"
    with pytest.raises(HpsError) as ended, client.run_trial(study_id):
        pass
    assert (ended.value.status, ended.value.code, ended.value.no_more_trials) == (
        409,
        "study_not_running",
        True,
    )
    parallel = HpsError(409, "parallel_limit", "busy")
    assert not parallel.no_more_trials
