"""Give organizations created before the ledger existed an opening grant for their balance.

Before 0003, grant_credits only moved `balance_micros`; afterwards the balance must equal the sum
of the ledger, so each such balance becomes one plan-credit grant with its ledger entry.
"""

from datetime import timedelta

from django.db import migrations
from django.utils import timezone


def open_balances(apps, schema_editor):
    Organization = apps.get_model("billing", "Organization")
    CreditGrant = apps.get_model("billing", "CreditGrant")
    LedgerEntry = apps.get_model("billing", "LedgerEntry")
    now = timezone.now()
    for org in Organization.objects.select_related("plan").exclude(balance_micros=0):
        if LedgerEntry.objects.filter(organization=org).exists():
            continue
        grant = None
        if org.balance_micros > 0:
            grant = CreditGrant.objects.create(
                organization=org,
                kind="plan",
                amount_micros=org.balance_micros,
                remaining_micros=org.balance_micros,
                expires_at=now + timedelta(days=org.plan.credit_validity_days),
                note="Opening balance",
            )
        LedgerEntry.objects.create(
            organization=org,
            kind="grant" if grant else "adjustment",
            amount_micros=org.balance_micros,
            balance_after_micros=org.balance_micros,
            grant=grant,
            note="Opening balance",
            created_at=now,
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0003_ledger_grants_rollups_invoices")]
    operations = [migrations.RunPython(open_balances, migrations.RunPython.noop)]
