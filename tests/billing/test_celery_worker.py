"""The billing tasks through a real Celery worker on the embedded (filesystem) broker, as
`make run` starts it; and the beat schedule names only tasks the worker knows."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.support import database

ROOT = Path(__file__).resolve().parents[2]

QUEUE_AFTER_COMMIT = """
import json, sys
from datetime import UTC, datetime, timedelta
import django
django.setup()
from django.core.management import call_command
from django.db import transaction
call_command("migrate", verbosity=0)
from billing import tasks
from billing.organizations import organization_create
from billing.usage import UsageReport, settle_usage
org = organization_create(name="Worker", slug="worker")
created = datetime(2026, 10, 14, 12, tzinfo=UTC)
with transaction.atomic():
    for n in range(3):
        settle_usage(UsageReport(
            request_id=f"w-{n}", organization_id=org.pk, user_id=None, api_key_prefix="",
            team="t", project="p", model="m", deployment="", source="api", status="ok",
            http_status=200, error_code="", prompt_tokens=1000, completion_tokens=10,
            tokens_counted_by_gateway=False, time_to_first_token_ms=None, duration_ms=1,
            input_price_micros=1_000_000, output_price_micros=0, created_at=created,
            finished_at=created))
    # Queued after commit, so the worker sees the rows it rolls up.
    transaction.on_commit(lambda: tasks.rollup_usage_day.delay("2026-10-14"))
print(json.dumps({"organization_id": org.pk}))
"""


def test_beat_schedule_names_registered_tasks(settings):
    from inference_app.celery import app

    app.loader.import_default_modules()
    assert settings.CELERY_BEAT_SCHEDULE
    for entry in settings.CELERY_BEAT_SCHEDULE.values():
        assert entry["task"] in app.tasks


def test_a_queued_rollup_runs_on_the_embedded_broker(tmp_path):
    database_url = f"sqlite:///{tmp_path / 'worker.sqlite3'}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "CELERY_", "REDIS_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="inference_app.settings",
        DATABASE_URL=database_url,
        YARDSTICK_VAR_DIR=str(tmp_path),
    )
    out = subprocess.run(
        [sys.executable, "-c", QUEUE_AFTER_COMMIT],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    org_id = json.loads(out.strip().splitlines()[-1])["organization_id"]
    log = open(tmp_path / "worker.log", "w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "inference_app", "worker", "--pool=solo", "--loglevel=info"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        rows = []
        while time.monotonic() < deadline and not rows:
            rows = database.query(
                database_url,
                "SELECT requests, prompt_tokens, cost_micros FROM billing_usagerollup WHERE organization_id = %s",
                (org_id,),
            )
            time.sleep(0.3)
        assert rows == [{"requests": 3, "prompt_tokens": 3000, "cost_micros": 3000}], (
            tmp_path / "worker.log"
        ).read_text()[-3000:]
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        log.close()
