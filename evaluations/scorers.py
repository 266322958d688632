"""Built-in scorers: each turns (a model's output, a dataset row) into a Score 0..1.

Pure: no Django, no database, no model calls. An evaluation stores a scorer as
`{"scorer": name, "args": {...}, "mapping": {...}}`; `scorer_validate` checks that before anything
is created, and `score` runs it once per (row, model, trial).

Where a scorer's values come from (as in Weave):
- `output` is always the model's answer.
- A scorer's *inputs* (`ScorerSpec.inputs`, e.g. `expected`) are read from the row's column of the
  same name, or from the column that `mapping` names for it (`{"expected": "answer"}`). An input
  may instead be given once in `args` (`{"expected": "Paris"}`): then it is the same for every row.
- A scorer's *args* (`ScorerSpec.args`, e.g. `pattern`, `abs_tol`) are set once on the evaluation.

A row that lacks a column a scorer reads scores 0 with a reason; it never raises. Bad arguments
(an unknown scorer, a regex that does not compile, ...) are the caller's to refuse first, with
`scorer_validate`; `score` raises ValueError on them.

`llm_judge` needs a model call, so `score` does not run it: the evaluation runner builds the
prompt with `judge_messages`, calls the judge model through the gateway (billed and traced like
any call), and reads the reply with `judge_parse`.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
import regex
from rapidfuzz import fuzz


@dataclass(frozen=True)
class Score:
    score: float
    passed: bool
    reason: str

    def __post_init__(self):
        if not (isinstance(self.score, int | float) and 0.0 <= self.score <= 1.0):
            raise ValueError(f"a score is a number in 0..1, not {self.score!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"score": float(self.score), "passed": self.passed, "reason": self.reason}


@dataclass(frozen=True)
class Param:
    """One argument or input of a scorer. `type` is one of: str, str_list, number, bool,
    flags (regex flag letters), json_schema."""

    name: str
    type: str
    required: bool = False
    default: Any = None
    help: str = ""


@dataclass(frozen=True)
class ScorerSpec:
    name: str
    description: str
    args: tuple[Param, ...] = ()
    inputs: tuple[Param, ...] = ()
    # (output, args, inputs) -> Score; None for the judge, which needs a model call.
    run: Callable[[str, dict[str, Any], dict[str, Any]], Score] | None = field(
        default=None, repr=False
    )

    @property
    def needs_model(self) -> bool:
        return self.run is None

    def as_dict(self) -> dict[str, Any]:
        """For forms and the API: what the scorer reads and which arguments it takes."""

        def param(p: Param) -> dict[str, Any]:
            return {
                "name": p.name,
                "type": p.type,
                "required": p.required,
                "default": p.default,
                "help": p.help,
            }

        return {
            "name": self.name,
            "description": self.description,
            "args": [param(p) for p in self.args],
            "inputs": [param(p) for p in self.inputs],
            "needs_model": self.needs_model,
        }


# --- Value helpers --------------------------------------------------------------------------------

# Trailing punctuation that does not change an answer ("Paris." is "Paris").
_TRAILING_PUNCTUATION = ".,;:!?…。、，；：！？"
_WHITESPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """exact_match's comparison form: Unicode NFKC, case folded, whitespace collapsed,
    trailing punctuation stripped."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _WHITESPACE.sub(" ", text).strip()
    return text.rstrip(_TRAILING_PUNCTUATION + " ")


def _as_text(value: Any) -> str:
    # Rows come from JSONL (numbers stay numbers) and CSV (everything is text): 4, 4.0 and "4"
    # must compare alike against an output "4".
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _as_text_list(value: Any) -> list[str]:
    # A JSONL row holds a list; a CSV cell can hold a JSON array; anything else is one item.
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            try:
                parsed = json.loads(stripped)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                value = parsed
    if isinstance(value, list | tuple):
        return [_as_text(item) for item in value]
    return [_as_text(value)]


# The first number in a text: sign, thousands separators, decimals, exponent.
_NUMBER = re.compile(
    r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+−]?\.\d+(?:[eE][-+]?\d+)?"
)


def first_number(text: str) -> float | None:
    match = _NUMBER.search(text)
    if match is None:
        return None
    return float(match.group().replace(",", "").replace("−", "-"))


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        match = _NUMBER.fullmatch(text)
        return float(text.replace(",", "").replace("−", "-")) if match else None
    return None


_FENCE = re.compile(r"^```[A-Za-z0-9_-]*[ \t]*\n(.*)\n```$", re.DOTALL)


def _parse_json_output(output: str, strip_fences: bool) -> tuple[bool, Any, str]:
    text = output.strip()
    if strip_fences:
        # Models often wrap JSON in a Markdown code block; the content is what counts.
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1).strip()
    try:
        return True, json.loads(text), ""
    except json.JSONDecodeError as exc:
        return False, None, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- Regex and JSON Schema (compiled once per distinct argument) ----------------------------------

# A user's pattern runs on the `regex` engine, which can stop a search: a catastrophic pattern
# such as (a+)+$ would otherwise hold a worker for minutes (`re` has no timeout).
_REGEX_FLAGS = {
    "i": regex.IGNORECASE,
    "m": regex.MULTILINE,
    "s": regex.DOTALL,
    "x": regex.VERBOSE,
}
REGEX_TIMEOUT_SECONDS = 1.0


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str, flags: str) -> regex.Pattern:
    value = regex.VERSION0  # Python re's syntax
    for letter in flags:
        value |= _REGEX_FLAGS[letter]
    return regex.compile(pattern, value)


@functools.cache
def _meta_schema_validator() -> jsonschema_rs.Validator:
    # The 2020-12 meta-schema, bundled with the library (never fetched); as in gateway/requests.py.
    return jsonschema_rs.Draft202012Validator(
        {"$ref": "https://json-schema.org/draft/2020-12/schema"}
    )


@functools.lru_cache(maxsize=256)
def _schema_validator(schema_json: str) -> jsonschema_rs.Validator:
    # offline: a `$ref` to a URL is an error, never a request from a worker.
    return jsonschema_rs.Draft202012Validator(json.loads(schema_json), offline=True)


def _schema_key(schema: Any) -> str:
    return json.dumps(schema, sort_keys=True)


def _schema_errors(schema: Any) -> list[str]:
    if not isinstance(schema, dict | bool):
        return ["the schema must be a JSON object"]
    try:
        _meta_schema_validator().validate(schema)
    except jsonschema_rs.ValidationError as exc:
        where = "/".join(str(part) for part in exc.instance_path)
        problem = exc.message.splitlines()[0] if exc.message else "invalid"
        at = f" (at '{where}')" if where else ""
        return [f"the schema is not a valid JSON Schema: {problem}{at}"]
    try:
        _schema_validator(_schema_key(schema))
    except jsonschema_rs.ValidationError as exc:
        # What the meta-schema lets through but cannot be used: a bad `pattern`, a `$ref` to
        # nothing or to a URL.
        problem = exc.message.splitlines()[0] if exc.message else "invalid"
        return [f"the schema cannot be used: {problem}"]
    return []


# --- The scorers ----------------------------------------------------------------------------------


def _exact_match(output: str, args: dict, inputs: dict) -> Score:
    expected = _as_text(inputs["expected"])
    got, want = normalise(output), normalise(expected)
    if got == want:
        return Score(1.0, True, "matches the expected answer")
    return Score(0.0, False, f"expected {_clip(want)!r}, got {_clip(got)!r}")


def _fold(text: str, ignore_case: bool) -> str:
    return text.casefold() if ignore_case else text


def _contains(output: str, args: dict, inputs: dict) -> Score:
    needle = _as_text(inputs["expected"])
    if needle == "":
        return Score(0.0, False, "the expected text is empty")
    found = _fold(needle, args["ignore_case"]) in _fold(output, args["ignore_case"])
    if found:
        return Score(1.0, True, f"contains {_clip(needle)!r}")
    return Score(0.0, False, f"does not contain {_clip(needle)!r}")


def _needles(inputs: dict) -> list[str]:
    return [needle for needle in _as_text_list(inputs["expected"]) if needle != ""]


def _contains_any(output: str, args: dict, inputs: dict) -> Score:
    needles = _needles(inputs)
    if not needles:
        return Score(0.0, False, "the expected list is empty")
    haystack = _fold(output, args["ignore_case"])
    for needle in needles:
        if _fold(needle, args["ignore_case"]) in haystack:
            return Score(1.0, True, f"contains {_clip(needle)!r}")
    return Score(0.0, False, f"contains none of {len(needles)}: {_clip(', '.join(needles))}")


def _contains_all(output: str, args: dict, inputs: dict) -> Score:
    needles = _needles(inputs)
    if not needles:
        return Score(0.0, False, "the expected list is empty")
    haystack = _fold(output, args["ignore_case"])
    missing = [n for n in needles if _fold(n, args["ignore_case"]) not in haystack]
    # Partial credit: the share found; passed only with all of them.
    share = (len(needles) - len(missing)) / len(needles)
    if not missing:
        return Score(1.0, True, f"contains all {len(needles)}")
    return Score(
        share, False, f"missing {len(missing)} of {len(needles)}: {_clip(', '.join(missing))}"
    )


def _regex(output: str, args: dict, inputs: dict) -> Score:
    try:
        match = _compiled(args["pattern"], args["flags"]).search(
            output, timeout=REGEX_TIMEOUT_SECONDS
        )
    except TimeoutError:
        return Score(0.0, False, f"the pattern ran over {REGEX_TIMEOUT_SECONDS:g} s: no match")
    if match:
        return Score(1.0, True, f"matches at {match.start()}: {_clip(match.group())!r}")
    return Score(0.0, False, f"no match for /{_clip(args['pattern'])}/")


def _valid_json(output: str, args: dict, inputs: dict) -> Score:
    ok, _, problem = _parse_json_output(output, args["strip_fences"])
    return Score(1.0, True, "valid JSON") if ok else Score(0.0, False, problem)


def _json_schema(output: str, args: dict, inputs: dict) -> Score:
    ok, value, problem = _parse_json_output(output, args["strip_fences"])
    if not ok:
        return Score(0.0, False, problem)
    validator = _schema_validator(_schema_key(args["schema"]))
    error = next(iter(validator.iter_errors(value)), None)
    if error is None:
        return Score(1.0, True, "matches the schema")
    where = "/".join(str(part) for part in error.instance_path)
    message = error.message.splitlines()[0] if error.message else "does not match"
    return Score(0.0, False, f"does not match the schema: {_clip(message, 160)} (at '/{where}')")


def _numeric(output: str, args: dict, inputs: dict) -> Score:
    expected = _as_number(inputs["expected"])
    if expected is None:
        return Score(
            0.0,
            False,
            f"the expected value {_clip(_as_text(inputs['expected']))!r} is not a number",
        )
    got = first_number(output)
    if got is None:
        return Score(0.0, False, "no number in the output")
    allowed = max(args["abs_tol"], args["rel_tol"] * abs(expected))
    difference = abs(got - expected)
    if difference <= allowed:
        return Score(1.0, True, f"{got:g} is within {allowed:g} of {expected:g}")
    return Score(0.0, False, f"{got:g} is {difference:g} from {expected:g} (allowed {allowed:g})")


def _similarity(output: str, args: dict, inputs: dict) -> Score:
    expected = _as_text(inputs["expected"])
    ratio = fuzz.ratio(output.strip(), expected.strip()) / 100.0
    ratio = min(1.0, max(0.0, ratio))
    passed = ratio >= args["threshold"]
    verb = "at least" if passed else "below"
    return Score(ratio, passed, f"similarity {ratio:.2f}, {verb} {args['threshold']:g}")


_EXPECTED_TEXT = Param("expected", "str", required=True, help="The reference answer.")
_EXPECTED_LIST = Param(
    "expected", "str_list", required=True, help="A list of texts (or a JSON array in a CSV cell)."
)
_IGNORE_CASE = Param("ignore_case", "bool", default=False, help="Compare case-insensitively.")
_STRIP_FENCES = Param(
    "strip_fences", "bool", default=True, help="Read JSON inside a Markdown ``` block."
)

SCORERS: dict[str, ScorerSpec] = {
    spec.name: spec
    for spec in [
        ScorerSpec(
            "exact_match",
            "The output equals the expected answer, ignoring case, extra whitespace and "
            "trailing punctuation.",
            inputs=(_EXPECTED_TEXT,),
            run=_exact_match,
        ),
        ScorerSpec(
            "contains",
            "The output contains the expected text.",
            args=(_IGNORE_CASE,),
            inputs=(Param("expected", "str", required=True, help="The text to find."),),
            run=_contains,
        ),
        ScorerSpec(
            "contains_any",
            "The output contains at least one of the expected texts.",
            args=(_IGNORE_CASE,),
            inputs=(_EXPECTED_LIST,),
            run=_contains_any,
        ),
        ScorerSpec(
            "contains_all",
            "The output contains every expected text (score: the share found).",
            args=(_IGNORE_CASE,),
            inputs=(_EXPECTED_LIST,),
            run=_contains_all,
        ),
        ScorerSpec(
            "regex",
            "A regular expression matches somewhere in the output (Python re.search).",
            args=(
                Param("pattern", "str", required=True, help="A Python regular expression."),
                Param("flags", "flags", default="", help="Letters: i, m, s, x."),
            ),
            run=_regex,
        ),
        ScorerSpec(
            "valid_json",
            "The output is valid JSON.",
            args=(_STRIP_FENCES,),
            run=_valid_json,
        ),
        ScorerSpec(
            "json_schema",
            "The output is JSON that matches a JSON Schema (draft 2020-12).",
            args=(
                Param("schema", "json_schema", required=True, help="A JSON Schema object."),
                _STRIP_FENCES,
            ),
            run=_json_schema,
        ),
        ScorerSpec(
            "numeric",
            "The first number in the output is within a tolerance of the expected number "
            "(the larger of abs_tol and rel_tol x |expected|).",
            args=(
                Param("abs_tol", "number", default=0.0, help="Absolute tolerance, >= 0."),
                Param("rel_tol", "number", default=0.0, help="Relative tolerance, >= 0."),
            ),
            inputs=(Param("expected", "number", required=True, help="The expected number."),),
            run=_numeric,
        ),
        ScorerSpec(
            "similarity",
            "Fuzzy similarity to the expected answer (rapidfuzz ratio, 0..1).",
            args=(Param("threshold", "number", default=0.8, help="Pass at or above, 0..1."),),
            inputs=(_EXPECTED_TEXT,),
            run=_similarity,
        ),
        ScorerSpec(
            "llm_judge",
            "A judge model grades the output against a rubric and the row's variables.",
            args=(
                Param("model", "str", required=True, help="The judge model's catalog id."),
                Param("rubric", "str", required=True, help="What a good answer is."),
                Param("threshold", "number", default=0.5, help="Pass at or above, 0..1."),
            ),
        ),
    ]
}


# --- Validation -----------------------------------------------------------------------------------


def _type_error(param: Param, value: Any) -> str | None:
    kind = param.type
    if kind in ("str", "flags") and not isinstance(value, str):
        return f"{param.name}: must be a string"
    if kind == "bool" and not isinstance(value, bool):
        return f"{param.name}: must be true or false"
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{param.name}: must be a number"
        if not math.isfinite(value):
            return f"{param.name}: must be a finite number"
    if kind == "str_list":
        if not (isinstance(value, list) and all(isinstance(v, str | int | float) for v in value)):
            return f"{param.name}: must be a list of strings"
    return None


def _with_defaults(spec: ScorerSpec, args: Mapping[str, Any]) -> dict[str, Any]:
    values = {p.name: p.default for p in spec.args}
    values.update({k: v for k, v in args.items() if k in values})
    return values


def scorer_validate(
    name: str, args: Mapping[str, Any] | None = None, mapping: Mapping[str, Any] | None = None
) -> list[str]:
    """The problems with a scorer configuration, as messages for a form or a 400; [] if none."""
    spec = SCORERS.get(name) if isinstance(name, str) else None
    if spec is None:
        return [f"unknown scorer {name!r}; the scorers are: {', '.join(SCORERS)}"]
    args = {} if args is None else args
    mapping = {} if mapping is None else mapping
    if not isinstance(args, Mapping):
        return [f"{name}: args must be an object"]
    if not isinstance(mapping, Mapping):
        return [f"{name}: mapping must be an object"]

    errors: list[str] = []
    params = {p.name: p for p in (*spec.args, *spec.inputs)}
    for key in args:
        if key not in params:
            known = ", ".join(params) or "none"
            errors.append(f"{name}: unknown argument {key!r} (arguments: {known})")
    for param in spec.args:
        if param.required and param.name not in args:
            errors.append(f"{name}: {param.name} is required")
    for param_name, value in args.items():
        param = params.get(param_name)
        if param is not None and (problem := _type_error(param, value)):
            errors.append(f"{name}: {problem}")

    input_names = {p.name for p in spec.inputs}
    for key, column in mapping.items():
        if key not in input_names:
            readable = ", ".join(sorted(input_names)) or "no columns"
            errors.append(f"{name}: mapping names {key!r}, but this scorer reads {readable}")
        elif not isinstance(column, str) or not column:
            errors.append(f"{name}: mapping for {key!r} must be a column name")
        elif key in args:
            errors.append(f"{name}: {key!r} is given both as an argument and in the mapping")
    if errors:
        return errors

    values = _with_defaults(spec, args)
    if name == "regex":
        unknown_flags = sorted(set(values["flags"]) - set(_REGEX_FLAGS))
        if unknown_flags:
            errors.append(f"regex: unknown flag(s) {''.join(unknown_flags)!r}; use i, m, s, x")
        else:
            try:
                _compiled(values["pattern"], values["flags"])
            except regex.error as exc:
                errors.append(f"regex: the pattern does not compile: {exc}")
    elif name == "json_schema":
        errors.extend(f"json_schema: {e}" for e in _schema_errors(values["schema"]))
    elif name == "numeric":
        for key in ("abs_tol", "rel_tol"):
            if values[key] < 0:
                errors.append(f"numeric: {key} must be >= 0")
    elif name in ("similarity", "llm_judge"):
        if not 0.0 <= values["threshold"] <= 1.0:
            errors.append(f"{name}: threshold must be between 0 and 1")
    if name == "llm_judge":
        for key in ("model", "rubric"):
            if not values[key].strip():
                errors.append(f"llm_judge: {key} must not be empty")
    return errors


# --- Scoring --------------------------------------------------------------------------------------


def score(
    name: str,
    args: Mapping[str, Any] | None,
    mapping: Mapping[str, Any] | None,
    *,
    output: str,
    row: Mapping[str, Any],
) -> Score:
    """Score one output against one row. A missing column gives score 0 with a reason."""
    errors = scorer_validate(name, args, mapping)
    if errors:
        raise ValueError("; ".join(errors))
    spec = SCORERS[name]
    if spec.run is None:
        raise ValueError(f"{name} needs a model call: use judge_messages and judge_parse")
    args = args or {}
    mapping = mapping or {}
    inputs: dict[str, Any] = {}
    for param in spec.inputs:
        if param.name in args:
            inputs[param.name] = args[param.name]
            continue
        column = mapping.get(param.name, param.name)
        value = row.get(column)
        if value is None:
            if param.required:
                missing = "has no column" if column not in row else "has an empty column"
                return Score(0.0, False, f"the row {missing} {column!r}")
            value = param.default
        inputs[param.name] = value
    return spec.run(
        output if isinstance(output, str) else _as_text(output), _with_defaults(spec, args), inputs
    )


# --- LLM judge ------------------------------------------------------------------------------------

_JUDGE_SYSTEM = (
    "You are a strict, fair grader. You grade one answer against a rubric. "
    "Reply with a single JSON object and nothing else: "
    '{"score": <a number from 0 to 1>, "reason": "<one or two sentences>"}. '
    "1 means the answer fully meets the rubric, 0 means it does not meet it at all."
)
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def judge_messages(rubric: str, row_vars: Mapping[str, Any], output: str) -> list[dict[str, str]]:
    """The judge's chat messages. `{column}` in the rubric is replaced by the row's value; the
    row's variables and the answer are also given in full, in delimited blocks."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        return _as_text(row_vars[key]) if key in row_vars else match.group(0)

    parts = ["## Rubric", _PLACEHOLDER.sub(fill, rubric).strip()]
    if row_vars:
        parts.append("## The test case's variables")
        for key, value in row_vars.items():
            parts.append(f"<{key}>\n{_as_text(value)}\n</{key}>")
    parts += [
        "## The answer to grade",
        f"<answer>\n{output}\n</answer>",
        'Reply with JSON only: {"score": 0..1, "reason": "..."}',
    ]
    return [
        {"role": "system", "content": _JUDGE_SYSTEM},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def _json_objects(text: str):
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            yield value


_SCORE_NUMBER = re.compile(
    r"(?:score\W{0,3})?(\d+(?:\.\d+)?|\.\d+)\s*(?:(/)\s*(\d+(?:\.\d+)?)|(%))?", re.IGNORECASE
)


def _judge_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = _as_number(value)
    if isinstance(value, int | float) and math.isfinite(value) and 0.0 <= value <= 1.0:
        return float(value)
    return None


def _number_in_text(text: str) -> float | None:
    # Prefer a number right after "score"; else the first number. "8/10" and "80%" are scaled.
    labelled = [m for m in _SCORE_NUMBER.finditer(text) if m.group().lower().startswith("score")]
    for match in labelled or list(_SCORE_NUMBER.finditer(text))[:1]:
        number = float(match.group(1))
        if match.group(2):
            denominator = float(match.group(3))
            number = number / denominator if denominator > 0 else -1.0
        elif match.group(4):
            number = number / 100.0
        if 0.0 <= number <= 1.0:
            return number
    return None


def judge_parse(text: str, *, threshold: float = 0.5) -> Score:
    """Read a judge's reply: a JSON object with "score" anywhere in the text (code fences and
    chatter around it are fine), else a number ("score: 0.8", "8/10", "80%"). Anything else,
    or a score outside 0..1, is score 0, not passed, and the reason says so."""
    text = text or ""
    for obj in _json_objects(text):
        if "score" not in obj:
            continue
        number = _judge_number(obj["score"])
        if number is None:
            return Score(0.0, False, f"the judge's score {obj['score']!r} is not a number in 0..1")
        reason = obj.get("reason")
        reason = reason.strip() if isinstance(reason, str) and reason.strip() else "no reason given"
        return Score(number, number >= threshold, _clip(reason, 500))
    number = _number_in_text(text)
    if number is not None:
        return Score(
            number, number >= threshold, f"the judge gave a bare score: {_clip(text.strip(), 200)}"
        )
    return Score(
        0.0, False, f"could not read a score from the judge's reply: {_clip(text.strip(), 200)!r}"
    )
