"""Celery beat schedule of evaluation runs (settings.CELERY_BEAT_SCHEDULE merges it)."""

EVALUATIONS_BEAT = {
    # Runs whose worker died: predictions with an expired claim, or pending ones whose queued
    # tasks were lost, are queued again. Idempotent: a prediction is run once whatever happens.
    "evaluations-resume-stalled": {
        "task": "evaluations.tasks.evaluations_resume_stalled_task",
        "schedule": 60.0,
    },
}
