"""Celery beat schedule of the billing jobs (settings.CELERY_BEAT_SCHEDULE imports it).

Every job is idempotent, so running more often than strictly needed only costs a little work and
catches up after a worker was down.
"""

from celery.schedules import crontab

BEAT_SCHEDULE = {
    # Yesterday and the day before, recomputed hourly: late settlements land within the hour.
    "billing-rollup-recent-usage": {
        "task": "billing.tasks.rollup_recent_usage",
        "schedule": crontab(minute=7),
    },
    # Last month's overage invoices; daily so a missed 1st is caught up, never issued twice.
    "billing-issue-last-month-invoices": {
        "task": "billing.tasks.issue_last_month_invoices",
        "schedule": crontab(minute=17, hour=0),
    },
    # Reservations and settlements expire grants of active organizations on the spot; this
    # covers the quiet ones.
    "billing-expire-due-credits": {
        "task": "billing.tasks.expire_due_credits",
        "schedule": crontab(minute="*/5"),
    },
    # Requests of a process that died mid-request, settled as `lost` (see billing.lost): a
    # dead process is noticed after LOST_AFTER_SECONDS, its requests settled by the next run.
    "billing-settle-lost-requests": {
        "task": "billing.tasks.settle_lost_requests",
        "schedule": 30.0,
    },
}
