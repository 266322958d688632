"""The README's evaluations example (docs/evaluations_example.py), run as the README prints it,
against a live stack: daphne, a REAL Celery worker process (the filesystem broker, not eager
mode) and the REAL embedded engine (SmolLM2 on llama.cpp), deployed under the example's two
catalog names (Llama 3.1 8B and DeepSeek V3), as the Playground's browser test does.

A real model: the test checks what the script printed (a leaderboard with both models) and
what the stack recorded (every prediction done, each one's cost the ledger's charge), never
the model's wording.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.engines import start_embedded_engine
from tests.support.processes import start_process, stop_process, tail
from tests.support.stack import Stack, sqlite_database_url
from tests.support.world import EMBEDDED_MODEL, MAIN_PROJECT, standard_world

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[2]
MODELS = ["meta-llama/Llama-3.1-8B-Instruct", "deepseek-ai/DeepSeek-V3-0324"]


def readme_commands() -> tuple[list[str], list[str]]:
    """The README's block for the example: its `export` lines and its commands."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Evaluations and leaderboards", 1)[1]
    block = re.search(r"```(?:bash|sh|shell)\n(.*?)```", section, re.DOTALL).group(1)
    lines = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    lines = [line for line in lines if line]
    exports = [line for line in lines if line.startswith("export ")]
    commands = [line for line in lines if not line.startswith("export ")]
    return exports, commands


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    engine = start_embedded_engine(var_dir=tmp_path_factory.mktemp("readme-engine"))
    var_dir = tmp_path_factory.mktemp("readme-stack")
    # Tasks go to the broker folder in var_dir, for the worker below (not run in daphne).
    live = Stack(
        database_url=sqlite_database_url(var_dir),
        var_dir=var_dir,
        embedded_engine_url=engine.base_url,
        env={"CELERY_TASK_ALWAYS_EAGER": "0"},
    )
    worker = None
    try:
        live.migrate()
        live.seed(standard_world(fake_engine_url=None, embedded=True))
        live.seed(
            {
                "deployments": [
                    {
                        "name": f"smol-as-{model.split('/')[0]}",
                        "model": model,
                        "base_url": engine.base_url,
                        "upstream_model": EMBEDDED_MODEL,
                    }
                    for model in MODELS
                ]
            }
        )
        live.start_servers(1)
        # The worker shares the stack's environment: its SQLite file and its broker folder.
        worker = start_process(
            [sys.executable, "-m", "celery", "-A", "inference_app", "worker"]
            + ["--pool=solo", "--loglevel=info", "--hostname=readme@%h"],
            env=live.env,
            log_path=var_dir / "worker.log",
        )
        live.worker_log = var_dir / "worker.log"
        yield live
    finally:
        if worker is not None:
            stop_process(worker)
        live.stop()
        engine.stop()


def test_the_readme_example_runs_as_printed(stack):
    exports, commands = readme_commands()
    assert [e.split("=", 1)[0] for e in exports] == [
        "export YARDSTICK_URL",
        "export YARDSTICK_API_KEY",
        "export YARDSTICK_PROJECT",
    ]
    assert commands == ["python docs/evaluations_example.py"]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))},
        # `python` is this virtualenv's, as for someone who activated it.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "YARDSTICK_URL": stack.url,
        "YARDSTICK_API_KEY": stack.api_keys["alice"],
        "YARDSTICK_PROJECT": MAIN_PROJECT,
    }
    out = subprocess.run(
        ["bash", "-c", commands[0]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    logs = f"\n--- worker\n{tail(stack.worker_log, 60)}"
    assert out.returncode == 0, out.stdout + out.stderr + logs
    printed = out.stdout
    assert "Evaluation completed" in printed, printed + logs

    # The leaderboard as printed: its title, its column, a row per model with a value.
    board = printed.split("\nInference Leaderboard: Compare models on a QA dataset\n", 1)[1]
    header, *rows = board.strip().splitlines()
    assert "QA · exact_match · Mean score" in header
    assert sorted(row.split()[0] for row in rows) == sorted(MODELS)
    for row in rows:
        assert re.search(r"\s(0|1)\.\d\d \[\d\.\d\d, \d\.\d\d\]$", row), row

    [evaluation] = stack.query("SELECT * FROM evaluations_evaluation")
    assert evaluation["status"] == "completed"
    predictions = stack.query(
        "SELECT * FROM evaluations_prediction WHERE evaluation_id = %s", (evaluation["id"],)
    )
    assert len(predictions) == 4
    assert {p["status"] for p in predictions} == {"done"}
    assert {p["model"] for p in predictions} == set(MODELS)
    total = 0
    for prediction in predictions:
        charges = stack.query(
            "SELECT amount_micros, overage_micros FROM billing_ledgerentry "
            "WHERE kind = 'charge' AND request_id = %s",
            (prediction["request_id"],),
        )
        assert len(charges) == 1, prediction["request_id"]
        charged = -charges[0]["amount_micros"] + charges[0]["overage_micros"]
        assert prediction["cost_micros"] == charged > 0
        [call] = stack.query(
            "SELECT * FROM traces_call WHERE request_id = %s", (prediction["request_id"],)
        )
        assert call["cost_micros"] == charged and call["source"] == "evaluation"
        assert call["deployment"].startswith("smol-as-")
        assert f"cost=${charged / 1e6:.6f}" in printed
        total += charged
    assert evaluation["spent_micros"] == total
    assert f"spent ${total / 1e6:.6f}" in printed

    # Run again as printed: a second run of the same evaluation, the leaderboard found again.
    again = subprocess.run(
        ["bash", "-c", commands[0]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Dataset qa v1: 2 rows" in again.stdout
    runs = stack.query("SELECT id FROM evaluations_evaluation ORDER BY id")
    assert len(runs) == 2
    assert "Inference Leaderboard: Compare models on a QA dataset" in again.stdout
