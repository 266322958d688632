"""Services for running an evaluation: start it, resume it, finish it.

A run is one `evaluation_predict` task per prediction (evaluations/tasks.py), each doing
runner.prediction_run. Tasks are queued after the commit that made them runnable, so a worker
never looks for a row it cannot see yet. Queuing a prediction twice is harmless: a task first
claims its prediction, and a prediction that is claimed or finished is left alone.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from evaluations.models import Evaluation, Prediction

# How long a claim on a prediction lasts; a live worker renews it while its call runs, a dead
# worker's prediction is taken over once it has run out. Longer than LOST_AFTER_SECONDS plus
# the lost-request sweep's period (90 + 30 s by default): the dead try's hold is then settled
# (as `lost`, its prompt charged) before the takeover, whose cost (every try's charges) thus
# includes it, and the evaluation's spent stays the ledger's total.
DEFAULT_CLAIM_SECONDS = 300


def claim_seconds() -> float:
    return float(getattr(settings, "EVALUATION_CLAIM_SECONDS", DEFAULT_CLAIM_SECONDS))


def _enqueue(prediction_ids: list[int]) -> None:
    if not prediction_ids:
        return
    from evaluations.tasks import evaluation_predict  # the tasks module imports this one

    def send() -> None:
        for prediction_id in prediction_ids:
            evaluation_predict.delay(prediction_id)

    transaction.on_commit(send)


def evaluation_start(evaluation_id: int) -> bool:
    """Queued → running, and a task for each pending prediction. False when it was not queued
    (already started, or finished)."""
    with transaction.atomic():
        started = Evaluation.objects.filter(
            pk=evaluation_id, status=Evaluation.Status.QUEUED
        ).update(status=Evaluation.Status.RUNNING, started_at=timezone.now())
        if not started:
            return False
        ids = list(
            Prediction.objects.filter(
                evaluation_id=evaluation_id, status=Prediction.Status.PENDING
            ).values_list("pk", flat=True)
        )
        _enqueue(ids)
    if not ids:
        evaluation_finish_if_done(evaluation_id)
    return True


def _runnable(now) -> Q:
    """Predictions a worker may take: pending, or claimed by a worker whose claim ran out
    (it died, or was killed, mid-prediction)."""
    return Q(status=Prediction.Status.PENDING) | Q(
        status=Prediction.Status.RUNNING, claimed_until__lt=now
    )


def evaluation_resume(evaluation_id: int) -> int:
    """Queue again every prediction of a running evaluation that no live worker has: pending
    ones (their messages may have died with a worker) and those whose claim expired. A queued
    evaluation is started. Returns how many were queued."""
    evaluation = Evaluation.objects.filter(pk=evaluation_id).only("status").first()
    if evaluation is None:
        return 0
    if evaluation.status == Evaluation.Status.QUEUED:
        evaluation_start(evaluation_id)
        return Prediction.objects.filter(
            evaluation_id=evaluation_id, status=Prediction.Status.PENDING
        ).count()
    if evaluation.status != Evaluation.Status.RUNNING:
        # Stopped runs: their leftovers are skipped by whichever task still comes; a task for
        # an expired claim finishes the bookkeeping (skips it, sets finished_at).
        ids = list(
            Prediction.objects.filter(
                evaluation_id=evaluation_id,
                status=Prediction.Status.RUNNING,
                claimed_until__lt=timezone.now(),
            ).values_list("pk", flat=True)
        )
    else:
        ids = list(
            Prediction.objects.filter(evaluation_id=evaluation_id)
            .filter(_runnable(timezone.now()))
            .values_list("pk", flat=True)
        )
    with transaction.atomic():
        _enqueue(ids)
    if not ids:
        evaluation_finish_if_done(evaluation_id)
    return len(ids)


def evaluation_finish_if_done(evaluation_id: int) -> bool:
    """When no prediction is pending or running: a running evaluation is completed, and any
    stopped one gets its finished_at. True when the evaluation is (now) finished."""
    open_ = Prediction.objects.filter(
        evaluation_id=evaluation_id,
        status__in=[Prediction.Status.PENDING, Prediction.Status.RUNNING],
    ).exists()
    if open_:
        return False
    now = timezone.now()
    with transaction.atomic():
        Evaluation.objects.filter(pk=evaluation_id, status=Evaluation.Status.RUNNING).update(
            status=Evaluation.Status.COMPLETED, finished_at=now
        )
        Evaluation.objects.filter(
            pk=evaluation_id, status__in=Evaluation.TERMINAL, finished_at__isnull=True
        ).update(finished_at=now)
    return True


def evaluations_resume_stalled() -> list[int]:
    """For beat: running evaluations with a prediction whose claim expired, or with pending
    predictions and no progress for a claim's length (their queued tasks were lost). Each is
    resumed; returns their ids."""
    now = timezone.now()
    quiet_since = now - timedelta(seconds=claim_seconds())
    expired = Prediction.objects.filter(
        evaluation__status=Evaluation.Status.RUNNING,
        status=Prediction.Status.RUNNING,
        claimed_until__lt=now,
    ).values_list("evaluation_id", flat=True)
    stalled = set(expired)
    waiting = set(
        Prediction.objects.filter(
            evaluation__status=Evaluation.Status.RUNNING, status=Prediction.Status.PENDING
        )
        .values_list("evaluation_id", flat=True)
        .distinct()
    )
    for evaluation_id in waiting - stalled:
        recent = Prediction.objects.filter(
            evaluation_id=evaluation_id, updated_at__gte=quiet_since
        ).exists()
        started = Evaluation.objects.filter(pk=evaluation_id, started_at__gte=quiet_since).exists()
        if not recent and not started:
            stalled.add(evaluation_id)
    # Running with nothing left open (a finish that never ran): finishing it is enough.
    for evaluation_id in (
        Evaluation.objects.filter(status=Evaluation.Status.RUNNING)
        .exclude(predictions__status__in=[Prediction.Status.PENDING, Prediction.Status.RUNNING])
        .values_list("pk", flat=True)
    ):
        evaluation_finish_if_done(evaluation_id)
    for evaluation_id in sorted(stalled):
        evaluation_resume(evaluation_id)
    return sorted(stalled)
