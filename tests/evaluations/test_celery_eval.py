"""Evaluations through a REAL Celery worker (a subprocess on the filesystem broker, not eager
mode) and the real gateway, against bench's fake engine as a server process, on a SQLite file:
exact results, the ledger's costs, a task delivered twice charging once, and a worker killed
mid-run whose evaluation resumes and finishes with every prediction done once."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import database
from tests.support.engines import fake_engine_reset, fake_engine_stats, start_fake_engine
from tests.support.processes import start_process, stop_process, tail
from tests.support.world import FAKE_ENGINE_OVERRIDES, FAST_MODEL, SLOW_MODEL, standard_world

ROOT = Path(__file__).resolve().parents[2]
CLAIM_SECONDS = 5

# The worker's settings: the product's, with a short claim (a dead worker's prediction is taken
# over soon) and a quick lost-request sweep (the killed call's hold is settled in the test).
SETTINGS = f"""
from inference_app.settings import *  # noqa
EVALUATION_CLAIM_SECONDS = {CLAIM_SECONDS}
EVALUATION_BUSY_RETRY_SECONDS = 0.5
HOLDER_HEARTBEAT_SECONDS = 0.5
LOST_AFTER_SECONDS = 3.0
"""

# Commands run in a process of their own, with the worker's environment and database.
COMMANDS = """
import json, sys, uuid
import django
django.setup()
command, arg = sys.argv[1], json.loads(sys.argv[2])
if command == "setup":
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from tests.support.seed import seed
    seed(arg["world"])
    from django.contrib.auth import get_user_model
    from inference_app.models import Project
    from evaluations.models import Dataset, DatasetRow, DatasetVersion, Evaluation, Prediction
    user = get_user_model().objects.get(username="alice")
    project = Project.objects.select_related("team").get(team__name="acme", name="main")
    ids = {}
    for key, spec in arg["evaluations"].items():
        dataset = Dataset.objects.create(
            organization_id=project.team.organization_id, project_id=project.pk, name=key)
        version = DatasetVersion.objects.create(
            dataset=dataset, number=1, content_hash=uuid.uuid4().hex,
            columns=["input", "expected"], row_count=len(spec["rows"]))
        for i, row in enumerate(spec["rows"]):
            DatasetRow.objects.create(version=version, index=i, data=row)
        evaluation = Evaluation.objects.create(
            organization_id=project.team.organization_id, team_id=project.team_id,
            project_id=project.pk, team="acme", project="main", created_by_id=user.pk,
            name=key, dataset_version=version,
            scorers=[{"name": "exact_match", "scorer": "exact_match", "args": {}, "mapping": {}}],
            model_specs=[{"model": spec["model"], "params": spec["params"]}],
            trace_id=uuid.uuid4().hex)
        for i in range(len(spec["rows"])):
            Prediction.objects.create(
                evaluation=evaluation, row_index=i, model_index=0, model=spec["model"])
        if spec.get("budget_in_worst_cases"):
            from evaluations.runner import worst_case_micros
            worst = worst_case_micros(
                evaluation, evaluation.predictions.first(), spec["rows"][0])
            evaluation.budget_micros = int(spec["budget_in_worst_cases"] * worst)
            evaluation.save(update_fields=["budget_micros"])
            ids[key + "_worst"] = worst
        ids[key] = evaluation.pk
    print(json.dumps(ids))
elif command == "start":
    from evaluations import runs
    print(json.dumps(runs.evaluation_start(arg)))
elif command == "resume":
    from evaluations import runs
    print(json.dumps(runs.evaluations_resume_stalled()))
elif command == "enqueue":
    from evaluations.tasks import evaluation_predict
    evaluation_predict.delay(arg)
elif command == "cancel":
    from evaluations.models import Evaluation
    from evaluations.services import evaluation_cancel
    evaluation = Evaluation.objects.get(pk=arg)
    print(json.dumps(evaluation_cancel(
        evaluation_id=arg, project_ids=[evaluation.project_id]).status))
elif command == "settle_lost":
    from billing.lost import reservations_settle_lost
    print(json.dumps(reservations_settle_lost()))
"""


class Stack:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        (tmp_path / "eval_worker_settings.py").write_text(SETTINGS)
        self.database_url = f"sqlite:///{tmp_path / 'eval.sqlite3'}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "DATABASE_", "CELERY_", "REDIS_"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="eval_worker_settings",
            DATABASE_URL=self.database_url,
            YARDSTICK_VAR_DIR=str(tmp_path),
            PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
        )
        self.env = env
        self.workers: list[subprocess.Popen] = []

    def run(self, command: str, arg) -> object:
        out = subprocess.run(
            [sys.executable, "-c", COMMANDS, command, json.dumps(arg)],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        lines = out.stdout.strip().splitlines()
        return json.loads(lines[-1]) if lines else None

    def start_worker(self, name: str) -> subprocess.Popen:
        argv = [sys.executable, "-m", "celery", "-A", "inference_app", "worker"]
        argv += ["--pool=solo", "--loglevel=info", f"--hostname={name}@%h"]
        worker = start_process(argv, env=self.env, log_path=self.tmp_path / f"{name}.log")
        self.workers.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{tail(path, 60)}" for path in sorted(self.tmp_path.glob("*.log"))
        )

    def query(self, sql: str, params: tuple = ()) -> list[dict]:
        return database.query(self.database_url, sql, params)

    def evaluation(self, evaluation_id: int) -> dict:
        return self.query("SELECT * FROM evaluations_evaluation WHERE id = %s", (evaluation_id,))[0]

    def predictions(self, evaluation_id: int) -> list[dict]:
        return self.query(
            "SELECT * FROM evaluations_prediction WHERE evaluation_id = %s ORDER BY row_index",
            (evaluation_id,),
        )

    def wait_for(self, what: str, condition, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")

    def charges(self, evaluation_id: int) -> dict[str, int]:
        """request id -> what the ledger charged for it; asserts none is charged twice."""
        rows = self.query(
            "SELECT request_id, amount_micros, overage_micros FROM billing_ledgerentry "
            "WHERE kind = 'charge' AND request_id LIKE %s",
            (f"eval-{evaluation_id}-%",),
        )
        ids = [r["request_id"] for r in rows]
        assert len(ids) == len(set(ids)), ids
        return {r["request_id"]: -r["amount_micros"] + r["overage_micros"] for r in rows}


@pytest.fixture
def stack(tmp_path):
    engine = start_fake_engine(var_dir=tmp_path, model_overrides=FAKE_ENGINE_OVERRIDES)
    stack = Stack(tmp_path)
    stack.engine = engine
    try:
        yield stack
    finally:
        for worker in stack.workers:
            stop_process(worker)
        engine.stop()


def status_of(stack, evaluation_id):
    return stack.evaluation(evaluation_id)["status"]


def test_evaluations_run_and_resume_on_a_real_worker(stack):
    fast_rows = [
        {"input": "One?", "expected": "Lorem ipsum dolor sit"},
        {"input": "Two?", "expected": "Lorem ipsum"},
        {"input": "Three?", "expected": " lorem IPSUM dolor sit."},
    ]
    slow_rows = [{"input": f"Slow {n}?", "expected": "x"} for n in range(4)]
    ids = stack.run(
        "setup",
        {
            "world": standard_world(fake_engine_url=stack.engine.base_url),
            "evaluations": {
                "fast": {
                    "model": FAST_MODEL,
                    "params": {"temperature": 0, "max_tokens": 4},
                    "rows": fast_rows,
                },
                # 30 tokens at 20 a second: about 1.5 s a prediction.
                "slow": {"model": SLOW_MODEL, "params": {"max_tokens": 30}, "rows": slow_rows},
            },
        },
    )
    fast, slow = ids["fast"], ids["slow"]
    worker = stack.start_worker("first")

    # --- a run: exact results, the ledger's costs -----------------------------------------
    assert stack.run("start", fast) is True
    stack.wait_for("the fast run", lambda: status_of(stack, fast) == "completed")
    predictions = stack.predictions(fast)
    assert [p["status"] for p in predictions] == ["done"] * 3
    assert {p["output"] for p in predictions} == {"Lorem ipsum dolor sit"}
    assert [json.loads(p["scores"])["exact_match"]["passed"] for p in predictions] == [
        True,
        False,
        True,
    ]
    charges = stack.charges(fast)
    assert sorted(charges) == sorted(p["request_id"] for p in predictions)
    for p in predictions:
        assert p["request_id"] == f"eval-{fast}-{p['id']}-1"
        assert p["cost_micros"] == charges[p["request_id"]] > 0
    evaluation = stack.evaluation(fast)
    assert evaluation["spent_micros"] == sum(charges.values())
    assert evaluation["committed_micros"] == 0
    assert fake_engine_stats(stack.engine)["total_requests"] == 3
    calls = stack.query(
        "SELECT source, trace_id FROM traces_call WHERE request_id LIKE %s", (f"eval-{fast}-%",)
    )
    assert calls == [{"source": "evaluation", "trace_id": evaluation["trace_id"]}] * 3

    # --- a task delivered again charges nothing more ---------------------------------------
    stack.run("enqueue", predictions[0]["id"])
    stack.wait_for(
        "the replayed task",
        lambda: "'not_claimed'" in (stack.tmp_path / "first.log").read_text(errors="replace"),
    )
    assert stack.charges(fast) == charges
    assert fake_engine_stats(stack.engine)["total_requests"] == 3

    # --- a worker killed mid-run; the run resumes and finishes ------------------------------
    fake_engine_reset(stack.engine)
    assert stack.run("start", slow) is True

    def one_done_one_running():
        statuses = [p["status"] for p in stack.predictions(slow)]
        # ... and the running one's call is at the engine: the kill interrupts a call.
        if statuses.count("done") < 1 or "running" not in statuses:
            return False
        return fake_engine_stats(stack.engine)["in_flight"] == 1

    stack.wait_for("the slow run under way", one_done_one_running)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    killed = [p for p in stack.predictions(slow) if p["status"] == "running"]
    assert len(killed) == 1
    killed_id = killed[0]["id"]
    assert killed[0]["attempts"] == 1
    assert status_of(stack, slow) == "running"
    time.sleep(CLAIM_SECONDS + 0.5)  # the dead worker's claim runs out
    # As with the product's settings (a claim outlives LOST_AFTER_SECONDS and the sweep's
    # period), the dead try's hold is settled as `lost` before the prediction is taken over:
    # charged for its prompt only, under its own request id.
    dead_try = f"eval-{slow}-{killed_id}-1"
    assert stack.query("SELECT 1 FROM billing_reservation WHERE request_id = %s", (dead_try,))
    assert stack.run("settle_lost", None) == 1
    lost = stack.query(
        "SELECT status, completion_tokens, cost_micros FROM billing_usagerecord "
        "WHERE request_id = %s",
        (dead_try,),
    )
    assert [(r["status"], r["completion_tokens"]) for r in lost] == [("lost", 0)]
    assert lost[0]["cost_micros"] > 0

    stack.start_worker("second")
    assert stack.run("resume", None) == [slow]
    stack.wait_for("the resumed run", lambda: status_of(stack, slow) == "completed")
    predictions = stack.predictions(slow)
    assert [p["status"] for p in predictions] == ["done"] * 4
    assert {p["output"] for p in predictions} == {
        "".join(
            ["Lorem", " ipsum", " dolor", " sit", " amet", ",", " consectetur", " adipiscing"][
                i % 8
            ]
            for i in range(30)
        )
    }
    for p in predictions:
        attempts = 2 if p["id"] == killed_id else 1
        assert p["attempts"] == attempts
        assert p["request_id"] == f"eval-{slow}-{p['id']}-{attempts}"
    # One answered call per prediction, and the killed try's lost one; each charged once, and
    # a prediction's cost is every charge of its tries.
    usage = stack.query(
        "SELECT request_id, status FROM billing_usagerecord WHERE request_id LIKE %s",
        (f"eval-{slow}-%",),
    )
    assert sorted((u["request_id"], u["status"]) for u in usage) == sorted(
        [(p["request_id"], "ok") for p in predictions] + [(dead_try, "lost")]
    )
    charges = stack.charges(slow)
    assert len(charges) == 5
    for p in predictions:
        extra = charges[dead_try] if p["id"] == killed_id else 0
        assert p["cost_micros"] == charges[p["request_id"]] + extra
        assert charges[p["request_id"]] > 0
    evaluation = stack.evaluation(slow)
    assert evaluation["spent_micros"] == sum(charges.values())  # the ledger's, all of it
    assert evaluation["committed_micros"] == 0
    assert fake_engine_stats(stack.engine)["total_requests"] == 5  # four, and the killed one


def test_a_cancel_and_a_budget_stop_on_a_real_worker(stack):
    ids = stack.run(
        "setup",
        {
            "world": standard_world(fake_engine_url=stack.engine.base_url),
            "evaluations": {
                "cancel": {
                    "model": SLOW_MODEL,
                    "params": {"max_tokens": 30},
                    # Many: the cancel command takes seconds to start (Django in a new process).
                    "rows": [{"input": f"Slow {n}?", "expected": "x"} for n in range(15)],
                },
                "budget": {
                    "model": FAST_MODEL,
                    "params": {"max_tokens": 4},
                    "rows": [{"input": f"Fast {n}?", "expected": "x"} for n in range(8)],
                    "budget_in_worst_cases": 1.5,
                },
            },
        },
    )
    cancel, budget, worst = ids["cancel"], ids["budget"], ids["budget_worst"]
    stack.start_worker("worker")

    # --- cancelled while a call is at the engine: that call finishes, nothing more starts --
    assert stack.run("start", cancel) is True

    def a_call_in_flight():
        statuses = [p["status"] for p in stack.predictions(cancel)]
        if statuses.count("done") < 1 or "running" not in statuses:
            return False
        return fake_engine_stats(stack.engine)["in_flight"] == 1

    stack.wait_for("the run under way", a_call_in_flight)
    assert stack.run("cancel", cancel) == "cancelled"
    stack.wait_for(
        "the call in flight to finish",
        lambda: all(p["status"] in ("done", "skipped") for p in stack.predictions(cancel)),
    )
    time.sleep(1)  # a task still queued would run now
    statuses = [p["status"] for p in stack.predictions(cancel)]
    done = statuses.count("done")
    assert 2 <= done < 15
    assert statuses == ["done"] * done + ["skipped"] * (15 - done)
    assert status_of(stack, cancel) == "cancelled"
    assert fake_engine_stats(stack.engine)["total_requests"] == done
    charges = stack.charges(cancel)
    assert len(charges) == done
    evaluation = stack.evaluation(cancel)
    assert evaluation["spent_micros"] == sum(charges.values())
    assert evaluation["committed_micros"] == 0

    # --- a budget of one and a half worst cases: stops before it would pass it -----------
    fake_engine_reset(stack.engine)
    assert stack.run("start", budget) is True
    stack.wait_for("the budget stop", lambda: status_of(stack, budget) == "budget_exceeded")
    stack.wait_for(
        "the run to settle",
        lambda: stack.evaluation(budget)["finished_at"] is not None,
    )
    statuses = [p["status"] for p in stack.predictions(budget)]
    done = statuses.count("done")
    assert 1 <= done < 8
    assert statuses == ["done"] * done + ["skipped"] * (8 - done)
    evaluation = stack.evaluation(budget)
    charges = stack.charges(budget)
    assert len(charges) == done == fake_engine_stats(stack.engine)["total_requests"]
    assert evaluation["spent_micros"] == sum(charges.values())
    assert evaluation["spent_micros"] <= evaluation["budget_micros"]
    assert evaluation["spent_micros"] + worst > evaluation["budget_micros"]
    assert evaluation["committed_micros"] == 0
