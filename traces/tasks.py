"""Celery tasks: thin wrappers over the traces jobs (idempotent)."""

from celery import shared_task
from django.utils import timezone

from traces.partitions import call_partitions_ensure
from traces.retention import calls_delete_expired


@shared_task
def ensure_call_partitions() -> list[str]:
    return call_partitions_ensure()


@shared_task
def delete_expired_calls() -> int:
    return calls_delete_expired(now=timezone.now())
