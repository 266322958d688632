"""Run the traces jobs by hand, the same services the Celery beat runs (both idempotent).

manage.py traces_jobs partitions [--months-ahead 3]   # month partitions ahead (PostgreSQL)
manage.py traces_jobs retention [--now 2026-12-31T00:00:00+00:00]
"""

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from traces.partitions import call_partitions_ensure, is_partitioned
from traces.retention import calls_delete_expired


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise CommandError(f"--now: {exc}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Run traces jobs now: month partitions ahead, retention (old calls deleted)."

    def add_arguments(self, parser):
        parser.add_argument("job", choices=["partitions", "retention"])
        parser.add_argument("--months-ahead", type=int, default=3)
        parser.add_argument("--now", type=_moment, help="retention: pretend it is this moment")

    def handle(self, *args, job, months_ahead, now, **options):
        if job == "partitions":
            if not is_partitioned():
                self.stdout.write("not PostgreSQL: the calls tables are not partitioned")
                return
            created = call_partitions_ensure(months_ahead=months_ahead)
            self.stdout.write(
                f"{len(created)} partition(s) created" + "".join(f"\n  {name}" for name in created)
            )
        else:
            deleted = calls_delete_expired(now=now or timezone.now())
            self.stdout.write(f"{deleted} call(s) deleted")
