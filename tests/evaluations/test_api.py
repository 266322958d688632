"""The evaluations API (/v1/datasets, /v1/evaluations, /v1/leaderboards): the real views, auth,
services, runner, gateway, billing and traces, with the fake engine at the engine seam. The
test plays the Celery worker: evaluation_start's tasks are collected and run here, one by one,
through the task itself (a worker process is tests/evaluations/test_celery_eval.py's job)."""

from __future__ import annotations

import json
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.test import Client

from billing.models import LedgerEntry
from billing.organizations import membership_set, organization_create
from evaluations.models import (
    Dataset,
    DatasetRow,
    DatasetVersion,
    Evaluation,
    Leaderboard,
    Prediction,
)
from evaluations.tasks import evaluation_predict
from inference_app.accounts import api_key_create, default_project_set, team_add_member
from inference_app.models import Project, Team
from tests.inference_app.gateway_world import (
    TEXT_MODEL,
    TWO_DEPLOYMENTS_MODEL,
    fake_engine,  # noqa: F401 (fixture)
    make_world,
    settlements_drained,  # noqa: F401 (fixture)
)
from traces.models import Call

# The seed's advanced example: two rows, the answer in "target".
QA_ROWS = [
    {"input": "What is 2 + 2?", "target": "4"},
    {"input": "Name a primary color.", "target": "red"},
]
EXACT = {"name": "exact_match", "scorer": "exact_match", "mapping": {"expected": "target"}}
ANSWER = "Hello there, friend!"


@pytest.fixture
def world(transactional_db, fake_engine, settlements_drained):  # noqa: F811
    return make_world()


@pytest.fixture
def queue(monkeypatch):
    """The broker: the prediction tasks evaluation_start sends, for the test to run."""
    sent: list[int] = []
    monkeypatch.setattr(evaluation_predict, "delay", sent.append)
    return sent


def run_worker(queue: list[int]) -> list[str]:
    """Run every queued task through the task itself, as a worker would."""
    outcomes = []
    while queue:
        outcomes.append(evaluation_predict.apply(args=(queue.pop(0),)).get())
    return outcomes


def api(world, method: str, path: str, body=None, *, headers=None, **extra):
    client = Client()
    headers = world.headers() if headers is None else headers
    if method == "GET":
        return client.get(path, headers=headers, **extra)
    data = json.dumps(body) if not isinstance(body, str | bytes) else body
    return client.post(path, data=data, content_type="application/json", headers=headers, **extra)


def error_of(response) -> dict:
    return response.json()["error"]


def charged(request_ids) -> int:
    entries = LedgerEntry.objects.filter(kind="charge", request_id__in=list(request_ids))
    sums = entries.aggregate(amount=Sum("amount_micros"), overage=Sum("overage_micros"))
    return -(sums["amount"] or 0) + (sums["overage"] or 0)


def nothing_created():
    assert not Evaluation.objects.exists()
    assert not Prediction.objects.exists()


class Stranger:
    """Another organization with its own key, team and project."""

    def __init__(self):
        suffix = uuid.uuid4().hex[:6]
        self.org = organization_create(name="Other", slug=f"other-{suffix}")
        self.user = get_user_model().objects.create_user(f"eve-{suffix}", password="pw-1234567")
        membership_set(organization=self.org, user=self.user, role="admin")
        self.team = Team.objects.create(organization=self.org, name=f"team-z-{suffix}")
        team_add_member(team=self.team, user=self.user)
        self.project = Project.objects.create(team=self.team, name="main")
        default_project_set(user=self.user, project=self.project)
        _, self.raw_key = api_key_create(user=self.user, name="eve")

    def headers(self) -> dict:
        return {
            "Authorization": f"Bearer {self.raw_key}",
            "OpenAI-Project": f"{self.team.name}/main",
        }


def create_dataset(world, rows=QA_ROWS, name="qa"):
    response = api(world, "POST", "/v1/datasets", {"name": name, "rows": rows})
    assert response.status_code in (200, 201), response.content
    return response.json()


def evaluation_body(**overrides) -> dict:
    body = {
        "name": "QA",
        "dataset": "qa",
        "models": [
            {"model": TEXT_MODEL, "params": {"temperature": 0, "max_tokens": 16}},
            {"model": TWO_DEPLOYMENTS_MODEL, "params": {"max_tokens": 16}},
        ],
        "scorers": [EXACT],
        "budget": "0.50",
    }
    body.update(overrides)
    return body


# --- Auth ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/v1/datasets"),
        ("POST", "/v1/datasets"),
        ("POST", "/v1/evaluations"),
        ("GET", "/v1/evaluations/1"),
        ("GET", "/v1/evaluations/1/results"),
        ("POST", "/v1/evaluations/1/cancel"),
        ("POST", "/v1/leaderboards"),
        ("GET", "/v1/leaderboards/1"),
    ],
)
def test_every_endpoint_wants_a_key(world, method, path):
    for headers in ({}, {"Authorization": "Bearer ys-not-a-real-key-at-all"}):
        response = api(world, method, path, {}, headers=headers)
        assert response.status_code == 401, (path, response.content)
        assert error_of(response)["code"] == "invalid_api_key"
    # A project the key's user is not in is refused as well.
    response = api(world, method, path, {}, headers=world.headers("team-b/secret"))
    assert response.status_code in (401, 403, 404)
    assert "error" in response.json()


# --- Datasets ------------------------------------------------------------------------------------


def test_datasets_create_versions_and_list(world):
    first = api(world, "POST", "/v1/datasets", {"name": "qa", "rows": QA_ROWS})
    assert first.status_code == 201
    data = first.json()
    version = DatasetVersion.objects.get()
    assert data == {
        "object": "dataset.version",
        "id": version.pk,
        "dataset_id": version.dataset_id,
        "name": "qa",
        "version": 1,
        "content_hash": version.content_hash,
        "row_count": 2,
        "columns": ["input", "target"],
        "source": "api",
        "created_at": data["created_at"],
        "created": True,
    }
    assert version.dataset.project_id == world.project.pk
    # The same rows again are the same version; other rows are the next one.
    again = api(world, "POST", "/v1/datasets", {"name": "qa", "rows": QA_ROWS})
    assert again.status_code == 200 and again.json()["id"] == version.pk
    assert again.json()["created"] is False
    second = create_dataset(world, rows=QA_ROWS[:1])
    assert second["version"] == 2 and second["row_count"] == 1
    # A file, as multipart (CSV here).
    csv_file = b"input,expected\nCapital of France?,Paris\n"
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = Client().post(
        "/v1/datasets",
        {"name": "capitals", "file": SimpleUploadedFile("capitals.csv", csv_file)},
        headers=world.headers(),
    )
    assert upload.status_code == 201, upload.content
    assert upload.json()["columns"] == ["input", "expected"]
    assert upload.json()["source"] == "upload"
    listed = api(world, "GET", "/v1/datasets").json()
    assert listed["object"] == "list"
    assert [(d["name"], d["version"]) for d in listed["data"]] == [
        ("capitals", 1),
        ("qa", 2),
        ("qa", 1),
    ]


@pytest.mark.parametrize(
    "body,param,message",
    [
        ({"name": "qa", "rows": [{"input": "ok"}, {"question": "no input"}]}, "rows", "line 2:"),
        ({"name": "qa", "rows": []}, "rows", "at least one row"),
        ({"name": "qa", "rows": "not a list"}, "rows", "rows is required"),
        ({"name": "", "rows": QA_ROWS}, "name", "name:"),
        ({"name": 5, "rows": QA_ROWS}, "name", "name is required"),
        ({"name": "qa", "rows": QA_ROWS, "extra": 1}, "extra", "Unknown parameter: extra"),
    ],
)
def test_a_bad_dataset_is_refused_whole(world, body, param, message):
    response = api(world, "POST", "/v1/datasets", body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == param and message in error["message"]
    assert error["type"] == "invalid_request_error"
    assert not Dataset.objects.exists() and not DatasetRow.objects.exists()


def test_a_bad_file_and_a_bad_body(world):
    from django.core.files.uploadedfile import SimpleUploadedFile

    bad = b'{"input": "fine"}\n{"input": \n'
    response = Client().post(
        "/v1/datasets",
        {"name": "qa", "file": SimpleUploadedFile("rows.jsonl", bad)},
        headers=world.headers(),
    )
    assert response.status_code == 400
    assert error_of(response)["param"] == "file"
    assert error_of(response)["message"].startswith("line 2:")
    response = Client().post("/v1/datasets", {"name": "qa"}, headers=world.headers())
    assert response.status_code == 400 and error_of(response)["param"] == "file"
    response = api(world, "POST", "/v1/datasets", b"{not json")
    assert response.status_code == 400
    assert not Dataset.objects.exists()


# --- Evaluations ---------------------------------------------------------------------------------


def test_the_readme_flow_dataset_evaluation_results_leaderboard(world, fake_engine, queue):  # noqa: F811
    dataset = create_dataset(world)
    # "4" and "red" are never what the fake engine says; make one row right for both models.
    fake_engine.tokens = ["red"]
    response = api(world, "POST", "/v1/evaluations", evaluation_body())
    assert response.status_code == 201, response.content
    created = response.json()
    evaluation = Evaluation.objects.get()
    assert created["id"] == evaluation.pk
    assert created["status"] == "running"
    assert created["calls"] == 4  # 2 rows x 2 models
    assert created["estimate_micros"] == evaluation.estimate_micros > 0
    assert created["worst_case_micros"] == evaluation.worst_case_micros
    assert created["estimate"] == f"{evaluation.estimate_micros / 1e6:.6f}".rstrip("0")
    assert created["budget_micros"] == 500_000 and created["budget"] == "0.500000"
    assert created["dataset"]["id"] == dataset["id"]
    assert evaluation.team_id == world.project.team_id and evaluation.project_id == world.project.pk
    assert len(queue) == 4

    polled = api(world, "GET", f"/v1/evaluations/{evaluation.pk}").json()
    assert polled["status"] == "running" and polled["summary"] is None
    assert polled["progress"]["done"] == 0 and polled["progress"]["total"] == 4

    assert run_worker(queue) == ["done"] * 4
    polled = api(world, "GET", f"/v1/evaluations/{evaluation.pk}").json()
    assert polled["status"] == "completed"
    assert polled["progress"]["done"] == 4 and polled["progress"]["percent"] == 100.0
    summary = {m["model"]: m for m in polled["summary"]}
    assert set(summary) == {TEXT_MODEL, TWO_DEPLOYMENTS_MODEL}
    assert summary[TEXT_MODEL]["scorers"]["exact_match"]["mean"] == 0.5
    assert summary[TEXT_MODEL]["items"] == 2

    results = api(world, "GET", f"/v1/evaluations/{evaluation.pk}/results").json()
    assert results["object"] == "list" and results["has_more"] is False
    rows = results["data"]
    assert [(r["row"], r["model"], r["trial"]) for r in rows] == [
        (0, TEXT_MODEL, 0),
        (0, TWO_DEPLOYMENTS_MODEL, 0),
        (1, TEXT_MODEL, 0),
        (1, TWO_DEPLOYMENTS_MODEL, 0),
    ]
    assert [r["output"] for r in rows] == ["red"] * 4
    assert [r["scores"]["exact_match"]["passed"] for r in rows] == [False, False, True, True]
    assert rows[0]["item"] == QA_ROWS[0]
    spent = 0
    for row in rows:
        assert row["cost_micros"] > 0
        assert row["cost_micros"] == charged([row["request_id"]])
        assert Call.objects.get(request_id=row["request_id"]).source == "evaluation"
        spent += row["cost_micros"]
    assert polled["spent_micros"] == spent
    page = api(world, "GET", f"/v1/evaluations/{evaluation.pk}/results?limit=3&offset=2").json()
    assert len(page["data"]) == 2 and page["data"][0]["row"] == 1 and not page["has_more"]
    page = api(world, "GET", f"/v1/evaluations/{evaluation.pk}/results?limit=1").json()
    assert page["has_more"] is True

    board = api(
        world,
        "POST",
        "/v1/leaderboards",
        {
            "name": "Inference Leaderboard",
            "description": "Compare models on a QA dataset",
            "columns": [{"evaluation": "QA", "scorer": "exact_match", "metric": "mean"}],
        },
    )
    assert board.status_code == 201, board.content
    table = board.json()
    assert table["object"] == "leaderboard" and table["name"] == "Inference Leaderboard"
    assert {row["model"] for row in table["rows"]} == {TEXT_MODEL, TWO_DEPLOYMENTS_MODEL}
    assert all(row["cells"][0]["value"] == 0.5 for row in table["rows"])
    assert table["columns"][0]["run"]["id"] == evaluation.pk
    fetched = api(world, "GET", f"/v1/leaderboards/{table['id']}").json()
    assert fetched["rows"] == table["rows"]
    listed = api(world, "GET", "/v1/leaderboards").json()
    assert [b["name"] for b in listed["data"]] == ["Inference Leaderboard"]


def test_an_evaluation_by_version_id_and_the_list(world, queue):
    dataset = create_dataset(world)
    response = api(world, "POST", "/v1/evaluations", evaluation_body(dataset=dataset["id"]))
    assert response.status_code == 201
    response = api(
        world, "POST", "/v1/evaluations", evaluation_body(name="QA v1", version=1, budget=None)
    )
    assert response.status_code == 201 and response.json()["budget"] is None
    listed = api(world, "GET", "/v1/evaluations").json()
    assert [e["name"] for e in listed["data"]] == ["QA v1", "QA"]


def test_every_problem_in_one_400_and_nothing_created(world, queue):
    create_dataset(world)
    body = evaluation_body(
        models=[{"model": "nobody/no-model"}],
        scorers=[
            {"scorer": "no_such_scorer"},
            {"name": "re", "scorer": "regex", "args": {"pattern": "(unclosed"}},
            {"name": "schema", "scorer": "json_schema", "args": {"schema": {"type": "nonsense"}}},
        ],
        trials=0,
    )
    response = api(world, "POST", "/v1/evaluations", body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["param"] == "models"
    message = error["message"]
    assert "models: model 1: 'nobody/no-model' is not a model you can use" in message
    assert "unknown scorer 'no_such_scorer'" in message
    assert "regex: the pattern does not compile" in message
    assert "json_schema:" in message
    assert "trials:" in message
    nothing_created()
    assert queue == []


@pytest.mark.parametrize(
    "overrides,status,param,message",
    [
        ({"budget": "abc"}, 400, "budget", "budget must be an amount"),
        ({"budget": -1}, 400, "budget", "budget must be an amount"),
        ({"budget": True}, 400, "budget", "budget is an amount"),
        ({"budget": "1e400"}, 400, "budget", "budget must be an amount"),
        ({"dataset": "missing"}, 404, "dataset", "No dataset 'missing'"),
        ({"dataset": None}, 400, "dataset", "dataset is required"),
        ({"dataset": ["qa"]}, 400, "dataset", "dataset must be"),
        ({"dataset": "qa", "version": 9}, 404, "version", "No dataset version"),
        ({"dataset": 10**30}, 400, "dataset", "out of range"),
        ({"dataset": 2**62}, 404, "dataset", "No dataset"),
        ({"scorers": [["exact_match"]]}, 400, "scorers", "must be an object"),
        ({"scorers": [{"name": ["x"], "scorer": "exact_match"}]}, 400, "scorers", "name must"),
        ({"scorers": []}, 400, "scorers", "choose at least one scorer"),
        ({"models": "gpt"}, 400, "models", "choose at least one model"),
        ({"name": ""}, 400, "name", "name:"),
        ({"wat": 1}, 400, "wat", "Unknown parameter: wat"),
        (
            {"scorers": [{"scorer": "exact_match"}]},
            400,
            "scorers",
            "reads the column 'expected', which the dataset does not have",
        ),
    ],
)
def test_a_bad_evaluation_names_its_field(world, queue, overrides, status, param, message):
    create_dataset(world)
    response = api(world, "POST", "/v1/evaluations", evaluation_body(**overrides))
    assert response.status_code == status, response.content
    error = error_of(response)
    assert error["param"] == param and message in error["message"], error
    nothing_created()


def test_a_version_id_with_a_version_number_is_refused(world, queue):
    dataset = create_dataset(world)
    body = evaluation_body(dataset=dataset["id"], version=1)
    response = api(world, "POST", "/v1/evaluations", body)
    assert response.status_code == 400 and error_of(response)["param"] == "version"
    nothing_created()


def test_cancel(world, queue):
    create_dataset(world)
    evaluation_id = api(world, "POST", "/v1/evaluations", evaluation_body()).json()["id"]
    response = api(world, "POST", f"/v1/evaluations/{evaluation_id}/cancel", {})
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    # The queued tasks find nothing to do: nothing is called or billed.
    assert set(run_worker(queue)) <= {"not_claimed", "skipped"}
    assert set(Prediction.objects.values_list("status", flat=True)) == {"skipped"}
    assert not LedgerEntry.objects.filter(kind="charge").exists()
    again = api(world, "POST", f"/v1/evaluations/{evaluation_id}/cancel", {})
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    polled = api(world, "GET", f"/v1/evaluations/{evaluation_id}").json()
    assert polled["progress"]["skipped"] == 4 and polled["summary"] is not None


# --- Leaderboards --------------------------------------------------------------------------------


def test_a_bad_leaderboard_names_its_field(world, queue):
    create_dataset(world)
    api(world, "POST", "/v1/evaluations", evaluation_body())
    bad = api(
        world,
        "POST",
        "/v1/leaderboards",
        {"name": "B", "columns": [{"evaluation": "QA", "scorer": "nope", "metric": "mean"}]},
    )
    assert bad.status_code == 400
    assert error_of(bad)["param"] == "columns"
    assert "has no scorer 'nope'" in error_of(bad)["message"]
    bad = api(world, "POST", "/v1/leaderboards", {"name": "", "columns": "x"})
    assert error_of(bad)["param"] == "name" and "columns:" in error_of(bad)["message"]
    bad = api(world, "POST", "/v1/leaderboards", {"name": "B", "columns": [], "show_arena": 1})
    assert error_of(bad)["param"] == "show_arena"
    assert not Leaderboard.objects.exists()
    # Before any run finishes, a leaderboard has its column and no rows yet.
    ok = api(
        world,
        "POST",
        "/v1/leaderboards",
        {"name": "B", "columns": [{"evaluation": "QA", "scorer": "exact_match"}]},
    )
    assert ok.status_code == 201
    assert ok.json()["rows"] == [] and ok.json()["columns"][0]["run"] is None


# --- Tenancy -------------------------------------------------------------------------------------


def test_another_organizations_ids_are_404(world, queue, fake_engine):  # noqa: F811
    dataset = create_dataset(world)
    evaluation_id = api(world, "POST", "/v1/evaluations", evaluation_body()).json()["id"]
    run_worker(queue)
    board_id = api(
        world,
        "POST",
        "/v1/leaderboards",
        {"name": "B", "columns": [{"evaluation": "QA", "scorer": "exact_match"}]},
    ).json()["id"]
    stranger = Stranger()
    headers = stranger.headers()
    for method, path in [
        ("GET", f"/v1/evaluations/{evaluation_id}"),
        ("GET", f"/v1/evaluations/{evaluation_id}/results"),
        ("POST", f"/v1/evaluations/{evaluation_id}/cancel"),
        ("GET", f"/v1/leaderboards/{board_id}"),
    ]:
        response = api(world, method, path, {}, headers=headers)
        assert response.status_code == 404, path
        assert error_of(response)["code"] in ("evaluation_not_found", "leaderboard_not_found")
    assert Evaluation.objects.get(pk=evaluation_id).status == "completed"
    # Their lists are empty; our dataset (by id or name) is not theirs to evaluate.
    assert api(world, "GET", "/v1/datasets", headers=headers).json()["data"] == []
    assert api(world, "GET", "/v1/evaluations", headers=headers).json()["data"] == []
    assert api(world, "GET", "/v1/leaderboards", headers=headers).json()["data"] == []
    for reference in (dataset["id"], "qa"):
        response = api(
            world, "POST", "/v1/evaluations", evaluation_body(dataset=reference), headers=headers
        )
        assert response.status_code == 404 and error_of(response)["param"] == "dataset"
    # Nor is our evaluation a column of their leaderboard.
    response = api(
        world,
        "POST",
        "/v1/leaderboards",
        {"name": "Theirs", "columns": [{"evaluation": "QA", "scorer": "exact_match"}]},
        headers=headers,
    )
    assert (
        response.status_code == 400 and "no evaluation named 'QA'" in error_of(response)["message"]
    )
    assert Evaluation.objects.count() == 1 and Leaderboard.objects.count() == 1
    # Another team of our own organization (the key's user is not in it) sees nothing either.
    other_team_board = Leaderboard.objects.create(
        organization_id=world.organization.pk,
        team_id=world.other_project.team_id,
        team="team-b",
        name="Secret",
        columns=[],
        created_by_id=world.user.pk,
    )
    response = api(world, "GET", f"/v1/leaderboards/{other_team_board.pk}")
    assert response.status_code == 404


def test_junk_ids_and_methods(world):
    for path in ("/v1/evaluations/99999999999999999999999", "/v1/leaderboards/9223372036854775808"):
        response = api(world, "GET", path)
        assert response.status_code == 404, path
    assert api(world, "GET", "/v1/evaluations/abc").status_code == 404
    response = Client().delete("/v1/datasets", headers=world.headers())
    assert response.status_code == 405 and error_of(response)["code"] == "method_not_allowed"
    response = Client().put("/v1/evaluations/1", headers=world.headers())
    assert response.status_code == 405


def test_nul_characters_are_refused_by_field(world):
    response = api(world, "POST", "/v1/datasets", {"name": "qa", "rows": [{"input": "a\x00b"}]})
    assert response.status_code == 400
    assert error_of(response)["param"] == "rows"
    assert "rows[0].input" in error_of(response)["message"]
    assert not Dataset.objects.exists()


def test_with_celery_eager_the_run_happens_inside_the_request(world):
    """Eager mode (test stacks, a laptop without a worker): the tasks run in the request, on a
    thread of their own, not on the database threads their gateway calls need (a deadlock)."""
    from inference_app.celery import app as celery_app

    create_dataset(world)
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        response = api(world, "POST", "/v1/evaluations", evaluation_body())
    finally:
        celery_app.conf.task_always_eager = previous
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "completed"
    assert list(Prediction.objects.values_list("status", flat=True)) == ["done"] * 4
