"""Datasets: parsing uploads (and refusing bad ones with the line), content-hashed versions,
the preview, and a dataset built from traced calls."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta

import pytest
from django.utils import timezone

from evaluations import datasets
from evaluations.datasets import (
    DatasetError,
    dataset_content_hash,
    dataset_from_calls,
    dataset_preview,
    dataset_rows_parse,
    dataset_version_create,
)
from evaluations.models import Dataset, DatasetRow, DatasetVersion
from traces.models import Call
from traces.reports import CallReport
from traces.services import calls_record

ORG, PROJECT, OTHER_PROJECT = 7, 70, 71


def jsonl(*rows) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


def refused(content: bytes, filename: str = "data.jsonl") -> DatasetError:
    with pytest.raises(DatasetError) as caught:
        dataset_rows_parse(content, filename)
    return caught.value


# --- Parsing --------------------------------------------------------------------------------------


def test_jsonl_rows_keep_their_columns_and_variables():
    parsed = dataset_rows_parse(
        jsonl(
            {"input": "Capital of France?", "expected": "Paris", "topic": "geo"},
            "",  # a blank line is skipped
            {"messages": [{"role": "user", "content": "2+2?"}], "expected": 4, "level": 1},
        ),
        "qa.jsonl",
    )
    assert parsed.rows == [
        {"input": "Capital of France?", "expected": "Paris", "topic": "geo"},
        {"messages": [{"role": "user", "content": "2+2?"}], "expected": 4, "level": 1},
    ]
    assert parsed.columns == ["input", "messages", "expected", "topic", "level"]


def test_a_json_file_may_hold_a_list_of_objects_or_lines():
    rows = [{"input": "a"}, {"input": "b", "expected": "B"}]
    assert dataset_rows_parse(json.dumps(rows, indent=2).encode(), "d.json").rows == rows
    assert dataset_rows_parse(jsonl(*rows), "d.json").rows == rows


def test_csv_with_a_bom_quotes_and_crlf():
    content = '\ufeffinput,expected,topic\r\n"Hello, world",hi,greet\r\n"two\nlines",x,y\r\n'
    parsed = dataset_rows_parse(content.encode("utf-8"), "data.csv")
    assert parsed.columns == ["input", "expected", "topic"]
    assert parsed.rows == [
        {"input": "Hello, world", "expected": "hi", "topic": "greet"},
        {"input": "two\nlines", "expected": "x", "topic": "y"},
    ]


def test_csv_values_are_strings_and_messages_a_json_cell():
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}]
    cell = json.dumps(messages).replace('"', '""')
    content = f'messages,expected,n\n"{cell}",4,12\n'
    parsed = dataset_rows_parse(content.encode(), "chat.csv")
    assert parsed.rows == [{"messages": messages, "expected": "4", "n": "12"}]


def test_csv_rows_may_mix_input_and_messages_and_omit_expected():
    messages = json.dumps([{"role": "user", "content": "hi"}]).replace('"', '""')
    content = f'input,messages,expected\nquestion,,\n,"{messages}",hello\n'
    parsed = dataset_rows_parse(content.encode(), "mixed.csv")
    assert parsed.rows == [
        {"input": "question"},
        {"messages": [{"role": "user", "content": "hi"}], "expected": "hello"},
    ]


@pytest.mark.parametrize(
    ("content", "filename", "line", "reason"),
    [
        (jsonl({"input": "a"}, "[1, 2]"), "d.jsonl", 2, "expected a JSON object"),
        (jsonl({"input": "a"}, "", '{"input": "b",}'), "d.jsonl", 3, "bad JSON"),
        (jsonl({"input": "a"}, {"expected": "x"}), "d.jsonl", 2, "'input' or a 'messages'"),
        (jsonl({"input": 3}), "d.jsonl", 1, "input must be a string"),
        (jsonl({"input": "  "}), "d.jsonl", 1, "input is empty"),
        (jsonl({"input": "a", "messages": []}), "d.jsonl", 1, "not both"),
        (jsonl({"messages": "hi"}), "d.jsonl", 1, "non-empty list"),
        (
            jsonl({"input": "a"}, {"messages": [{"role": "robot", "content": "x"}]}),
            "d.jsonl",
            2,
            "message 1: role must be one of",
        ),
        (
            jsonl({"messages": [{"role": "user", "content": 5}]}),
            "d.jsonl",
            1,
            "content must be a string",
        ),
        (b'{"input": "a"}\n{"input": "caf\xe9"}\n', "d.jsonl", 2, "not UTF-8"),
        (b"input,expected\nfine,ok\nbad \xff,x\n", "d.csv", 3, "not UTF-8"),
        (b"input,expected\na,b\nc\n", "d.csv", 3, "1 value, but the header names 2"),
        (b"expected,topic\nb,c\n", "d.csv", 2, "'input' or a 'messages'"),
        (b"input,input\na,b\n", "d.csv", 1, "names input twice"),
        (b'messages\n"[{""role"": ""user""}"\n', "d.csv", 2, "messages: bad JSON"),
        (b'[{"input": "a"},\n {"input": "b"},\n 7]', "d.json", 3, "expected a JSON object"),
        (b'[{"input": "a"},\n {"input": }]', "d.json", 2, "bad JSON"),
        (jsonl({"input": "a"}, '{"input": "b", "score": NaN}'), "d.jsonl", 2, "NaN is not"),
        (b'input,expected\n"x",y\n"nul \\u0000",z\n', "d.csv", None, None),
        (jsonl({"input": "a\u0000b"}), "d.jsonl", 1, "NUL character"),
        (
            jsonl({"input": "a", "deep": [[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}),
            "d.jsonl",
            None,
            None,
        ),
        (
            b'{"input": "a", "deep": ' + b"[" * 70 + b"]" * 70 + b"}",
            "d.jsonl",
            1,
            "nested more than 64",
        ),
        (
            b'{"input": "a", "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "d.jsonl",
            1,
            "nested too deeply",
        ),
    ],
)
def test_a_bad_file_is_refused_with_its_line_and_reason(content, filename, line, reason):
    if reason is None:  # close to a refusal, but fine
        assert dataset_rows_parse(content, filename).rows
        return
    error = refused(content, filename)
    assert error.line == line
    assert reason in error.reason
    assert str(error).startswith(f"line {line}: ")


@pytest.mark.parametrize(
    ("content", "filename", "reason"),
    [
        (b"", "d.jsonl", "the file is empty"),
        (b"\xef\xbb\xbf \n\n", "d.csv", "the file is empty"),
        (b"input,expected\n", "d.csv", "the file has no rows"),
        (b"[]", "d.json", "the file has no rows"),
    ],
)
def test_an_empty_file_is_refused(content, filename, reason):
    error = refused(content, filename)
    assert error.line is None
    assert str(error) == reason


def test_more_rows_than_the_limit_is_refused_at_the_first_row_over(monkeypatch):
    monkeypatch.setattr(datasets, "MAX_ROWS", 3)
    assert len(dataset_rows_parse(jsonl(*[{"input": "q"}] * 3), "d.jsonl").rows) == 3
    error = refused(jsonl(*[{"input": "q"}] * 4))
    assert (error.line, error.reason) == (4, "more than 3 rows")
    error = refused(b"input\n" + b"q\n" * 4, "d.csv")
    assert (error.line, error.reason) == (5, "more than 3 rows")


def test_the_real_row_limit_is_ten_thousand():
    assert datasets.MAX_ROWS == 10_000
    ok = jsonl(*[{"input": f"q{i}"} for i in range(10_000)])
    assert len(dataset_rows_parse(ok, "d.jsonl").rows) == 10_000
    error = refused(ok + b"\n" + jsonl({"input": "one more"}))
    assert (error.line, error.reason) == (10_001, "more than 10,000 rows")


def test_a_file_over_20_mb_and_a_row_over_1_mb_are_refused():
    error = refused(b" " * (20 * 1024 * 1024 + 1))
    assert error.line is None
    assert "the limit is 20 MB" in error.reason

    big = "x" * (1024 * 1024)
    error = refused(jsonl({"input": "a"}, {"input": big}))
    assert (error.line, error.reason) == (2, "the row is over 1 MB")
    error = refused(f"input,note\nfine,a\n{big},b\n".encode(), "d.csv")
    assert (error.line, error.reason) == (3, "the row is over 1 MB")
    error = refused(json.dumps([{"input": "a"}, {"input": big}], indent=1).encode(), "d.json")
    assert error.reason == "the row is over 1 MB"

    # Just under the limit is fine (a CSV cell over the csv module's own 128 KiB default too).
    almost = "x" * (1024 * 1024 - 100)
    assert dataset_rows_parse(f"input\n{almost}\n".encode(), "d.csv").rows == [{"input": almost}]


# --- Versions -------------------------------------------------------------------------------------


def create(rows, name="qa", project_id=PROJECT, **kwargs):
    return dataset_version_create(
        organization_id=ORG,
        project_id=project_id,
        name=name,
        rows=rows,
        columns=None,
        source=DatasetVersion.Source.UPLOAD,
        **kwargs,
    )


ROWS = [
    {"input": "Capital of France?", "expected": "Paris"},
    {"input": "2+2?", "expected": "4", "topic": "math"},
    {"input": "Café?", "expected": "Oui"},
]


def test_content_hash_is_canonical_json():
    import hashlib

    text = json.dumps(ROWS, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert dataset_content_hash(ROWS) == hashlib.sha256(text.encode()).hexdigest()
    reordered = [{"expected": r["expected"], **r} for r in ROWS]
    assert dataset_content_hash(reordered) == dataset_content_hash(ROWS)
    assert dataset_content_hash(ROWS[:2]) != dataset_content_hash(ROWS)


@pytest.mark.django_db
def test_same_content_is_the_same_version_and_new_content_the_next():
    first, created = create(ROWS, filename="qa.jsonl", user_id=5)
    assert created
    assert (first.number, first.row_count, first.filename, first.created_by_id) == (
        1,
        3,
        "qa.jsonl",
        5,
    )
    assert first.columns == ["input", "expected", "topic"]
    assert first.content_hash == dataset_content_hash(ROWS)
    assert list(first.rows.values_list("index", "data")) == list(enumerate(ROWS))

    again, created = create([dict(r) for r in ROWS], filename="renamed.jsonl")
    assert (again.pk, created) == (first.pk, False)

    second, created = create([*ROWS, {"input": "One more?"}])
    assert created
    assert second.number == 2
    assert second.dataset_id == first.dataset_id
    assert [r.data["input"] for r in second.rows.all()] == [
        "Capital of France?",
        "2+2?",
        "Café?",
        "One more?",
    ]
    assert Dataset.objects.count() == 1
    assert DatasetRow.objects.count() == 7

    # The same name in another project is another dataset.
    other, created = create(ROWS, project_id=OTHER_PROJECT)
    assert created and other.number == 1 and other.dataset_id != first.dataset_id


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["", " qa", "a" * 101, "qa/1", "q;a", None])
def test_a_bad_name_is_refused_before_anything_is_written(name):
    with pytest.raises(DatasetError, match="name"):
        create(ROWS, name=name)
    assert not Dataset.objects.exists()


@pytest.mark.django_db
def test_good_names():
    for name in ["qa", "QA v1.2", "my_set-2", "données", "a" * 100]:
        create(ROWS, name=name)
    assert Dataset.objects.count() == 5


@pytest.mark.django_db
def test_rows_given_without_a_file_are_checked_with_their_row_number():
    with pytest.raises(DatasetError) as caught:
        create([{"input": "fine"}, {"expected": "no input"}])
    assert caught.value.line == 2
    with pytest.raises(DatasetError, match="at least one row"):
        create([])
    assert not DatasetVersion.objects.exists()


@pytest.mark.django_db
def test_a_failed_row_insert_leaves_no_version(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(DatasetRow.objects, "bulk_create", fail)
    with pytest.raises(RuntimeError):
        create(ROWS)
    assert not DatasetVersion.objects.exists()
    assert not Dataset.objects.exists()


@pytest.mark.django_db
def test_preview_shows_the_first_rows_and_the_columns():
    rows = [{"input": f"q{i}", "expected": str(i)} for i in range(30)]
    version, _ = create(rows)
    preview = dataset_preview(version)
    assert preview["columns"] == ["input", "expected"]
    assert preview["row_count"] == 30
    assert preview["rows"] == rows[:20]
    assert dataset_preview(version, limit=3)["rows"] == rows[:3]


# --- From traced calls ----------------------------------------------------------------------------


def record_call(project_id=PROJECT, *, messages, answer="", bodies=True, ago=0):
    started_at = timezone.now() - timedelta(minutes=ago)
    report = CallReport(
        started_at=started_at,
        project_id=project_id,
        span_id=secrets.token_hex(8),
        trace_id=secrets.token_hex(16),
        organization_id=ORG,
        team="team",
        project="main",
        request_id=f"chatcmpl-{secrets.token_hex(8)}",
        source="playground",
        model="meta-llama/Llama-3.1-8B-Instruct",
        ended_at=started_at + timedelta(milliseconds=300),
        inputs={"model": "m", "messages": messages, "temperature": 0.2} if bodies else None,
        output={"content": answer, "finish_reason": "stop"} if bodies else None,
    )
    calls_record(reports=[report])
    return Call.objects.get(project_id=project_id, span_id=report.span_id)


@pytest.mark.django_db
def test_a_dataset_from_calls_has_their_messages_and_answers_in_order():
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    first = record_call(messages=chat, answer="Paris.", ago=5)
    second = record_call(messages=[{"role": "user", "content": "2+2?"}], answer="4", ago=1)
    no_answer = record_call(messages=[{"role": "user", "content": "hm"}], answer="")

    version = dataset_from_calls(
        organization_id=ORG,
        project_id=PROJECT,
        name="from traces",
        calls=[second, first, no_answer],
        user_id=3,
    )
    assert version.dataset.name == "from traces"
    assert version.source == DatasetVersion.Source.TRACES
    assert version.created_by_id == 3
    assert version.columns == ["messages", "expected"]
    assert [r.data for r in version.rows.all()] == [
        {"messages": [{"role": "user", "content": "2+2?"}], "expected": "4"},
        {"messages": chat, "expected": "Paris."},
        {"messages": [{"role": "user", "content": "hm"}]},
    ]

    # The same calls again: the same version.
    again = dataset_from_calls(
        organization_id=ORG,
        project_id=PROJECT,
        name="from traces",
        calls=[second, first, no_answer],
        user_id=3,
    )
    assert again.pk == version.pk


@pytest.mark.django_db
def test_calls_without_a_body_or_of_another_project_are_refused():
    kept = record_call(messages=[{"role": "user", "content": "hi"}], answer="hello")
    bodiless = record_call(messages=[{"role": "user", "content": "x"}], bodies=False)
    foreign = record_call(OTHER_PROJECT, messages=[{"role": "user", "content": "y"}], answer="z")

    with pytest.raises(DatasetError) as caught:
        dataset_from_calls(
            organization_id=ORG, project_id=PROJECT, name="d", calls=[kept, bodiless]
        )
    assert bodiless.span_id in str(caught.value)
    assert kept.span_id not in str(caught.value)

    with pytest.raises(DatasetError) as caught:
        dataset_from_calls(organization_id=ORG, project_id=PROJECT, name="d", calls=[kept, foreign])
    assert foreign.span_id in str(caught.value)

    with pytest.raises(DatasetError):
        dataset_from_calls(organization_id=ORG, project_id=PROJECT, name="d", calls=[])
    assert not Dataset.objects.exists()


def test_row_messages_puts_the_system_prompt_first_unless_the_row_has_one():
    from evaluations.datasets import row_messages

    assert row_messages({"input": "hi"}, "Be brief.") == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    own = [{"role": "system", "content": "Mine."}, {"role": "user", "content": "hi"}]
    row = {"messages": own}
    assert row_messages(row, "Be brief.") == own
    assert row_messages({"input": "hi"}) == [{"role": "user", "content": "hi"}]
    row_messages(row, "")[0]["content"] = "changed"
    assert own[0]["content"] == "Mine."  # the row is not changed through the copy
