"""Evaluation runs in-process: the real gateway, billing and traces, a fake engine at the engine
seam (tests/inference_app/gateway_world.py), Celery in eager mode or prediction_run called
directly."""

import asyncio
import uuid
from datetime import timedelta

import httpx
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from celery.exceptions import Retry
from django.db.models import Sum
from django.utils import timezone

from billing.models import LedgerEntry, Organization, UsageRecord
from evaluations import runner, runs
from evaluations.models import Dataset, DatasetRow, DatasetVersion, Evaluation, Prediction
from evaluations.tasks import evaluation_predict
from inference_app.celery import app as celery_app
from inference_app.gateway import callers, concurrency, engine_client
from inference_app.models import Profile
from tests.inference_app.gateway_world import (
    TEXT_MODEL,
    UNDEPLOYED_MODEL,
    fake_engine,  # noqa: F401 (fixture)
    make_world,
    settlements_drained,  # noqa: F401 (fixture)
)
from traces.models import Call

ANSWER = "Hello there, friend!"  # what the fake engine says
ROWS = [
    {"input": "Say hello.", "expected": "  hello THERE, friend "},  # normalised: matches
    {"input": "Say goodbye.", "expected": "Goodbye!"},
]
EXACT = [{"name": "exact_match", "scorer": "exact_match", "args": {}, "mapping": {}}]


@pytest.fixture
def world(transactional_db, fake_engine, settlements_drained):  # noqa: F811
    return make_world()


@pytest.fixture
def eager():
    """Tasks run at once in this process (delay() inside on_commit)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def make_evaluation(
    world,
    rows=ROWS,
    *,
    scorers=EXACT,
    trials=1,
    budget=None,
    models=(TEXT_MODEL,),
    params=None,
):
    dataset = Dataset.objects.create(
        organization_id=world.organization.pk,
        project_id=world.project.pk,
        name=f"qa-{uuid.uuid4().hex[:6]}",
    )
    version = DatasetVersion.objects.create(
        dataset=dataset,
        number=1,
        content_hash=uuid.uuid4().hex,
        columns=["input", "expected"],
        row_count=len(rows),
    )
    DatasetRow.objects.bulk_create(
        DatasetRow(version=version, index=i, data=row) for i, row in enumerate(rows)
    )
    evaluation = Evaluation.objects.create(
        organization_id=world.organization.pk,
        team_id=world.project.team_id,
        project_id=world.project.pk,
        team="team-a",
        project="main",
        created_by_id=world.user.pk,
        name="qa",
        dataset_version=version,
        scorers=scorers,
        model_specs=[
            {"model": m, "params": params or {"temperature": 0, "max_tokens": 16}} for m in models
        ],
        trials=trials,
        budget_micros=budget,
        trace_id=uuid.uuid4().hex,
    )
    Prediction.objects.bulk_create(
        Prediction(evaluation=evaluation, row_index=r, model_index=m, trial=t, model=model)
        for r in range(len(rows))
        for m, model in enumerate(models)
        for t in range(trials)
    )
    return evaluation


def predictions(evaluation):
    return list(evaluation.predictions.order_by("row_index", "model_index", "trial"))


def charged(request_ids) -> int:
    """What the ledger charged for these requests (credits and overage)."""
    entries = LedgerEntry.objects.filter(kind="charge", request_id__in=list(request_ids))
    sums = entries.aggregate(amount=Sum("amount_micros"), overage=Sum("overage_micros"))
    return -(sums["amount"] or 0) + (sums["overage"] or 0)


def charges_of(evaluation) -> list[str]:
    return list(
        LedgerEntry.objects.filter(
            kind="charge", request_id__startswith=f"eval-{evaluation.pk}-"
        ).values_list("request_id", flat=True)
    )


def test_a_run_gives_exact_results_billed_and_traced(world, fake_engine, eager):  # noqa: F811
    evaluation = make_evaluation(world, trials=2)
    assert runs.evaluation_start(evaluation.pk)
    evaluation.refresh_from_db()
    assert evaluation.status == Evaluation.Status.COMPLETED
    assert evaluation.finished_at is not None
    rows = predictions(evaluation)
    assert [(p.row_index, p.trial, p.status) for p in rows] == [
        (0, 0, "done"),
        (0, 1, "done"),
        (1, 0, "done"),
        (1, 1, "done"),
    ]
    assert {p.output for p in rows} == {ANSWER}
    assert [p.scores["exact_match"]["passed"] for p in rows] == [True, True, False, False]
    assert rows[2].scores["exact_match"]["score"] == 0.0
    assert len(fake_engine.requests) == 4
    sent = fake_engine.requests[0][1]
    assert sent["messages"] == [{"role": "user", "content": "Say hello."}]
    assert sent["temperature"] == 0 and sent["max_tokens"] == 16
    for p in rows:
        assert p.request_id == f"eval-{evaluation.pk}-{p.pk}-1"
        assert p.attempts == 1
        assert p.prompt_tokens == 7 and p.completion_tokens == 5
        assert p.cost_micros > 0
        assert p.cost_micros == charged([p.request_id])
        assert p.latency_ms is not None
    assert evaluation.spent_micros == sum(p.cost_micros for p in rows)
    assert evaluation.spent_micros == charged(charges_of(evaluation))
    assert evaluation.committed_micros == 0
    # Billed and traced as evaluation calls, in the evaluation's trace.
    usage = UsageRecord.objects.filter(request_id__startswith=f"eval-{evaluation.pk}-")
    assert {u.source for u in usage} == {"evaluation"}
    calls = Call.objects.filter(request_id__in=[p.request_id for p in rows])
    assert calls.count() == 4
    assert {c.trace_id for c in calls} == {evaluation.trace_id}
    assert {c.session_id for c in calls} == {f"eval-{evaluation.pk}"}
    assert {c.pane for c in calls} == {"0.0.0", "0.0.1", "1.0.0", "1.0.1"}
    assert {c.source for c in calls} == {"evaluation"}


def test_a_system_prompt_and_messages_rows(world, fake_engine, eager):  # noqa: F811
    rows = [{"messages": [{"role": "user", "content": "Hi"}], "expected": ANSWER}]
    evaluation = make_evaluation(world, rows)
    Evaluation.objects.filter(pk=evaluation.pk).update(system_prompt="Be brief.")
    runs.evaluation_start(evaluation.pk)
    assert fake_engine.requests[0][1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
    assert predictions(evaluation)[0].scores["exact_match"]["passed"] is True


def test_a_second_run_of_a_prediction_neither_calls_nor_charges(world, fake_engine, eager):  # noqa: F811
    evaluation = make_evaluation(world)
    runs.evaluation_start(evaluation.pk)
    first = predictions(evaluation)[0]
    before = charges_of(evaluation)
    # The same task delivered again, twice: the prediction is finished, nothing happens.
    assert runner.prediction_run(first.pk) == runner.NOT_CLAIMED
    evaluation_predict.delay(first.pk)
    assert len(fake_engine.requests) == 2
    assert charges_of(evaluation) == before
    assert predictions(evaluation)[0].attempts == 1
    assert runs.evaluation_resume(evaluation.pk) == 0


def test_a_replay_after_the_engine_answered_uses_that_answer(
    world,
    fake_engine,  # noqa: F811
    eager,
    monkeypatch,
):
    """The worker died after its call was answered and billed, before it saved the prediction:
    the try that takes over finds the usage row and the traced answer, and uses them."""
    evaluation = make_evaluation(world, ROWS[:1])
    real_finish = runner._finish

    def die(*args, **kwargs):
        raise KeyboardInterrupt("killed")  # not an Exception: nothing handles it

    monkeypatch.setattr(runner, "_finish", die)
    with pytest.raises(KeyboardInterrupt):
        runs.evaluation_start(evaluation.pk)
    monkeypatch.setattr(runner, "_finish", real_finish)
    dead = predictions(evaluation)[0]
    assert dead.status == "running" and dead.attempts == 1
    assert len(fake_engine.requests) == 1
    # Its claim is still live: a resume leaves it alone.
    assert runs.evaluation_resume(evaluation.pk) == 0
    assert predictions(evaluation)[0].status == "running"
    Prediction.objects.filter(pk=dead.pk).update(claimed_until=timezone.now() - timedelta(1))
    assert runs.evaluation_resume(evaluation.pk) == 1
    done = predictions(evaluation)[0]
    assert done.status == "done" and done.output == ANSWER and done.attempts == 2
    assert done.request_id == f"eval-{evaluation.pk}-{done.pk}-1"  # the first try's answer
    assert done.scores["exact_match"]["passed"] is True
    assert len(fake_engine.requests) == 1  # not called again
    assert charges_of(evaluation) == [done.request_id]  # not charged again
    evaluation.refresh_from_db()
    assert evaluation.status == "completed"
    assert evaluation.spent_micros == done.cost_micros == charged([done.request_id])
    assert evaluation.committed_micros == 0  # the dead try's commitment was taken over


def test_a_prediction_of_a_dead_worker_is_run_again_on_resume(world, fake_engine, eager):  # noqa: F811
    evaluation = make_evaluation(world)
    Evaluation.objects.filter(pk=evaluation.pk).update(status="running")
    first, second = predictions(evaluation)
    # A worker claimed the first and died before calling; the second's message was lost.
    Prediction.objects.filter(pk=first.pk).update(
        status="running", attempts=1, claimed_until=timezone.now() - timedelta(seconds=1)
    )
    assert runs.evaluations_resume_stalled() == [evaluation.pk]
    first, second = predictions(evaluation)
    assert (first.status, first.attempts, second.status, second.attempts) == ("done", 2, "done", 1)
    assert first.request_id == f"eval-{evaluation.pk}-{first.pk}-2"
    assert len(fake_engine.requests) == 2
    evaluation.refresh_from_db()
    assert evaluation.status == "completed"
    assert evaluation.spent_micros == charged(charges_of(evaluation))
    assert runs.evaluations_resume_stalled() == []


def test_the_run_stops_before_it_would_pass_its_budget(world, fake_engine, eager):  # noqa: F811
    rows = [{"input": f"Question {n}?", "expected": ANSWER} for n in range(6)]
    evaluation = make_evaluation(world, rows)
    first = predictions(evaluation)[0]
    row = DatasetRow.objects.get(version=evaluation.dataset_version, index=0).data
    worst = runner.worst_case_micros(evaluation, first, row)
    assert worst > 0
    budget = int(2.5 * worst)
    Evaluation.objects.filter(pk=evaluation.pk).update(budget_micros=budget)
    runs.evaluation_start(evaluation.pk)
    evaluation.refresh_from_db()
    assert evaluation.status == Evaluation.Status.BUDGET_EXCEEDED
    assert evaluation.finished_at is not None
    statuses = [p.status for p in predictions(evaluation)]
    done = statuses.count("done")
    # Each call was admitted only while spent + its worst case fitted (calls cost the same).
    cost = predictions(evaluation)[0].cost_micros
    expected = 0
    while expected < len(rows) and expected * cost + worst <= budget:
        expected += 1
    assert 0 < done == expected < len(rows)
    assert statuses == ["done"] * done + ["skipped"] * (len(rows) - done)
    assert evaluation.spent_micros <= budget
    assert evaluation.spent_micros + worst > budget
    assert evaluation.spent_micros == charged(charges_of(evaluation)) == done * cost
    assert evaluation.committed_micros == 0
    assert len(fake_engine.requests) == done
    assert len(charges_of(evaluation)) == done


def test_a_cancelled_run_makes_no_further_calls(world, fake_engine):  # noqa: F811
    rows = [{"input": f"Question {n}?", "expected": ANSWER} for n in range(4)]
    evaluation = make_evaluation(world, rows)
    Evaluation.objects.filter(pk=evaluation.pk).update(status="running")
    ids = [p.pk for p in predictions(evaluation)]
    assert runner.prediction_run(ids[0]) == runner.DONE
    try:
        from evaluations.services import evaluation_cancel
    except ImportError:
        Evaluation.objects.filter(pk=evaluation.pk).update(status="cancelled")
    else:
        evaluation_cancel(evaluation_id=evaluation.pk, project_ids=[world.project.pk])
    # The queued tasks still arrive: each finds the run cancelled.
    assert [runner.prediction_run(pk) for pk in ids[1:]] in (
        [runner.SKIPPED] * 3,
        [runner.NOT_CLAIMED] * 3,  # the cancel skipped them itself
    )
    evaluation.refresh_from_db()
    assert evaluation.status == "cancelled"
    assert evaluation.finished_at is not None
    assert [p.status for p in predictions(evaluation)] == ["done"] + ["skipped"] * 3
    assert len(fake_engine.requests) == 1
    assert len(charges_of(evaluation)) == 1
    assert evaluation.spent_micros == charged(charges_of(evaluation))


@pytest.mark.parametrize("limit, panes", [(1, 1), (3, 2)])
def test_a_concurrency_refusal_is_retried_not_failed(world, fake_engine, limit, panes):  # noqa: F811
    """The user's own panes hold their slots (all of them, or all but the one an evaluation
    leaves free): the prediction waits, and the task retries later."""
    Profile.objects.filter(user=world.user).update(concurrency_limit=limit)
    callers.clear_caches()
    evaluation = make_evaluation(world, ROWS[:1])
    Evaluation.objects.filter(pk=evaluation.pk).update(status="running")
    (prediction,) = predictions(evaluation)
    limiter = concurrency.get_limiter()
    held = [
        {"user_id": world.user.pk, "project_id": world.project.pk, "request_id": f"pane-{n}"}
        for n in range(panes)
    ]
    for pane in held:
        assert async_to_sync(limiter.acquire)(**pane, user_limit=limit, project_limit=100)

    assert runner.prediction_run(prediction.pk) == runner.BUSY
    prediction.refresh_from_db()
    assert (prediction.status, prediction.attempts, prediction.request_id) == ("pending", 0, "")
    evaluation.refresh_from_db()
    assert evaluation.status == "running" and evaluation.committed_micros == 0
    assert fake_engine.requests == [] and charges_of(evaluation) == []
    with pytest.raises(Retry):
        evaluation_predict(prediction.pk)  # the task asks Celery to run it again later
    assert fake_engine.requests == []
    if limit > 1:  # the slot the evaluation leaves free is the user's own
        assert async_to_sync(limiter.acquire)(
            user_id=world.user.pk,
            project_id=world.project.pk,
            request_id="one-more-pane",
            user_limit=limit,
            project_limit=100,
        )
        async_to_sync(limiter.release)(
            user_id=world.user.pk, project_id=world.project.pk, request_id="one-more-pane"
        )

    async_to_sync(limiter.release)(**held[0])
    assert runner.prediction_run(prediction.pk) == runner.DONE
    prediction.refresh_from_db()
    assert prediction.status == "done" and prediction.attempts == 1
    assert prediction.request_id == f"eval-{evaluation.pk}-{prediction.pk}-1"
    evaluation.refresh_from_db()
    assert evaluation.status == "completed"


def test_a_gateway_error_is_the_predictions_and_the_run_goes_on(world, fake_engine, eager):  # noqa: F811
    evaluation = make_evaluation(world, ROWS[:1], models=(UNDEPLOYED_MODEL, TEXT_MODEL))
    runs.evaluation_start(evaluation.pk)
    broken, fine = predictions(evaluation)
    assert broken.status == "error" and "does not exist" in broken.error.lower()
    assert broken.cost_micros == 0
    assert fine.status == "done" and fine.output == ANSWER
    evaluation.refresh_from_db()
    assert evaluation.status == "completed"


def test_an_exhausted_quota_fails_the_run(world, fake_engine, eager):  # noqa: F811
    from billing.credits import balance_adjust

    org = Organization.objects.get(pk=world.organization.pk)
    balance_adjust(organization=org, amount_micros=-org.balance_micros, note="spent")
    evaluation = make_evaluation(world)
    runs.evaluation_start(evaluation.pk)
    evaluation.refresh_from_db()
    assert evaluation.status == "failed"
    assert "quota" in evaluation.error.lower()
    assert sorted(p.status for p in predictions(evaluation)) == ["error", "skipped"]
    assert fake_engine.requests == []


def test_an_llm_judge_is_a_billed_traced_call(world, fake_engine, eager):  # noqa: F811
    fake_engine.tokens = ['{"score": 0.75, "reason": "close enough"}']
    judge = {
        "name": "judge",
        "scorer": "llm_judge",
        "args": {"model": TEXT_MODEL, "rubric": "Does it answer {input}?", "threshold": 0.5},
        "mapping": {},
    }
    evaluation = make_evaluation(world, ROWS[:1], scorers=[*EXACT, judge])
    runs.evaluation_start(evaluation.pk)
    (p,) = predictions(evaluation)
    assert p.status == "done"
    assert p.scores["judge"] == {"score": 0.75, "passed": True, "reason": "close enough"}
    assert p.scores["exact_match"]["passed"] is False
    judge_id = f"eval-{evaluation.pk}-{p.pk}-1-judge-1"
    assert len(fake_engine.requests) == 2
    judge_prompt = fake_engine.requests[1][1]["messages"][-1]["content"]
    assert "Does it answer Say hello.?" in judge_prompt and fake_engine.requests[1][1]["max_tokens"]
    assert p.cost_micros == charged([p.request_id, judge_id])
    assert charged([judge_id]) > 0
    call = Call.objects.get(request_id=judge_id)
    assert (call.trace_id, call.source) == (evaluation.trace_id, "evaluation")
    evaluation.refresh_from_db()
    assert evaluation.spent_micros == p.cost_micros and evaluation.committed_micros == 0


def test_a_judge_reply_without_a_score_scores_zero(world, fake_engine, eager):  # noqa: F811
    judge = {"name": "judge", "scorer": "llm_judge", "args": {"model": TEXT_MODEL, "rubric": "?"}}
    evaluation = make_evaluation(world, ROWS[:1], scorers=[judge])
    runs.evaluation_start(evaluation.pk)
    (p,) = predictions(evaluation)
    assert p.status == "done"
    assert p.scores["judge"]["score"] == 0.0 and p.scores["judge"]["passed"] is False
    assert "could not read a score" in p.scores["judge"]["reason"]


def test_a_long_call_keeps_its_claim(world, fake_engine, settings):  # noqa: F811
    """A call longer than the claim renews it, so no other worker takes the prediction over
    (and calls again) while the engine is still answering."""
    settings.EVALUATION_CLAIM_SECONDS = 0.6
    evaluation = make_evaluation(world, ROWS[:1])
    Evaluation.objects.filter(pk=evaluation.pk).update(status="running")
    (prediction,) = predictions(evaluation)
    seen = {}

    def claim_state():
        row = Prediction.objects.get(pk=prediction.pk)
        return row.claimed_until > timezone.now(), runner._claim(prediction.pk)

    async def slow_engine(request):
        await asyncio.sleep(1.5)  # the claim was for 0.6 s
        seen["live"], seen["taken_over"] = await sync_to_async(claim_state)()
        return await fake_engine.handle(request)

    engine_client.install_transport(httpx.MockTransport(slow_engine))
    assert runner.prediction_run(prediction.pk) == runner.DONE
    assert seen == {"live": True, "taken_over": False}
    prediction.refresh_from_db()
    assert prediction.attempts == 1 and prediction.status == "done"
    assert len(fake_engine.requests) == 1


def test_a_budget_held_by_calls_in_flight_makes_a_prediction_wait_not_stop(world, fake_engine):  # noqa: F811
    """Parallel workers: another call's worst case is committed; this one does not fit beside
    it, but may once that call gives back what it did not spend. It waits (retried later)."""
    evaluation = make_evaluation(world, ROWS[:1])
    (prediction,) = predictions(evaluation)
    row = DatasetRow.objects.get(version=evaluation.dataset_version, index=0).data
    worst = runner.worst_case_micros(evaluation, prediction, row)
    Evaluation.objects.filter(pk=evaluation.pk).update(
        status="running", budget_micros=int(1.5 * worst), committed_micros=worst
    )
    assert runner.prediction_run(prediction.pk) == runner.BUSY
    prediction.refresh_from_db()
    evaluation.refresh_from_db()
    assert (prediction.status, prediction.attempts) == ("pending", 0)
    assert (evaluation.status, evaluation.committed_micros) == ("running", worst)
    assert fake_engine.requests == []
    # The other call finished (and spent little): now it fits.
    Evaluation.objects.filter(pk=evaluation.pk).update(committed_micros=0, spent_micros=1)
    assert runner.prediction_run(prediction.pk) == runner.DONE
    evaluation.refresh_from_db()
    assert evaluation.status == "completed" and evaluation.committed_micros == 0


def test_a_run_whose_queued_tasks_were_lost_is_resumed_by_beat(world, fake_engine, eager):  # noqa: F811
    evaluation = make_evaluation(world)
    quiet = timezone.now() - timedelta(seconds=runs.claim_seconds() + 1)
    Evaluation.objects.filter(pk=evaluation.pk).update(status="running", started_at=quiet)
    fresh = make_evaluation(world)
    Evaluation.objects.filter(pk=fresh.pk).update(status="running", started_at=timezone.now())
    # Both have pending predictions and no queued task; only the quiet one is stalled (the
    # fresh one's tasks may still be on their way).
    Prediction.objects.filter(evaluation=evaluation).update(updated_at=quiet)
    assert runs.evaluations_resume_stalled() == [evaluation.pk]
    evaluation.refresh_from_db()
    fresh.refresh_from_db()
    assert (evaluation.status, fresh.status) == ("completed", "running")
    assert len(fake_engine.requests) == 2


def test_the_beat_entry_names_a_registered_task():
    from evaluations.beat import EVALUATIONS_BEAT

    celery_app.loader.import_default_modules()
    assert EVALUATIONS_BEAT
    for entry in EVALUATIONS_BEAT.values():
        assert entry["task"] in celery_app.tasks


def test_a_replay_after_the_judge_answered_asks_no_one_again(
    world,
    fake_engine,  # noqa: F811
    eager,
    monkeypatch,
):
    fake_engine.tokens = ['{"score": 1, "reason": "right"}']
    judge = {"name": "judge", "scorer": "llm_judge", "args": {"model": TEXT_MODEL, "rubric": "?"}}
    evaluation = make_evaluation(world, ROWS[:1], scorers=[judge])
    real_finish = runner._finish

    def die(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(runner, "_finish", die)
    with pytest.raises(KeyboardInterrupt):
        runs.evaluation_start(evaluation.pk)
    monkeypatch.setattr(runner, "_finish", real_finish)
    assert len(fake_engine.requests) == 2  # the answer and its judge, then the worker died
    Prediction.objects.filter(evaluation=evaluation).update(
        claimed_until=timezone.now() - timedelta(seconds=1)
    )
    assert runs.evaluation_resume(evaluation.pk) == 1
    (p,) = predictions(evaluation)
    assert (p.status, p.attempts) == ("done", 2)
    assert p.scores["judge"] == {"score": 1.0, "passed": True, "reason": "right"}
    assert len(fake_engine.requests) == 2
    first_try = [f"eval-{evaluation.pk}-{p.pk}-1", f"eval-{evaluation.pk}-{p.pk}-1-judge-0"]
    assert sorted(charges_of(evaluation)) == sorted(first_try)
    assert p.cost_micros == charged(first_try)
    evaluation.refresh_from_db()
    assert evaluation.spent_micros == p.cost_micros and evaluation.committed_micros == 0


def test_a_prediction_whose_tries_all_died_is_given_up(world, fake_engine, eager):  # noqa: F811
    evaluation = make_evaluation(world)
    Evaluation.objects.filter(pk=evaluation.pk).update(status="running")
    first, _ = predictions(evaluation)
    Prediction.objects.filter(pk=first.pk).update(
        status="running",
        attempts=runner.MAX_ATTEMPTS,
        claimed_until=timezone.now() - timedelta(seconds=1),
    )
    assert runs.evaluation_resume(evaluation.pk) == 2
    first, second = predictions(evaluation)
    assert (first.status, first.attempts) == ("error", runner.MAX_ATTEMPTS + 1)
    assert "Gave up after" in first.error
    assert second.status == "done"
    assert len(fake_engine.requests) == 1
    evaluation.refresh_from_db()
    assert evaluation.status == "completed"
