"""The reaper and lr range tests, on SQLite and PostgreSQL: a test whose worker went silent is queued again
while retries are left, then failed, and its optimizer keeps the whole range; the study samples once every
test has ended."""

from __future__ import annotations

import math

from harness.stack import LEASE, Stack
from hps.server import claims, range_tests, studies
from hps.server.clock import utcnow
from hps.wire.range_tests import RangeTestCompletion
from hps.wire.studies import StudySpec


def claim(stack: Stack) -> claims.Claim | None:
    return claims.claim_trial(
        stack.db,
        stack.sampling,
        worker_id="w",
        device="cpu",
        tasks=("digits",),
        lease=LEASE,
        range_tests=True,
    )


def test_a_silent_range_test_is_retried_then_failed_and_its_optimizer_keeps_the_whole_range(
    stack: Stack,
) -> None:
    spec = StudySpec.model_validate(
        {
            "name": "leases",
            "task": {"name": "digits", "dataset": "digits-5to9-few"},
            "search_space": {"preset": "fine-tuning"},
            "lr_range_test": {"steps": 50, "batch_size": 8},
            "budget": {"n_trials": 3, "max_retries": 1},
        }
    )
    study_id = studies.create_study(stack.db, spec, stack.registry).record.id
    for attempt in (1, 2):
        found = claim(stack)
        assert found is not None and found.range_test is not None and found.trial is None
        assert (found.range_test.test.optimizer, found.range_test.test.attempt) == ("adamw", attempt)
        assert found.range_test.test.batch_size == 8
        later = utcnow() + 2 * LEASE
        assert range_tests.reap_expired_range_tests(stack.db, stack.sampling, now=later) == 1
    tests, ranges = range_tests.list_range_tests(stack.db, study_id)
    assert [(t.optimizer, t.state, t.attempt) for t in tests] == [
        ("adamw", "failed", 2),
        ("sgd", "queued", 1),
    ]
    assert tests[0].reason is not None and tests[0].reason.startswith("lease-expired")
    assert ranges is None
    sgd = claim(stack)
    assert sgd is not None and sgd.range_test is not None and sgd.range_test.test.optimizer == "sgd"
    assert sgd.seed != found.seed  # each test trains from its own seed
    curve = [(1e-6 * 10 ** (k / 10), 2.0 - 1.5 * math.exp(-(((k - 40) / 12) ** 2))) for k in range(60)]
    range_tests.complete_range_test(
        stack.db, stack.sampling, study_id, "sgd", RangeTestCompletion(state="complete", points=curve)
    )
    _, ranges = range_tests.list_range_tests(stack.db, study_id)
    assert ranges is not None and ranges["adamw"] == [1e-6, 1.0]
    assert math.isclose(ranges["sgd"][1], 1e-2)
    trial = claim(stack)
    assert trial is not None and trial.trial is not None and trial.trial.params["optimizer"] == "adamw"
