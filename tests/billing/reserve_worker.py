"""Run reservations and settlements against the database in DATABASE_URL, from many threads.

Used by test_concurrency_postgres.py in subprocesses (each thread has its own connection, each
process its own Django), so the organization row lock is exercised for real:

    python -m tests.billing.reserve_worker setup             -> prints {"organization_id", "balance"}
    python -m tests.billing.reserve_worker run ORG_ID AMOUNT ATTEMPTS THREADS TAG
                                                             -> prints {"ok": n, "refused": n, "min_balance": n}
    python -m tests.billing.reserve_worker adjust ORG_SLUG BALANCE
                                 -> brings the balance to BALANCE with a ledger adjustment
"""

import json
import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor


def setup_django():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inference_app.settings")
    import django

    django.setup()


def setup() -> dict:
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from billing.organizations import organization_create

    org = organization_create(name="Race", slug=f"race-{uuid.uuid4().hex[:8]}", plan_code="free")
    return {"organization_id": org.pk, "balance": org.balance_micros}


def run(organization_id: int, amount: int, attempts: int, threads: int, tag: str) -> dict:
    from django.db import connection
    from django.utils import timezone

    from billing.errors import QuotaExceeded
    from billing.models import Organization
    from billing.quota import reserve_credits
    from billing.usage import UsageReport, settle_usage

    counts = {"ok": 0, "refused": 0}
    lowest = [None]
    lock = threading.Lock()

    def one(i: int) -> None:
        request_id = f"{tag}-{i}"
        try:
            try:
                reserve_credits(
                    organization_id=organization_id, request_id=request_id, amount_micros=amount
                )
            except QuotaExceeded:
                with lock:
                    counts["refused"] += 1
                return
            time.sleep(0.005)  # the "engine call": others race for the row meanwhile
            now = timezone.now()
            # Real cost == the worst case: 1 micro-dollar per prompt token.
            settle_usage(
                UsageReport(
                    request_id=request_id, organization_id=organization_id, user_id=None,
                    api_key_prefix="", team="t", project="p", model="m", deployment="",
                    source="api", status="ok", http_status=200, error_code="",
                    prompt_tokens=amount, completion_tokens=0, tokens_counted_by_gateway=False,
                    time_to_first_token_ms=None, duration_ms=5, input_price_micros=1_000_000,
                    output_price_micros=0, created_at=now, finished_at=now,
                )
            )  # fmt: skip
            balance = Organization.objects.values_list("balance_micros", flat=True).get(
                pk=organization_id
            )
            with lock:
                counts["ok"] += 1
                lowest[0] = balance if lowest[0] is None else min(lowest[0], balance)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, range(attempts)))
    return {**counts, "min_balance": lowest[0]}


def adjust(slug: str, balance: int) -> dict:
    from billing.credits import balance_adjust
    from billing.models import Organization

    org = Organization.objects.get(slug=slug)
    balance_adjust(
        organization=org, amount_micros=balance - org.balance_micros, note="test: set balance"
    )
    return {"organization_id": org.pk, "balance": org.balance_micros}


if __name__ == "__main__":
    setup_django()
    if sys.argv[1] == "setup":
        print(json.dumps(setup()))
    elif sys.argv[1] == "adjust":
        print(json.dumps(adjust(sys.argv[2], int(sys.argv[3]))))
    else:
        org_id, amount, attempts, threads = (int(a) for a in sys.argv[2:6])
        print(json.dumps(run(org_id, amount, attempts, threads, sys.argv[6])))
