"""Run the billing jobs by hand, the same services the Celery beat runs (all idempotent).

manage.py billing_jobs rollup [--day 2026-11-24 | --days 7]
manage.py billing_jobs invoices [--month 2026-10]
manage.py billing_jobs expire
manage.py billing_jobs lost       # settle the requests of dead gateway processes as `lost`
manage.py billing_jobs check      # every balance equals its ledger
"""

from datetime import UTC, date, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.credits import credits_expire_all_due
from billing.invoices import invoices_issue_for_month, previous_month
from billing.ledger import organizations_out_of_balance
from billing.lost import reservations_settle_lost
from billing.rollups import usage_rollup_day


class Command(BaseCommand):
    help = (
        "Run billing jobs now: daily usage rollups, month-end invoices, credit expiry, the"
        " requests of dead processes, the ledger check."
    )

    def add_arguments(self, parser):
        parser.add_argument("job", choices=["rollup", "invoices", "expire", "lost", "check"])
        parser.add_argument("--day", type=date.fromisoformat, help="rollup: one day (YYYY-MM-DD)")
        parser.add_argument("--days", type=int, default=2, help="rollup: the last N finished days")
        parser.add_argument("--month", help="invoices: YYYY-MM (default: last month)")

    def handle(self, *args, job, day, days, month, **options):
        if job == "rollup":
            today = timezone.now().astimezone(UTC).date()
            targets = [day] if day else [today - timedelta(days=n) for n in range(1, days + 1)]
            for target in targets:
                rows = usage_rollup_day(day=target)
                self.stdout.write(f"{target}: {rows} rollup rows")
        elif job == "invoices":
            try:
                chosen = date.fromisoformat(f"{month}-01") if month else previous_month()
                issued = invoices_issue_for_month(month=chosen)
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            self.stdout.write(f"{chosen:%Y-%m}: {len(issued)} invoice(s) issued")
        elif job == "lost":
            self.stdout.write(f"{reservations_settle_lost()} request(s) settled as lost")
        elif job == "check":
            wrong = organizations_out_of_balance()
            for org_id, balance, total in wrong:
                self.stderr.write(f"organization {org_id}: balance {balance} != ledger {total}")
            if wrong:
                raise CommandError(f"{len(wrong)} organization(s) out of balance")
            self.stdout.write("every balance equals its ledger")
        else:
            expired = credits_expire_all_due()
            self.stdout.write(f"{expired} grant(s) expired")
