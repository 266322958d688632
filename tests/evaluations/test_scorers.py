"""The built-in scorers: each one's pass and fail, exact_match's normalisation, where values come
from (row, mapping, constant), validation messages, and the judge's prompt and reply parsing."""

import pytest

from evaluations.scorers import (
    SCORERS,
    Score,
    judge_messages,
    judge_parse,
    normalise,
    score,
    scorer_validate,
)


def run(name, output, row=None, args=None, mapping=None):
    return score(name, args or {}, mapping or {}, output=output, row=row or {})


# --- Score and registry ---------------------------------------------------------------------------


def test_score_is_frozen_and_bounded():
    result = Score(0.5, False, "half")
    assert result.as_dict() == {"score": 0.5, "passed": False, "reason": "half"}
    with pytest.raises(AttributeError):
        result.score = 1.0
    for bad in (-0.1, 1.1, float("nan")):
        with pytest.raises(ValueError):
            Score(bad, False, "")


def test_registry_lists_every_builtin_scorer_with_its_inputs():
    assert set(SCORERS) == {
        "exact_match",
        "contains",
        "contains_any",
        "contains_all",
        "regex",
        "valid_json",
        "json_schema",
        "numeric",
        "similarity",
        "llm_judge",
    }
    exact = SCORERS["exact_match"].as_dict()
    assert [p["name"] for p in exact["inputs"]] == ["expected"]
    assert exact["inputs"][0]["required"] is True
    assert exact["needs_model"] is False
    judge = SCORERS["llm_judge"].as_dict()
    assert judge["needs_model"] is True
    assert {p["name"]: p["required"] for p in judge["args"]} == {
        "model": True,
        "rubric": True,
        "threshold": False,
    }


# --- exact_match ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Paris", "paris"),
        ("  Paris  ", "Paris"),
        ("Paris.", "Paris"),
        ("Paris!?", "Paris"),
        ("New   York\n City", "new york city"),
        ("ＰＡＲＩＳ", "Paris"),  # full-width letters (NFKC)
        ("4", 4),
        ("4", 4.0),
        ("true", True),
    ],
)
def test_exact_match_normalises(output, expected):
    result = run("exact_match", output, {"expected": expected})
    assert result == Score(1.0, True, "matches the expected answer")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Paris, France", "Paris"),
        ("Lyon", "Paris"),
        ("3.14", "3.1"),
        (".Paris", "Paris"),  # only trailing punctuation goes
        ("", "Paris"),
    ],
)
def test_exact_match_fails_on_a_different_answer(output, expected):
    result = run("exact_match", output, {"expected": expected})
    assert (result.score, result.passed) == (0.0, False)
    assert "expected 'paris'" in result.reason or "expected '3.1'" in result.reason


def test_normalise():
    assert normalise("  The\tQuick  Fox. ") == "the quick fox"
    assert normalise("Straße...") == "strasse"
    assert normalise("f(x)") == "f(x)"


# --- contains family ------------------------------------------------------------------------------


def test_contains():
    assert run("contains", "The capital is Paris.", {"expected": "Paris"}).passed
    missed = run("contains", "The capital is paris.", {"expected": "Paris"})
    assert (missed.score, missed.passed) == (0.0, False)
    assert "does not contain 'Paris'" in missed.reason
    assert run(
        "contains", "the capital is paris", {"expected": "PARIS"}, {"ignore_case": True}
    ).passed
    empty = run("contains", "anything", {"expected": ""})
    assert not empty.passed and "empty" in empty.reason


def test_contains_any():
    row = {"expected": ["Paris", "Lyon"]}
    assert run("contains_any", "I'd say Lyon", row).score == 1.0
    assert not run("contains_any", "Marseille", row).passed
    assert run("contains_any", "LYON", row, {"ignore_case": True}).passed
    assert not run("contains_any", "LYON", row).passed
    # A CSV cell holds the list as a JSON array.
    assert run("contains_any", "Lyon", {"expected": '["Paris", "Lyon"]'}).passed


def test_contains_all_gives_partial_credit():
    row = {"expected": ["red", "green", "blue", "white"]}
    assert run("contains_all", "red, green, blue and white", row) == Score(
        1.0, True, "contains all 4"
    )
    partial = run("contains_all", "red and blue", row)
    assert partial.score == 0.5 and not partial.passed
    assert "missing 2 of 4: green, white" in partial.reason
    assert run("contains_all", "RED GREEN BLUE WHITE", row, {"ignore_case": True}).passed


def test_an_input_given_as_an_argument_is_the_same_for_every_row():
    args = {"expected": ["refund", "sorry"]}
    assert run(
        "contains_all", "Sorry, here is your refund", {}, {**args, "ignore_case": True}
    ).passed
    assert not run("contains_all", "Here is your refund", {"expected": "ignored"}, args).passed


# --- regex ----------------------------------------------------------------------------------------


def test_regex():
    passed = run("regex", "Order #12345 shipped", args={"pattern": r"#\d{5}\b"})
    assert passed.passed and "'#12345'" in passed.reason
    assert not run("regex", "order 1234", args={"pattern": r"#\d{5}"}).passed
    assert not run("regex", "HELLO", args={"pattern": "^hello$"}).passed
    assert run("regex", "HELLO", args={"pattern": "^hello$", "flags": "i"}).passed
    assert run("regex", "a\nhello\nb", args={"pattern": "^hello$", "flags": "im"}).passed


# --- JSON -----------------------------------------------------------------------------------------


def test_valid_json():
    assert run("valid_json", ' {"a": [1, 2]} ').passed
    assert run("valid_json", '```json\n{"a": 1}\n```').passed
    fenced = run("valid_json", '```json\n{"a": 1}\n```', args={"strip_fences": False})
    assert not fenced.passed
    broken = run("valid_json", '{"a": 1,}')
    assert (broken.score, broken.passed) == (0.0, False)
    assert broken.reason.startswith("not valid JSON:") and "line 1" in broken.reason


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}


def test_json_schema():
    assert run("json_schema", '{"name": "Ada", "age": 36}', args={"schema": SCHEMA}).passed
    wrong = run("json_schema", '{"name": "Ada", "age": -1}', args={"schema": SCHEMA})
    assert not wrong.passed
    assert "does not match the schema" in wrong.reason and "/age" in wrong.reason
    missing = run("json_schema", '{"name": "Ada"}', args={"schema": SCHEMA})
    assert not missing.passed and "age" in missing.reason
    not_json = run("json_schema", "Ada, 36", args={"schema": SCHEMA})
    assert not not_json.passed and not_json.reason.startswith("not valid JSON")


# --- numeric --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "expected", "args", "passed"),
    [
        ("The answer is 42.", 42, {}, True),
        ("The answer is 42.", "42", {}, True),
        ("about 41.6 apples", 42, {"abs_tol": 0.5}, True),
        ("about 41.4 apples", 42, {"abs_tol": 0.5}, False),
        ("1,050 people", 1000, {"rel_tol": 0.05}, True),
        ("1,051 people", 1000, {"rel_tol": 0.05}, False),
        ("-3.5 degrees", -3.5, {}, True),
        ("2.5e3 metres", 2500, {}, True),
        ("Step 1: ... so 7", 7, {}, False),  # the first number is read, not the last
    ],
)
def test_numeric(output, expected, args, passed):
    result = run("numeric", output, {"expected": expected}, args)
    assert result.passed is passed
    assert result.score == (1.0 if passed else 0.0)


def test_numeric_without_numbers():
    assert run("numeric", "no idea", {"expected": 3}).reason == "no number in the output"
    bad = run("numeric", "3", {"expected": "three"})
    assert not bad.passed and "is not a number" in bad.reason


# --- similarity -----------------------------------------------------------------------------------


def test_similarity():
    same = run("similarity", "The cat sat on the mat", {"expected": "The cat sat on the mat"})
    assert same.score == 1.0 and same.passed
    close = run("similarity", "The cat sat on a mat", {"expected": "The cat sat on the mat"})
    assert 0.8 <= close.score < 1.0 and close.passed
    far = run("similarity", "Dogs bark", {"expected": "The cat sat on the mat"})
    assert far.score < 0.5 and not far.passed
    strict = run(
        "similarity",
        "The cat sat on a mat",
        {"expected": "The cat sat on the mat"},
        {"threshold": 0.99},
    )
    assert strict.score == close.score and not strict.passed


# --- Where values come from -----------------------------------------------------------------------


def test_mapping_reads_another_column():
    row = {"answer": "Paris", "expected": "Lyon"}
    assert run("exact_match", "Paris", row, mapping={"expected": "answer"}).passed
    assert not run("exact_match", "Paris", row).passed


def test_a_missing_column_scores_zero_with_a_reason():
    missing = run("exact_match", "Paris", {"input": "Capital of France?"})
    assert missing == Score(0.0, False, "the row has no column 'expected'")
    mapped = run("contains", "Paris", {"expected": "Paris"}, mapping={"expected": "gold"})
    assert mapped == Score(0.0, False, "the row has no column 'gold'")
    empty = run("numeric", "3", {"expected": None})
    assert empty == Score(0.0, False, "the row has an empty column 'expected'")


def test_score_refuses_bad_arguments_and_the_judge():
    with pytest.raises(ValueError, match="unknown scorer"):
        run("nope", "x")
    with pytest.raises(ValueError, match="needs a model call"):
        run("llm_judge", "x", args={"model": "m", "rubric": "r"})


# --- Validation -----------------------------------------------------------------------------------


def test_valid_configurations_have_no_errors():
    assert scorer_validate("exact_match", {}, {}) == []
    assert scorer_validate("exact_match", None, {"expected": "answer"}) == []
    assert scorer_validate("regex", {"pattern": r"\d+", "flags": "im"}, {}) == []
    assert scorer_validate("json_schema", {"schema": SCHEMA}, {}) == []
    assert scorer_validate("numeric", {"abs_tol": 0.5, "rel_tol": 0}, {}) == []
    assert scorer_validate("llm_judge", {"model": "llama", "rubric": "Is it polite?"}, {}) == []


@pytest.mark.parametrize(
    ("name", "args", "mapping", "message"),
    [
        ("exact_matsh", {}, {}, "unknown scorer 'exact_matsh'; the scorers are: exact_match,"),
        ("regex", {}, {}, "regex: pattern is required"),
        ("regex", {"pattern": "(unclosed"}, {}, "regex: the pattern does not compile: missing )"),
        ("regex", {"pattern": "a", "flags": "iq"}, {}, "regex: unknown flag(s) 'q'"),
        ("regex", {"pattern": 5}, {}, "regex: pattern: must be a string"),
        ("json_schema", {}, {}, "json_schema: schema is required"),
        (
            "json_schema",
            {"schema": {"type": "nope"}},
            {},
            "json_schema: the schema is not a valid JSON Schema:",
        ),
        (
            "json_schema",
            {"schema": {"properties": {"a": {"minimum": "zero"}}}},
            {},
            "json_schema: the schema is not a valid JSON Schema:",
        ),
        ("json_schema", {"schema": "object"}, {}, "json_schema: the schema must be a JSON object"),
        (
            "json_schema",
            {"schema": {"$ref": "https://example.com/schema.json"}},
            {},
            "json_schema: the schema cannot be used:",
        ),
        ("json_schema", {"schema": {"pattern": "("}}, {}, "json_schema: the schema"),
        ("numeric", {"abs_tol": -1}, {}, "numeric: abs_tol must be >= 0"),
        ("numeric", {"rel_tol": "5%"}, {}, "numeric: rel_tol: must be a number"),
        ("numeric", {"abs_tol": float("inf")}, {}, "numeric: abs_tol: must be a finite number"),
        ("similarity", {"threshold": 80}, {}, "similarity: threshold must be between 0 and 1"),
        ("llm_judge", {"rubric": "polite?"}, {}, "llm_judge: model is required"),
        ("llm_judge", {"model": "m", "rubric": "  "}, {}, "llm_judge: rubric must not be empty"),
        ("exact_match", {"pattern": "x"}, {}, "exact_match: unknown argument 'pattern'"),
        ("contains", {"ignore_case": "yes"}, {}, "contains: ignore_case: must be true or false"),
        ("exact_match", {}, {"output": "x"}, "exact_match: mapping names 'output', but"),
        ("regex", {"pattern": "a"}, {"expected": "x"}, "regex: mapping names 'expected', but"),
        ("exact_match", {}, {"expected": ""}, "exact_match: mapping for 'expected' must be"),
        ("exact_match", {}, "expected=answer", "exact_match: mapping must be an object"),
        ("exact_match", ["x"], {}, "exact_match: args must be an object"),
        (
            "contains",
            {"expected": "a"},
            {"expected": "b"},
            "contains: 'expected' is given both as an argument and in the mapping",
        ),
    ],
)
def test_validation_errors(name, args, mapping, message):
    errors = scorer_validate(name, args, mapping)
    assert any(error.startswith(message) for error in errors), errors


def test_validation_reports_every_missing_argument():
    assert scorer_validate("llm_judge", {}, {}) == [
        "llm_judge: model is required",
        "llm_judge: rubric is required",
    ]


# --- LLM judge ------------------------------------------------------------------------------------


def test_judge_messages_carry_the_rubric_the_row_and_the_answer():
    messages = judge_messages(
        "The answer must name {expected}. {unknown} stays.",
        {"input": "Capital of France?", "expected": "Paris", "tags": ["geo", 1]},
        "It is Paris.",
    )
    assert [m["role"] for m in messages] == ["system", "user"]
    assert '"score"' in messages[0]["content"] and '"reason"' in messages[0]["content"]
    user = messages[1]["content"]
    assert "The answer must name Paris. {unknown} stays." in user
    assert "<input>\nCapital of France?\n</input>" in user
    assert '<tags>\n["geo", 1]\n</tags>' in user
    assert user.index("<answer>\nIt is Paris.\n</answer>") > user.index("</expected>")


@pytest.mark.parametrize(
    ("text", "score", "passed", "reason"),
    [
        ('{"score": 0.9, "reason": "Correct and concise."}', 0.9, True, "Correct and concise."),
        (
            'Here is my grade:\n```json\n{\n  "score": 0.25,\n  "reason": "Wrong city."\n}\n```\n'
            "Hope this helps!",
            0.25,
            False,
            "Wrong city.",
        ),
        ('I think {this} is fine. {"score": "0.5"}', 0.5, True, "no reason given"),
        ('{"score": 1}', 1.0, True, "no reason given"),
        ('{"verdict": "good"} then {"score": 0, "reason": "empty"}', 0.0, False, "empty"),
    ],
)
def test_judge_parse_finds_json_anywhere(text, score, passed, reason):
    assert judge_parse(text) == Score(score, passed, reason)


@pytest.mark.parametrize(
    ("text", "score"),
    [("0.7", 0.7), ("Score: 0.4\nThe answer is partly right.", 0.4), ("8/10", 0.8), ("75%", 0.75)],
)
def test_judge_parse_reads_a_bare_number(text, score):
    result = judge_parse(text)
    assert result.score == pytest.approx(score)
    assert result.passed is (score >= 0.5)
    assert result.reason.startswith("the judge gave a bare score")


@pytest.mark.parametrize(
    ("text", "reason_start"),
    [
        ("", "could not read a score"),
        ("I cannot grade this.", "could not read a score"),
        ("Rating: 7 out of 10", "could not read a score"),
        ('{"score": 7, "reason": "good"}', "the judge's score 7 is not a number in 0..1"),
        ('{"score": "high"}', "the judge's score 'high' is not a number in 0..1"),
        ('{"score": true}', "the judge's score True is not a number in 0..1"),
    ],
)
def test_judge_parse_unreadable_scores_zero(text, reason_start):
    result = judge_parse(text)
    assert (result.score, result.passed) == (0.0, False)
    assert result.reason.startswith(reason_start), result.reason


def test_judge_parse_threshold():
    assert not judge_parse('{"score": 0.6}', threshold=0.7).passed
    assert judge_parse('{"score": 0.7}', threshold=0.7).passed


def test_a_catastrophic_pattern_stops_at_its_timeout_and_fails():
    import time

    from evaluations.scorers import REGEX_TIMEOUT_SECONDS, score

    started = time.monotonic()
    # Exponential backtracking (the `regex` engine defuses the classic (a+)+$, not this one).
    result = score("regex", {"pattern": r"(a|aa)+$"}, None, output="a" * 40 + "b", row={})
    assert time.monotonic() - started < REGEX_TIMEOUT_SECONDS + 2
    assert not result.passed and "ran over" in result.reason
