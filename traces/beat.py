"""Celery beat schedule of the traces jobs (settings.CELERY_BEAT_SCHEDULE merges it with
billing's). Both jobs are idempotent: running late or twice only catches up."""

from celery.schedules import crontab

TRACES_BEAT = {
    # Month partitions three months ahead (PostgreSQL); daily, so a missed run is harmless.
    "traces-partitions": {
        "task": "traces.tasks.ensure_call_partitions",
        "schedule": crontab(minute=23, hour=1),
    },
    # Calls older than their organization's retention period, in batches.
    "traces-retention": {
        "task": "traces.tasks.delete_expired_calls",
        "schedule": crontab(minute=41),
    },
}
