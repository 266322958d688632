"""Celery tasks of evaluation runs: thin wrappers over evaluations.runs and runner, by id.

`evaluation_predict` is acknowledged late, so a message whose worker died mid-task is
delivered again where the broker supports it; where it does not (the filesystem broker), the
resume job (evaluations/beat.py) queues the prediction again once its claim has expired. Either
way the claim (runner.py) keeps two workers off one prediction, and the request id per try
keeps a replay from calling or billing twice.
"""

from celery import shared_task
from django.conf import settings

from evaluations import runner, runs

# The worker imports each app's `tasks` module only: the arena's refresh must be known there.
from evaluations.arena_tasks import arena_ratings_refresh  # noqa: F401

# A prediction refused for concurrency (the user's own panes and API calls have the slots)
# waits this long before its next try.
DEFAULT_BUSY_RETRY_SECONDS = 2.0


@shared_task(bind=True, acks_late=True, max_retries=None)
def evaluation_predict(self, prediction_id: int) -> str:
    outcome = runner.prediction_run(prediction_id)
    if outcome == runner.BUSY:
        countdown = float(
            getattr(settings, "EVALUATION_BUSY_RETRY_SECONDS", DEFAULT_BUSY_RETRY_SECONDS)
        )
        raise self.retry(countdown=countdown)
    return outcome


@shared_task
def evaluation_start_task(evaluation_id: int) -> bool:
    return runs.evaluation_start(evaluation_id)


@shared_task
def evaluation_resume_task(evaluation_id: int) -> int:
    return runs.evaluation_resume(evaluation_id)


@shared_task
def evaluations_resume_stalled_task() -> list[int]:
    return runs.evaluations_resume_stalled()
