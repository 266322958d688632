"""Lesson 1 on PostgreSQL: credits for exactly K requests, 10 x K parallel reservations from two
processes with many threads each. At most K succeed, the rest are refused, the balance never goes
below zero and the ledger sums to the balance."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import database

pytestmark = pytest.mark.scaled

ROOT = Path(__file__).resolve().parents[2]
K = 20
PROCESSES = 2
THREADS = 8


def worker_env(database_url: str, var_dir: Path) -> dict:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "PYTEST_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="inference_app.settings",
        DATABASE_URL=database_url,
        YARDSTICK_VAR_DIR=str(var_dir),
    )
    return env


def test_parallel_reservations_never_overspend(fresh_postgres_database, tmp_path):
    env = worker_env(fresh_postgres_database, tmp_path)
    command = [sys.executable, "-m", "tests.billing.reserve_worker"]
    setup = json.loads(
        subprocess.run(
            [*command, "setup"], env=env, cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout
    )
    org_id, balance = setup["organization_id"], setup["balance"]
    assert balance % K == 0
    amount = balance // K  # credits for exactly K requests

    attempts_each = 10 * K // PROCESSES
    workers = [
        subprocess.Popen(
            [*command, "run", str(org_id), str(amount), str(attempts_each), str(THREADS), f"p{n}"],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in range(PROCESSES)
    ]  # fmt: skip
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        assert worker.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))

    ok = sum(r["ok"] for r in results)
    refused = sum(r["refused"] for r in results)
    assert ok + refused == 10 * K
    assert ok == K  # every credit is used, and not one request more
    assert all(r["min_balance"] is None or r["min_balance"] >= 0 for r in results)

    url = fresh_postgres_database
    org = database.query(
        url,
        "SELECT balance_micros, reserved_micros FROM billing_organization WHERE id = %s",
        (org_id,),
    )[0]
    ledger = database.query(
        url,
        "SELECT COALESCE(SUM(amount_micros), 0) AS total, COUNT(*) FILTER (WHERE kind = 'charge') AS charges FROM billing_ledgerentry WHERE organization_id = %s",
        (org_id,),
    )[0]
    assert org["balance_micros"] == 0 and org["reserved_micros"] == 0
    assert ledger["total"] == org["balance_micros"]
    assert ledger["charges"] == ok
    assert database.query(url, "SELECT COUNT(*) AS n FROM billing_reservation")[0]["n"] == 0
