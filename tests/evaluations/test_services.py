"""Evaluations: the cost estimate (computed by hand here), creation (every check before any
write; rows x models x trials predictions in one transaction) and cancellation."""

from __future__ import annotations

import pytest
from django.db.models import Count

from evaluations.datasets import dataset_version_create
from evaluations.estimates import evaluation_estimate
from evaluations.models import Dataset, DatasetVersion, Evaluation, Prediction
from evaluations.services import EvaluationInvalid, evaluation_cancel, evaluation_create

ORG, TEAM, PROJECT, OTHER_PROJECT, USER = 1, 10, 100, 101, 5
MODEL_A = "meta-llama/Llama-3.1-8B-Instruct"
MODEL_B = "deepseek-ai/DeepSeek-V3"
# Micro-dollars per million tokens (input, output).
PRICES = {MODEL_A: (1_000_000, 2_000_000), MODEL_B: (300_000, 700_000)}
ROWS = [
    {"input": "What is 2+2?", "expected": "4"},  # 12 characters
    {"input": "Name a color.", "topic": "art"},  # 13 characters, no expected answer
]


def count_prompt_tokens(body: dict) -> int:
    """A stand-in for the gateway's estimator that is easy to follow by hand: 10 tokens, plus a
    token per character of the last message."""
    return 10 + len(body["messages"][-1]["content"])


EXACT = {"name": "exact", "scorer": "exact_match", "args": {}, "mapping": {}}
JUDGE = {
    "name": "judge",
    "scorer": "llm_judge",
    "args": {"model": MODEL_B, "rubric": "Is {input} answered correctly?"},
    "mapping": {},
}


# --- Estimate -------------------------------------------------------------------------------------


def estimate(**overrides):
    kwargs = {
        "rows": ROWS,
        "model_specs": [
            {"model": MODEL_A, "params": {"max_tokens": 100}},
            {"model": MODEL_B, "params": {"temperature": 0}},  # max_tokens: the default, 256
        ],
        "scorers": [EXACT],
        "trials": 1,
        "system_prompt": "",
        "prices": PRICES,
        "count_prompt_tokens": count_prompt_tokens,
    }
    return evaluation_estimate(**{**kwargs, **overrides})


def test_estimate_of_two_rows_two_models_one_trial_by_hand():
    result = estimate()
    # Prompts: row 1 is 10 + 12 = 22 tokens, row 2 is 10 + 13 = 23.
    # Likely answers: row 1 expects "4": 1 character -> at least 16 tokens; row 2 has no
    # expected answer: half of max_tokens (A: 50, B: 128). Worst: max_tokens (A: 100, B: 256).
    # Model A at $1 / $2 per million tokens (1 and 2 micro-dollars a token):
    #   likely: (22 + 2*16) + (23 + 2*50) = 54 + 123 = 177
    #   worst:  (22 + 2*100) + (23 + 2*100) = 222 + 223 = 445
    # Model B at 0.3 / 0.7 micro-dollars a token, each call rounded up:
    #   likely: 22*.3 + 16*.7 = 17.8 -> 18;  23*.3 + 128*.7 = 96.5 -> 97;  = 115
    #   worst:  22*.3 + 256*.7 = 185.8 -> 186;  23*.3 + 256*.7 = 186.1 -> 187;  = 373
    assert result.calls == 4
    assert result.judge_calls == 0
    assert result.estimate_micros == 177 + 115
    assert result.worst_case_micros == 445 + 373
    assert result.per_model == [
        {
            "model": MODEL_A,
            "calls": 2,
            "judge_calls": 0,
            "prompt_tokens": 45,
            "estimate_micros": 177,
            "worst_case_micros": 445,
        },
        {
            "model": MODEL_B,
            "calls": 2,
            "judge_calls": 0,
            "prompt_tokens": 45,
            "estimate_micros": 115,
            "worst_case_micros": 373,
        },
    ]


def test_estimate_scales_with_trials_and_counts_the_system_prompt():
    three = estimate(trials=3)
    assert three.calls == 12
    assert (three.estimate_micros, three.worst_case_micros) == (3 * 292, 3 * 818)

    # With a system prompt the last message is still the row's: this counter sees the same,
    # but the body the estimator gets starts with the system message.
    seen = []

    def counting(body):
        seen.append(body)
        return count_prompt_tokens(body)

    estimate(system_prompt="Answer briefly.", count_prompt_tokens=counting)
    assert seen[0]["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is 2+2?"},
    ]
    assert seen[0]["model"] == MODEL_A and seen[0]["max_tokens"] == 100


def test_estimate_counts_a_judge_call_per_prediction():
    plain = estimate()
    judged = estimate(scorers=[EXACT, JUDGE])
    assert judged.calls == 8
    assert judged.judge_calls == 4
    assert [m["judge_calls"] for m in judged.per_model] == [2, 2]
    assert judged.estimate_micros > plain.estimate_micros
    assert judged.worst_case_micros > plain.worst_case_micros
    # Each judge call's worst case: its prompt plus the answer's max_tokens, and a 256-token
    # reply, at the judge's (B's) prices; at least the reply alone: 256 * 0.7 = 179.2 -> 180.
    assert judged.worst_case_micros - plain.worst_case_micros >= 4 * 180


# --- Create ---------------------------------------------------------------------------------------


def make_version(project_id=PROJECT, rows=ROWS, name="qa") -> DatasetVersion:
    version, _ = dataset_version_create(
        organization_id=ORG, project_id=project_id, name=name, rows=rows
    )
    return version


def create(version, **overrides):
    kwargs = {
        "organization_id": ORG,
        "team_id": TEAM,
        "team": "research",
        "project_id": PROJECT,
        "project": "main",
        "user_id": USER,
        "name": "capitals",
        "dataset_version_id": version.pk,
        "scorers": [EXACT],
        "model_specs": [
            {"model": MODEL_A, "params": {"max_tokens": 100}},
            {"model": MODEL_B, "params": {"temperature": 0}},
        ],
        "trials": 1,
        "system_prompt": "",
        "budget_micros": None,
        "prices": PRICES,
        "count_prompt_tokens": count_prompt_tokens,
    }
    return evaluation_create(**{**kwargs, **overrides})


@pytest.mark.django_db
def test_create_writes_the_evaluation_and_rows_x_models_x_trials_predictions():
    version = make_version()
    evaluation = create(version, trials=3, budget_micros=5_000, system_prompt="Be brief.")
    evaluation.refresh_from_db()
    assert evaluation.status == Evaluation.Status.QUEUED
    assert (evaluation.organization_id, evaluation.team_id, evaluation.project_id) == (
        ORG,
        TEAM,
        PROJECT,
    )
    assert (evaluation.team, evaluation.project, evaluation.created_by_id) == (
        "research",
        "main",
        USER,
    )
    assert evaluation.dataset_version_id == version.pk
    assert evaluation.trials == 3
    assert evaluation.budget_micros == 5_000
    assert evaluation.system_prompt == "Be brief."
    assert len(evaluation.trace_id) == 32 and int(evaluation.trace_id, 16) >= 0
    # max_tokens is written down (the default when not given), so the runner and the
    # estimate agree.
    assert evaluation.model_specs == [
        {"model": MODEL_A, "params": {"max_tokens": 100}},
        {"model": MODEL_B, "params": {"temperature": 0, "max_tokens": 256}},
    ]
    assert evaluation.scorers == [EXACT]
    # The same estimate as by hand above, three times: the system prompt is not the last
    # message, so the stand-in counter does not see it.
    assert evaluation.estimate_micros == 3 * 292
    assert evaluation.worst_case_micros == 3 * 818

    predictions = list(
        evaluation.predictions.order_by("row_index", "model_index", "trial").values_list(
            "row_index", "model_index", "trial", "model", "status"
        )
    )
    assert predictions == [
        (row, model_index, trial, model, Prediction.Status.PENDING)
        for row in range(2)
        for model_index, model in enumerate([MODEL_A, MODEL_B])
        for trial in range(3)
    ]


@pytest.mark.django_db
def test_predictions_are_written_as_the_orm_would_write_them():
    evaluation = create(make_version())
    written = evaluation.predictions.order_by("row_index", "model_index").first()
    assert written.evaluation_id == evaluation.pk
    assert (written.row_index, written.model_index, written.trial) == (0, 0, 0)
    assert written.model == MODEL_A
    assert written.status == Prediction.Status.PENDING
    assert written.scores == {}
    assert (written.attempts, written.prompt_tokens, written.cost_micros) == (0, 0, 0)
    assert (written.output, written.error, written.request_id) == ("", "", "")
    assert written.latency_ms is None and written.claimed_until is None
    assert written.updated_at is not None
    # The runner's updates work on them.
    Prediction.objects.filter(pk=written.pk).update(scores={"exact": {"score": 1.0}})
    written.refresh_from_db()
    assert written.scores == {"exact": {"score": 1.0}}
    assert evaluation.predictions.filter(scores__exact__score=1.0).count() == 1


@pytest.mark.django_db
def test_the_same_model_twice_with_other_parameters_is_two_columns():
    version = make_version()
    evaluation = create(
        version,
        model_specs=[
            {"model": MODEL_A, "params": {"temperature": 0}},
            {"model": MODEL_A, "params": {"temperature": 1.5, "top_p": 0.9, "seed": 7}},
        ],
    )
    assert evaluation.predictions.count() == 4
    assert set(evaluation.predictions.values_list("model_index", flat=True)) == {0, 1}


@pytest.mark.django_db
def test_a_scorer_without_a_name_is_named_after_its_type():
    evaluation = create(make_version(), scorers=[{"scorer": "exact_match"}])
    assert evaluation.scorers == [
        {"name": "exact_match", "scorer": "exact_match", "args": {}, "mapping": {}}
    ]


def assert_nothing_written():
    assert not Evaluation.objects.exists()
    assert not Prediction.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"model_specs": [{"model": "acme/unknown"}]}, "model_specs", "not a model you can use"),
        ({"model_specs": []}, "model_specs", "at least one model"),
        ({"model_specs": [{"model": MODEL_A}] * 7}, "model_specs", "at most 6 models"),
        (
            {"model_specs": [{"model": MODEL_A, "params": {"temperature": 2.5}}]},
            "model_specs",
            "temperature must be between 0 and 2",
        ),
        (
            {"model_specs": [{"model": MODEL_A, "params": {"top_p": -0.1}}]},
            "model_specs",
            "top_p must be between 0 and 1",
        ),
        (
            {"model_specs": [{"model": MODEL_A, "params": {"max_tokens": 5000}}]},
            "model_specs",
            "max_tokens must be between 1 and 4096",
        ),
        (
            {"model_specs": [{"model": MODEL_A, "params": {"max_tokens": 10.5}}]},
            "model_specs",
            "max_tokens must be an integer",
        ),
        (
            {"model_specs": [{"model": MODEL_A, "params": {"seed": "7"}}]},
            "model_specs",
            "seed must be an integer",
        ),
        (
            {"model_specs": [{"model": MODEL_A, "params": {"temperature": True}}]},
            "model_specs",
            "temperature must be a number",
        ),
        (
            {"model_specs": [{"model": MODEL_A, "params": {"stop": ["x"]}}]},
            "model_specs",
            "unknown parameter 'stop'",
        ),
        ({"scorers": [{"scorer": "exact_matsch"}]}, "scorers", "unknown scorer"),
        ({"scorers": [{"scorer": "exact_match", "name": {"x": 1}}]}, "scorers", "a name is 1"),
        ({"scorers": [{"scorer": "exact_match", "weight": 2}]}, "scorers", "unknown key(s) weight"),
        ({"scorers": ["exact_match"]}, "scorers", 'expected {"scorer"'),
        ({"model_specs": ["gpt"]}, "model_specs", 'expected {"model"'),
        ({"model_specs": [{"model": MODEL_A, "params": [1]}]}, "model_specs", "params must be"),
        ({"trials": "2"}, "trials", "from 1 to 10"),
        ({"budget_micros": 1.5}, "budget_micros", "positive"),
        ({"system_prompt": None}, "system_prompt", "must be text"),
        ({"dataset_version_id": "abc"}, "dataset_version_id", "no such dataset version"),
        ({"scorers": []}, "scorers", "at least one scorer"),
        (
            {"scorers": [{"scorer": "regex", "args": {"pattern": "(unclosed"}}]},
            "scorers",
            "does not compile",
        ),
        (
            {"scorers": [{"scorer": "json_schema", "args": {"schema": {"type": "nope"}}}]},
            "scorers",
            "json_schema",
        ),
        (
            {"scorers": [EXACT, {**EXACT, "scorer": "contains"}]},
            "scorers",
            "two scorers are named 'exact'",
        ),
        (
            {"scorers": [{**JUDGE, "args": {**JUDGE["args"], "model": "acme/judge"}}]},
            "scorers",
            "judge model 'acme/judge' is not available",
        ),
        (
            {"scorers": [{"scorer": "exact_match", "mapping": {"expected": "answer"}}]},
            "scorers",
            "reads the column 'answer', which the dataset does not have",
        ),
        ({"trials": 0}, "trials", "from 1 to 10"),
        ({"trials": 11}, "trials", "from 1 to 10"),
        ({"budget_micros": -1}, "budget_micros", "positive"),
        ({"name": ""}, "name", "1 to 100"),
        ({"name": "x" * 101}, "name", "1 to 100"),
        ({"dataset_version_id": 999_999}, "dataset_version_id", "no such dataset version"),
    ],
)
def test_bad_input_is_refused_by_field_and_nothing_is_written(overrides, field, message):
    version = make_version()
    with pytest.raises(EvaluationInvalid) as caught:
        create(version, **overrides)
    errors = caught.value.errors
    assert list(errors) == [field], errors
    assert any(message in m for m in errors[field]), errors
    assert_nothing_written()


@pytest.mark.django_db
def test_every_problem_is_reported_at_once():
    version = make_version()
    with pytest.raises(EvaluationInvalid) as caught:
        create(
            version,
            name=" ",
            model_specs=[{"model": "acme/x", "params": {"temperature": 9}}],
            scorers=[{"scorer": "nope"}],
            trials=99,
            budget_micros=-5,
        )
    assert set(caught.value.errors) == {
        "name",
        "model_specs",
        "scorers",
        "trials",
        "budget_micros",
    }
    assert len(caught.value.errors["model_specs"]) == 2  # unknown model and its temperature
    assert_nothing_written()


@pytest.mark.django_db
def test_a_dataset_version_of_another_project_is_refused():
    foreign = make_version(project_id=OTHER_PROJECT)
    with pytest.raises(EvaluationInvalid) as caught:
        create(foreign)
    assert list(caught.value.errors) == ["dataset_version_id"]
    assert_nothing_written()


@pytest.mark.django_db
def test_too_many_predictions_is_refused(monkeypatch):
    from evaluations import services

    monkeypatch.setattr(services, "MAX_PREDICTIONS", 7)
    with pytest.raises(EvaluationInvalid) as caught:
        create(make_version(), trials=2)  # 2 rows x 2 models x 2 trials = 8
    assert "8 predictions; the limit is 7" in caught.value.errors["__all__"][0]
    assert_nothing_written()


@pytest.mark.django_db
def test_a_failure_while_writing_predictions_leaves_no_evaluation(monkeypatch):
    version = make_version()

    from evaluations import services

    real_insert = services._predictions_insert

    def fail_halfway(evaluation, keys):
        real_insert(evaluation, keys[: len(keys) // 2])
        assert Prediction.objects.count() == len(keys) // 2
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "_predictions_insert", fail_halfway)
    with pytest.raises(RuntimeError):
        create(version)
    assert_nothing_written()
    assert Dataset.objects.count() == 1  # the dataset is untouched


# --- Cancel ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_cancel_skips_pending_predictions_and_leaves_running_and_done_ones():
    evaluation = create(make_version(), trials=2)
    evaluation.status = Evaluation.Status.RUNNING
    evaluation.save()
    first, second, *_ = evaluation.predictions.order_by("row_index", "model_index", "trial")
    first.status = Prediction.Status.DONE
    first.save()
    second.status = Prediction.Status.RUNNING
    second.save()

    cancelled = evaluation_cancel(evaluation_id=evaluation.pk, project_ids=[PROJECT])
    assert cancelled.status == Evaluation.Status.CANCELLED
    assert cancelled.finished_at is not None
    evaluation.refresh_from_db()
    assert evaluation.status == Evaluation.Status.CANCELLED
    statuses = dict(evaluation.predictions.values_list("status").annotate(n=Count("id")))
    assert statuses == {
        Prediction.Status.DONE: 1,
        Prediction.Status.RUNNING: 1,
        Prediction.Status.SKIPPED: 6,
    }


@pytest.mark.django_db
def test_cancel_leaves_an_ended_evaluation_alone_and_hides_other_projects():
    evaluation = create(make_version())
    with pytest.raises(Evaluation.DoesNotExist):
        evaluation_cancel(evaluation_id=evaluation.pk, project_ids=[OTHER_PROJECT])
    assert Evaluation.objects.get().status == Evaluation.Status.QUEUED

    Evaluation.objects.update(status=Evaluation.Status.COMPLETED)
    ended = evaluation_cancel(evaluation_id=evaluation.pk, project_ids=[PROJECT])
    assert ended.status == Evaluation.Status.COMPLETED
    assert ended.finished_at is None
    assert not evaluation.predictions.filter(status=Prediction.Status.SKIPPED).exists()


@pytest.mark.django_db
def test_the_worst_case_is_what_the_runner_holds_against_the_budget():
    """The estimate's worst case, with the gateway's estimator and the catalog's prices, is the
    sum of the runner's worst case per prediction (what it commits before each call)."""
    runner = pytest.importorskip("evaluations.runner")
    from inference_app.gateway.tokens import estimate_prompt_tokens
    from inference_app.models import CatalogModel

    llama, deepseek = "meta-llama/Llama-3.1-8B-Instruct", "deepseek-ai/DeepSeek-V3-0324"
    prices = {
        m.model_id: (m.input_price_micros, m.output_price_micros)
        for m in CatalogModel.objects.filter(model_id__in=[llama, deepseek])
    }
    assert len(prices) == 2
    rows = [
        {"input": "What is the capital of France?", "expected": "Paris", "topic": "geo"},
        {
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Café ou thé ? Réponds en un mot."},
            ],
            "expected": "Café",
        },
        {"input": "Write a haiku about rain."},
    ]
    evaluation = create(
        make_version(rows=rows, name="cross-check"),
        model_specs=[
            {"model": llama, "params": {"max_tokens": 64}},
            {"model": deepseek, "params": {"temperature": 0.5}},
        ],
        scorers=[
            EXACT,
            {
                "name": "judge",
                "scorer": "llm_judge",
                "args": {"model": deepseek, "rubric": "Does it answer {input}?"},
            },
        ],
        system_prompt="Answer in one word.",
        trials=2,
        prices=prices,
        count_prompt_tokens=lambda body: estimate_prompt_tokens(body, image_tokens=0),
    )
    held = sum(
        runner.worst_case_micros(evaluation, prediction, rows[prediction.row_index])
        for prediction in evaluation.predictions.all()
    )
    assert held == evaluation.worst_case_micros
    assert 0 < evaluation.estimate_micros < evaluation.worst_case_micros
