"""The datasets and evaluations pages: upload (good and bad files), the preview, the new
evaluation form (errors create nothing; the estimate's numbers), an evaluation's progress and
results (matrix, header figures with intervals, filters, the paired comparison), and access:
another organization's datasets and evaluations are 404s."""

from __future__ import annotations

import secrets

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from evaluations import selectors, stats
from evaluations.models import Dataset, DatasetRow, DatasetVersion, Evaluation, Prediction
from inference_app.catalog import sync_catalog
from inference_app.models import CatalogModel, Deployment
from tests.traces.page_world import make_member

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
PHI = "microsoft/Phi-4-mini-instruct"
QA_JSONL = (
    b'{"input": "What is the capital of France?", "expected": "Paris"}\n'
    b'{"input": "2 + 2 = ?", "expected": "4", "topic": "math"}\n'
    b'{"input": "Colour of the sky?", "expected": "blue"}\n'
)


def serve(*model_ids: str) -> None:
    """The catalog, with a deployment (never called here) for each model: "available"."""
    sync_catalog()
    for model_id in model_ids:
        Deployment.objects.create(
            name=f"d-{secrets.token_hex(3)}",
            model=CatalogModel.objects.get(model_id=model_id),
            base_url="http://127.0.0.1:9/v1",
        )


def make_dataset(project, rows, *, name="qa", user=None) -> DatasetVersion:
    dataset = Dataset.objects.create(
        organization_id=project.team.organization_id,
        project_id=project.pk,
        name=name,
        created_by_id=user.pk if user else None,
    )
    columns = list(dict.fromkeys(key for row in rows for key in row))
    version = DatasetVersion.objects.create(
        dataset=dataset,
        number=1,
        content_hash=secrets.token_hex(32),
        columns=columns,
        row_count=len(rows),
    )
    DatasetRow.objects.bulk_create(
        [DatasetRow(version=version, index=i, data=row) for i, row in enumerate(rows)]
    )
    return version


def make_evaluation(project, version, *, user, models=(LLAMA, PHI), trials=1, **fields):
    defaults = {
        "organization_id": project.team.organization_id,
        "team_id": project.team_id,
        "project_id": project.pk,
        "team": project.team.name,
        "project": project.name,
        "created_by_id": user.pk,
        "name": "qa-run",
        "dataset_version": version,
        "scorers": [{"name": "exact_match", "scorer": "exact_match", "args": {}, "mapping": {}}],
        "model_specs": [{"model": m, "params": {"max_tokens": 64}} for m in models],
        "trials": trials,
        "status": Evaluation.Status.RUNNING,
        "trace_id": secrets.token_hex(16),
    }
    defaults.update(fields)
    return Evaluation.objects.create(**defaults)


def predict(
    evaluation,
    row,
    model_index,
    *,
    output,
    passed,
    trial=0,
    latency=500,
    cost=100,
    status=Prediction.Status.DONE,
    scorer="exact_match",
    score=None,
):
    scores = {}
    if status == Prediction.Status.DONE:
        value = score if score is not None else (1.0 if passed else 0.0)
        scores = {scorer: {"score": value, "passed": passed, "reason": "test"}}
    return Prediction.objects.update_or_create(
        evaluation=evaluation,
        row_index=row,
        model_index=model_index,
        trial=trial,
        defaults={
            "model": evaluation.model_specs[model_index]["model"],
            "status": status,
            "output": output,
            "scores": scores,
            "latency_ms": latency if status == Prediction.Status.DONE else None,
            "cost_micros": cost,
            "error": "engine said no" if status == Prediction.Status.ERROR else "",
        },
    )[0]


@pytest.fixture
def member(db):
    serve(LLAMA, PHI)
    return make_member("ada")


@pytest.fixture
def client_for(client):
    def sign_in(user):
        client.force_login(user)
        return client

    return sign_in


# --- Datasets -------------------------------------------------------------------------------------


def test_login_required(client, db):
    response = client.get("/evaluations/")
    assert response.status_code == 302
    assert "/login" in response["Location"]


def test_upload_a_dataset_then_its_preview(member, client_for):
    user, project = member
    client = client_for(user)
    upload = SimpleUploadedFile("qa.jsonl", QA_JSONL, content_type="application/jsonl")
    response = client.post("/evaluations/datasets/new", {"name": "qa-small", "file": upload})
    assert response.status_code == 302
    dataset = Dataset.objects.get(project_id=project.pk, name="qa-small")
    assert response["Location"].startswith(f"/evaluations/datasets/{dataset.pk}?version=1")
    page = client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert "Version 1 created: 3 rows" in html
    assert "What is the capital of France?" in html
    # Columns found, in order: input, expected, then the variable.
    columns = html.split('data-testid="column">')[1:]
    assert [c.split("<")[0] for c in columns] == ["input", "expected", "topic"]

    # The same rows again: the same version; other rows: version 2, both listed.
    again = SimpleUploadedFile("qa.jsonl", QA_JSONL)
    response = client.post("/evaluations/datasets/new", {"name": "qa-small", "file": again})
    assert "version=1&created=0" in response["Location"]
    other = SimpleUploadedFile("qa.csv", b"input,expected\nHi,Hello\n")
    response = client.post("/evaluations/datasets/new", {"name": "qa-small", "file": other})
    assert "version=2&created=1" in response["Location"]
    html = client.get(f"/evaluations/datasets/{dataset.pk}").content.decode()
    assert ">v2<" in html and ">v1<" in html
    # The list page names the dataset.
    assert "qa-small" in client.get("/evaluations/").content.decode()


def test_a_bad_file_shows_the_line_and_creates_nothing(member, client_for):
    user, _ = member
    client = client_for(user)
    bad = SimpleUploadedFile(
        "qa.jsonl", b'{"input": "ok", "expected": "1"}\n{"input": "broken"\n{"input": "x"}\n'
    )
    response = client.post("/evaluations/datasets/new", {"name": "qa", "file": bad})
    assert response.status_code == 400
    html = response.content.decode()
    assert "line 2" in html
    assert "bad JSON" in html
    assert "Nothing was created" in html
    assert not Dataset.objects.exists()
    assert not DatasetVersion.objects.exists()
    # A row without input or messages.
    no_input = SimpleUploadedFile("qa.csv", b"question,expected\nHi,Hello\n")
    response = client.post("/evaluations/datasets/new", {"name": "qa", "file": no_input})
    assert response.status_code == 400
    assert "line 2" in response.content.decode()
    assert not Dataset.objects.exists()


def test_dataset_from_calls_of_the_current_project_only(member, client_for):
    from tests.traces.page_world import record_call

    user, project = member
    other_user, other_project = make_member("eve")
    mine = record_call(project, user=user, prompt="Name a colour", answer="Blue")
    theirs = record_call(other_project, user=other_user)
    client = client_for(user)
    response = client.post(
        "/evaluations/datasets/from-calls",
        {"name": "from-traces", "span_ids": f"{mine.span_id},{theirs.span_id}"},
    )
    assert response.status_code == 400
    assert not Dataset.objects.exists()
    response = client.post(
        "/evaluations/datasets/from-calls", {"name": "from-traces", "span_ids": mine.span_id}
    )
    assert response.status_code == 302
    row = DatasetRow.objects.get()
    assert row.data["expected"] == "Blue"
    assert row.data["messages"][-1]["content"] == "Name a colour"
    assert row.version.source == DatasetVersion.Source.TRACES


# --- A new evaluation -----------------------------------------------------------------------------


def _form(version, **extra):
    data = {
        "name": "qa-run",
        "dataset_version": str(version.pk),
        "model": [LLAMA, PHI],
        "temperature": "0",
        "max_tokens": "100",
        "scorer": ["exact_match"],
        "trials": "1",
        "budget": "",
        "system_prompt": "",
    }
    data.update(extra)
    return data


def test_new_evaluation_form_lists_models_scorers_and_versions(member, client_for):
    user, project = member
    version = make_dataset(project, [{"input": "Hi", "expected": "Hello"}])
    html = client_for(user).get("/evaluations/new").content.decode()
    for name in ("exact_match", "contains", "regex", "json_schema", "similarity", "llm_judge"):
        assert f'value="{name}"' in html
    assert f'value="{LLAMA}"' in html and f'value="{PHI}"' in html
    assert "DeepSeek" not in html.split('name="model"')[1]  # not served: not offered
    assert f'value="{version.pk}"' in html
    assert 'name="arg__llm_judge__rubric"' in html


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": []}, "Choose at least one model."),
        ({"scorer": []}, "Choose at least one scorer."),
        ({"scorer": ["regex"], "arg__regex__pattern": "(unclosed"}, "does not compile"),
        ({"scorer": ["json_schema"], "arg__json_schema__schema": '{"type": 12}'}, "json_schema"),
        ({"scorer": ["json_schema"], "arg__json_schema__schema": "{not json"}, "Not JSON"),
        ({"trials": "0"}, "Trials are between 1 and 10."),
        ({"budget": "-1"}, "A budget is an amount in dollars above 0."),
        ({"name": ""}, "Give the evaluation a name."),
        ({"model": ["deepseek-ai/DeepSeek-V3-0324"]}, "Not an available model"),
    ],
)
def test_new_evaluation_errors_show_and_create_nothing(member, client_for, changes, message):
    user, project = member
    version = make_dataset(project, [{"input": "Hi", "expected": "Hello"}])
    response = client_for(user).post("/evaluations/new", _form(version, **changes))
    assert response.status_code == 400
    html = response.content.decode()
    assert "The evaluation was not created" in html
    assert message in html
    assert not Evaluation.objects.exists()
    assert not Prediction.objects.exists()


def test_the_estimate_panel_counts_calls_and_prices(member, client_for):
    user, project = member
    rows = [{"input": "What is the capital of France?", "expected": "Paris"}] * 4
    version = make_dataset(project, rows)
    client = client_for(user)
    response = client.post(
        "/evaluations/estimate",
        _form(version, trials="2", budget="0.000001"),
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200
    # 4 rows x 2 models x 2 trials = 16 calls, no judge.
    assert 'data-testid="estimate-calls">16<' in html
    assert 'data-testid="estimate-judge-calls">0<' in html
    assert 'data-testid="budget-warning"' in html
    # The figures are evaluation_estimate's, with the catalog's prices.
    from billing.money import format_usd
    from evaluations.estimates import evaluation_estimate
    from evaluations.views import count_prompt_tokens

    prices = {
        m.model_id: (m.input_price_micros, m.output_price_micros)
        for m in CatalogModel.objects.filter(model_id__in=[LLAMA, PHI])
    }
    expected = evaluation_estimate(
        rows=rows,
        model_specs=[
            {"model": m, "params": {"max_tokens": 100, "temperature": 0.0}} for m in (LLAMA, PHI)
        ],
        scorers=[{"name": "exact_match", "scorer": "exact_match", "args": {}, "mapping": {}}],
        trials=2,
        system_prompt="",
        prices=prices,
        count_prompt_tokens=count_prompt_tokens,
    )
    assert f'data-testid="estimate-cost">{format_usd(expected.estimate_micros)}<' in html
    assert f'data-testid="estimate-worst">{format_usd(expected.worst_case_micros)}<' in html
    assert expected.worst_case_micros > expected.estimate_micros > 0

    # A judge adds one call per prediction.
    judged = _form(
        version,
        scorer=["exact_match", "llm_judge"],
        **{"arg__llm_judge__model": LLAMA, "arg__llm_judge__rubric": "Is it right?"},
    )
    html = client.post("/evaluations/estimate", judged).content.decode()
    assert 'data-testid="estimate-calls">16<' in html
    assert 'data-testid="estimate-judge-calls">8<' in html
    assert not Evaluation.objects.exists()


def test_start_an_evaluation(member, client_for):
    user, project = member
    version = make_dataset(project, [{"input": "Hi", "expected": "Hello"}])
    own = {f"temperature__{PHI}": "0.5", f"max_tokens__{PHI}": "32"}
    response = client_for(user).post("/evaluations/new", _form(version, budget="1.50", **own))
    evaluation = Evaluation.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/evaluations/{evaluation.pk}"
    # Started (its tasks are queued when the transaction commits: never, in this test).
    assert evaluation.status == Evaluation.Status.RUNNING
    assert evaluation.budget_micros == 1_500_000
    assert [s["model"] for s in evaluation.model_specs] == [LLAMA, PHI]
    assert evaluation.model_specs[0]["params"] == {"max_tokens": 100, "temperature": 0.0}
    # A model's own parameters win over the shared ones.
    assert evaluation.model_specs[1]["params"] == {"max_tokens": 32, "temperature": 0.5}
    assert Prediction.objects.filter(evaluation=evaluation).count() == 2
    assert evaluation.project_id == project.pk


# --- An evaluation's page -------------------------------------------------------------------------


@pytest.fixture
def finished(member):
    """Two models over 4 items: llama passes 3 (item 3 errored for phi), phi passes 1."""
    user, project = member
    rows = [{"input": f"Q{i} <b>bold</b>", "expected": f"A{i}"} for i in range(4)]
    version = make_dataset(project, rows)
    evaluation = make_evaluation(
        project, version, user=user, status=Evaluation.Status.COMPLETED, spent_micros=1234
    )
    llama = [True, True, True, False]
    phi = [True, False, False, None]
    for i in range(4):
        predict(
            evaluation,
            i,
            0,
            output=f"A{i}" if llama[i] else "<script>x</script>",
            passed=llama[i],
            latency=100 * (i + 1),
            cost=1000,
        )
        if phi[i] is None:
            predict(
                evaluation, i, 1, output="", passed=False, status=Prediction.Status.ERROR, cost=0
            )
        else:
            predict(
                evaluation,
                i,
                1,
                output=f"A{i}" if phi[i] else "nope",
                passed=phi[i],
                latency=1000,
                cost=3000,
            )
    return user, project, evaluation


def test_results_header_figures_are_the_statistics(finished, client_for):
    user, _, evaluation = finished
    summary = {m["index"]: m for m in selectors.evaluation_summary(evaluation)}
    llama = summary[0]["scorers"]["exact_match"]
    interval = stats.mean_ci([1.0, 1.0, 1.0, 0.0], seed=selectors.BOOTSTRAP_SEED)
    assert (llama["mean"], llama["low"], llama["high"]) == tuple(interval)
    assert llama["pass_rate"] == 0.75 and llama["n"] == 4
    assert summary[0]["cost_per_item_micros"] == 1000
    assert summary[0]["p50_ms"] == 250 and summary[0]["p95_ms"] == 385
    phi = summary[1]["scorers"]["exact_match"]
    assert phi["n"] == 3 and phi["mean"] == pytest.approx(1 / 3)  # the error is left out
    assert summary[1]["errors"] == 1
    assert summary[1]["cost_per_item_micros"] == 2250  # 9000 over 4 items

    html = client_for(user).get(f"/evaluations/{evaluation.pk}").content.decode()
    assert f"[{interval.low:.2f}, {interval.high:.2f}]" in html
    assert "75% pass" in html
    assert "$0.001/item" in html
    # Untrusted text is escaped: the output and the input.
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert 'data-testid="matched">4 of 4 items' in html
    assert 'data-testid="call-link"' not in html  # no traced call yet


def test_a_cell_links_its_traced_call(finished, client_for):
    from tests.traces.page_world import record_call

    user, project, evaluation = finished
    call = record_call(project, user=user, source="evaluation", answer="A0")
    Prediction.objects.filter(evaluation=evaluation, row_index=0, model_index=0).update(
        request_id=call.request_id
    )
    html = client_for(user).get(f"/evaluations/{evaluation.pk}").content.decode()
    assert f'href="/traces/{call.span_id}" data-testid="call-link"' in html
    assert html.count('data-testid="call-link"') == 1


def test_paired_comparison_verdict(member, client_for):
    user, project = member
    rows = [{"input": f"Q{i}", "expected": f"A{i}"} for i in range(30)]
    version = make_dataset(project, rows)
    evaluation = make_evaluation(project, version, user=user, status=Evaluation.Status.COMPLETED)
    for i in range(30):
        predict(evaluation, i, 0, output="x", passed=True)
        predict(evaluation, i, 1, output="x", passed=i % 3 == 0)
    result = selectors.evaluation_compare(evaluation, 0, 1)
    assert result[0]["verdict"] == "better" and result[0]["low"] > 0
    assert selectors.evaluation_compare(evaluation, 1, 0)[0]["verdict"] == "worse"
    html = client_for(user).get(f"/evaluations/{evaluation.pk}?a=1&b=0").content.decode()
    assert 'data-testid="verdict">worse<' in html


def test_filters(finished, client_for):
    user, _, evaluation = finished
    shown = lambda f: [r["index"] for r in selectors.evaluation_matrix(evaluation, f)["rows"]]  # noqa: E731
    assert shown(set()) == [0, 1, 2, 3]
    assert shown({"failures"}) == [1, 2, 3]
    # Item 3: llama fails and phi errored (no score): no disagreement on a score.
    assert shown({"disagree"}) == [1, 2]
    assert shown({"variance"}) == []
    # Two trials that disagree on item 0 for llama: high variance.
    predict(evaluation, 0, 0, output="no", passed=False, trial=1)
    assert shown({"variance"}) == [0]
    client = client_for(user)
    html = client.get(
        f"/evaluations/{evaluation.pk}?failures=1&disagree=1", HTTP_HX_REQUEST="true"
    ).content.decode()
    assert html.lstrip().startswith('<div id="results"')  # the htmx partial alone
    assert 'data-row="1"' in html and 'data-row="2"' in html and 'data-row="0"' not in html


def test_progress_snapshot(member):
    user, project = member
    version = make_dataset(project, [{"input": "a"}, {"input": "b"}, {"input": "c"}])
    evaluation = make_evaluation(project, version, user=user, budget_micros=5000, spent_micros=40)
    from django.utils import timezone

    Evaluation.objects.filter(pk=evaluation.pk).update(started_at=timezone.now())
    progress = selectors.evaluation_progress(evaluation.pk)
    assert (progress["done"], progress["total"], progress["eta_seconds"]) == (0, 6, None)
    predict(evaluation, 0, 0, output="x", passed=True)
    predict(evaluation, 0, 1, output="", passed=False, status=Prediction.Status.ERROR)
    progress = selectors.evaluation_progress(evaluation.pk)
    assert (progress["done"], progress["errors"], progress["total"]) == (1, 1, 6)
    assert progress["budget_micros"] == 5000 and progress["spent_micros"] == 40
    assert progress["eta_seconds"] is not None and not progress["terminal"]
    assert progress["stalled"] is False


# --- Access ---------------------------------------------------------------------------------------


def test_another_organizations_dataset_and_evaluation_are_404(finished, client_for):
    _, project, evaluation = finished
    stranger, _ = make_member("mallory")
    client = client_for(stranger)
    dataset_id = evaluation.dataset_version.dataset_id
    for url in (
        f"/evaluations/{evaluation.pk}",
        f"/evaluations/datasets/{dataset_id}",
        f"/evaluations/?project={project.team.name}/{project.name}",
    ):
        assert client.get(url).status_code == 404, url
    assert client.post(f"/evaluations/{evaluation.pk}/cancel").status_code == 404
    assert client.post(f"/evaluations/{evaluation.pk}/resume").status_code == 404
    # Their own list does not show it.
    html = client.get("/evaluations/").content.decode()
    assert evaluation.name not in html and "qa" not in html.split("Datasets")[-1]
    # The estimate cannot read another project's version either.
    response = client.post(
        "/evaluations/estimate", _form(evaluation.dataset_version), HTTP_HX_REQUEST="true"
    )
    assert 'data-testid="estimate-calls"' not in response.content.decode()


def test_org_admin_reads_a_members_evaluation(finished, client_for):
    from billing.models import Membership

    _, project, evaluation = finished
    admin, _ = make_member("boss", org=project.team.organization, role=Membership.Role.ADMIN)
    response = client_for(admin).get(f"/evaluations/{evaluation.pk}")
    assert response.status_code == 200
    assert reverse("evaluations:resume", args=[evaluation.pk]) not in response.content.decode()


def test_cancel_and_resume_buttons(member, client_for):
    from datetime import timedelta

    from django.utils import timezone

    user, project = member
    version = make_dataset(project, [{"input": "a"}, {"input": "b"}])
    evaluation = make_evaluation(project, version, user=user)
    for row in range(2):
        for model_index in range(2):
            Prediction.objects.create(
                evaluation=evaluation, row_index=row, model_index=model_index, model=LLAMA
            )
    client = client_for(user)
    html = client.get(f"/evaluations/{evaluation.pk}").content.decode()
    assert "data-resume hidden" in html  # moving: no Resume
    # Nothing moved for longer than a stall: Resume shows.
    long_ago = timezone.now() - timedelta(seconds=selectors.STALL_SECONDS + 60)
    Prediction.objects.update(updated_at=long_ago)
    Evaluation.objects.filter(pk=evaluation.pk).update(created_at=long_ago, started_at=long_ago)
    assert selectors.evaluation_progress(evaluation.pk)["stalled"] is True
    html = client.get(f"/evaluations/{evaluation.pk}").content.decode()
    assert "data-resume>" in html
    response = client.post(f"/evaluations/{evaluation.pk}/resume")
    assert response.status_code == 302

    response = client.post(f"/evaluations/{evaluation.pk}/cancel")
    assert response.status_code == 302
    evaluation.refresh_from_db()
    assert evaluation.status == Evaluation.Status.CANCELLED
    html = client.get(f"/evaluations/{evaluation.pk}").content.decode()
    assert "data-cancel hidden" in html
