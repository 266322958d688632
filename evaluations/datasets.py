"""Datasets: parsing an uploaded file into rows, and writing immutable, content-hashed versions.

A row is a JSON object with either `input` (a string: the user's message) or `messages` (a chat,
OpenAI format), optionally `expected` (the reference answer, any JSON value), and any other
columns as variables (scorers and the judge read them by name).

A bad file is refused as a whole: `DatasetError` names the line and the reason, and nothing is
written. The same rows uploaded again are the same version (their hash); other rows are the next
version. This module knows projects and users by id only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from evaluations.models import Dataset, DatasetRow, DatasetVersion

MAX_ROWS = 10_000
MAX_BYTES = 20 * 1024 * 1024
MAX_ROW_BYTES = 1024 * 1024
NAME_MAX = 100
MAX_DEPTH = 64
MESSAGE_ROLES = ("system", "developer", "user", "assistant", "tool")
# Letters (any script), digits, "-", "_", "." and spaces; no leading or trailing space.
_NAME = re.compile(r"^[\w.\- ]+$")
_JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
_BOM = "\ufeff"


class DatasetError(ValueError):
    """A dataset refused: `line` is the file's 1-based line (or the row's number when rows
    come without a file), None when the problem is the whole file."""

    def __init__(self, line: int | None, reason: str):
        self.line = line
        self.reason = reason
        super().__init__(f"line {line}: {reason}" if line is not None else reason)


@dataclass
class ParsedDataset:
    rows: list[dict]
    columns: list[str]


# --- Parsing --------------------------------------------------------------------------------------


def dataset_rows_parse(content: bytes, filename: str) -> ParsedDataset:
    """The rows of an uploaded JSONL, JSON (a list of objects) or CSV file, checked."""
    if len(content) > MAX_BYTES:
        raise DatasetError(None, f"the file is {_megabytes(len(content))}; the limit is 20 MB")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = content[: exc.start].count(b"\n") + 1
        raise DatasetError(line, "the file is not UTF-8 text") from None
    text = text.removeprefix(_BOM)
    if not text.strip():
        raise DatasetError(None, "the file is empty")

    lower = filename.lower()
    if lower.endswith(".csv") or lower.endswith(".tsv"):
        numbered = _csv_rows(text, delimiter="\t" if lower.endswith(".tsv") else ",")
    elif lower.endswith(_JSON_SUFFIXES) or text.lstrip()[:1] in ("{", "["):
        # A file with no known suffix that starts like JSON is read as JSON, anything else as CSV.
        numbered = _json_rows(text)
    else:
        numbered = _csv_rows(text, delimiter=",")

    rows: list[dict] = []
    for line, row in numbered:
        if len(rows) == MAX_ROWS:
            raise DatasetError(line, f"more than {MAX_ROWS:,} rows")
        rows.append(row_check(row, line))
    if not rows:
        raise DatasetError(None, "the file has no rows")
    return ParsedDataset(rows=rows, columns=columns_of(rows))


def _json_rows(text: str) -> Iterator[tuple[int, Any]]:
    if text.lstrip().startswith("["):
        yield from _json_array_rows(text)
        return
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        if len(line.encode("utf-8")) > MAX_ROW_BYTES:
            raise DatasetError(number, "the row is over 1 MB")
        yield number, _loads(line, line=number)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _loads(text: str, *, line: int | None, what: str = "bad JSON") -> Any:
    """json.loads, refusing NaN and Infinity (Python's json reads them; the databases' JSON
    does not). `line` None: the error's line is the parser's (a whole file)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        at = f" (column {exc.colno})" if line is not None else ""
        raise DatasetError(line or exc.lineno, f"{what}: {exc.msg}{at}") from None
    except ValueError as exc:
        raise DatasetError(line, f"{what}: {exc}") from None
    except RecursionError:
        raise DatasetError(line, f"{what}: nested too deeply") from None


def _json_array_rows(text: str) -> Iterator[tuple[int, Any]]:
    """A .json file holding one list of objects. Each item's line is where it starts."""
    decoder = json.JSONDecoder()
    items = _loads(text, line=None)
    if not isinstance(items, list):
        raise DatasetError(1, "expected a list of JSON objects")
    # Walk the text again to find where each item starts (for the error messages).
    position = text.index("[") + 1
    line, counted = 1, 0
    for item in items:
        position = _skip_space_and_comma(text, position)
        line += text.count("\n", counted, position)
        counted = position
        _, end = decoder.raw_decode(text, position)
        if end - position > MAX_ROW_BYTES:
            raise DatasetError(line, "the row is over 1 MB")
        position = end
        yield line, item


def _skip_space_and_comma(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n,":
        position += 1
    return position


def _csv_rows(text: str, *, delimiter: str) -> Iterator[tuple[int, dict]]:
    # The module's default field limit (128 KiB) is below a row's; the row limit is ours.
    csv.field_size_limit(MAX_BYTES)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DatasetError(1, f"bad CSV: {exc}") from None
    if not header or not any(name.strip() for name in header):
        raise DatasetError(1, "expected a header row naming the columns")
    names = [name.strip() for name in header]
    for position, name in enumerate(names, start=1):
        if not name:
            raise DatasetError(1, f"column {position} of the header has no name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise DatasetError(1, f"the header names {', '.join(duplicates)} twice")

    start = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DatasetError(start, f"bad CSV: {exc}") from None
        line, start = start, reader.line_num + 1
        if not values or (len(values) == 1 and not values[0].strip()):
            continue  # a blank line
        # The row's size as its text (values and separators; quotes aside).
        if sum(len(value.encode("utf-8")) for value in values) + len(values) - 1 > MAX_ROW_BYTES:
            raise DatasetError(line, "the row is over 1 MB")
        if len(values) != len(names):
            raise DatasetError(
                line,
                f"{len(values)} value{'s' * (len(values) != 1)}, "
                f"but the header names {len(names)} columns",
            )
        yield line, _csv_row(dict(zip(names, values, strict=True)), line)


def _csv_row(row: dict[str, str], line: int) -> dict:
    """CSV cells are strings; an empty `input`, `messages` or `expected` cell means "none" (so
    one file can mix rows of either kind), and `messages` is a JSON array in its cell."""
    for key in ("input", "messages", "expected"):
        if key in row and not row[key].strip():
            del row[key]
    if "messages" in row:
        row["messages"] = _loads(row["messages"], line=line, what="messages: bad JSON")
    return row


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


# --- Rows -----------------------------------------------------------------------------------------


def row_check(row: Any, line: int | None) -> dict:
    """The row if it is one (an object with `input` or `messages`), else DatasetError."""
    if not isinstance(row, dict):
        raise DatasetError(line, "expected a JSON object")
    problem = _unstorable(row)
    if problem:
        raise DatasetError(line, problem)
    has_input, has_messages = "input" in row, "messages" in row
    if not has_input and not has_messages:
        raise DatasetError(line, "a row needs an 'input' or a 'messages' column")
    if has_input and has_messages:
        raise DatasetError(line, "a row has either 'input' or 'messages', not both")
    if has_input:
        if not isinstance(row["input"], str):
            raise DatasetError(line, "input must be a string")
        if not row["input"].strip():
            raise DatasetError(line, "input is empty")
    else:
        problem = _messages_problem(row["messages"])
        if problem:
            raise DatasetError(line, problem)
    return row


def _unstorable(value: Any) -> str | None:
    """What the databases' JSON refuses and Python's accepts: a NUL character (PostgreSQL's
    jsonb), NaN and infinities; and nesting deeper than any dataset needs."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(item, str):
            if "\x00" in item:
                return "contains a NUL character (\\u0000), which cannot be stored"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{item} is not a JSON number"
        elif isinstance(item, dict):
            stack.extend((key, depth + 1) for key in item)
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return None


def _messages_problem(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list of {role, content} objects"
    for number, message in enumerate(messages, start=1):
        if not isinstance(message, dict):
            return f"message {number} is not an object"
        role = message.get("role")
        if role not in MESSAGE_ROLES:
            return f"message {number}: role must be one of {', '.join(MESSAGE_ROLES)}"
        content = message.get("content")
        # A list is OpenAI's content parts (text, images); an assistant's may be empty when it
        # only called tools.
        if not isinstance(content, str | list) and not (
            content is None and role == "assistant" and message.get("tool_calls")
        ):
            return f"message {number}: content must be a string or a list of parts"
    return None


def columns_of(rows: Iterable[dict]) -> list[str]:
    """Every column found: `input`, `messages`, `expected` first, then the variables in the
    order first seen."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    leading = [key for key in ("input", "messages", "expected") if key in seen]
    return leading + [key for key in seen if key not in leading]


def dataset_content_hash(rows: Sequence[dict]) -> str:
    canonical = json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def dataset_name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not name.strip():
        return "a name is required"
    if name != name.strip():
        return "a name cannot start or end with a space"
    if len(name) > NAME_MAX:
        return f"a name is at most {NAME_MAX} characters"
    if not _NAME.match(name):
        return "a name has letters, digits, spaces and - _ . only"
    return None


def row_messages(row: dict, system_prompt: str = "") -> list[dict]:
    """The chat a row sends to a model: its `messages`, or its `input` as one user message,
    after the evaluation's system prompt (unless the row's chat starts with its own), as
    evaluations.runner builds it."""
    if "messages" in row:
        messages = [dict(message) for message in row["messages"]]
    else:
        messages = [{"role": "user", "content": row["input"]}]
    if system_prompt and messages[0].get("role") != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


# --- Writes ---------------------------------------------------------------------------------------


def dataset_version_create(
    *,
    organization_id: int,
    project_id: int,
    name: str,
    rows: Sequence[dict],
    columns: Sequence[str] | None = None,
    source: str = DatasetVersion.Source.UPLOAD,
    filename: str = "",
    user_id: int | None = None,
) -> tuple[DatasetVersion, bool]:
    """The version of dataset `name` (in the project) holding `rows`: the existing one if the
    same rows were stored before (created False), else the next number. One transaction."""
    problem = dataset_name_problem(name)
    if problem:
        raise DatasetError(None, f"name: {problem}")
    if not rows:
        raise DatasetError(None, "a dataset needs at least one row")
    if len(rows) > MAX_ROWS:
        raise DatasetError(None, f"more than {MAX_ROWS:,} rows")
    # Rows that came without a file (the API, traces) get the same checks; `line` is the row.
    rows = [row_check(row, number) for number, row in enumerate(rows, start=1)]
    columns = list(columns) if columns else columns_of(rows)
    content_hash = dataset_content_hash(rows)

    with transaction.atomic():
        dataset, _ = Dataset.objects.get_or_create(
            project_id=project_id,
            name=name,
            defaults={"organization_id": organization_id, "created_by_id": user_id},
        )
        # Serialises uploads to one dataset, so two never take the same number.
        dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
        existing = dataset.versions.filter(content_hash=content_hash).first()
        if existing is not None:
            return existing, False
        last = dataset.versions.order_by("-number").values_list("number", flat=True).first()
        version = DatasetVersion.objects.create(
            dataset=dataset,
            number=(last or 0) + 1,
            content_hash=content_hash,
            columns=columns,
            row_count=len(rows),
            source=source,
            filename=filename[:200],
            created_by_id=user_id,
        )
        DatasetRow.objects.bulk_create(
            [DatasetRow(version=version, index=i, data=row) for i, row in enumerate(rows)],
            batch_size=1000,
        )
    return version, True


def dataset_preview(version: DatasetVersion, limit: int = 20) -> dict:
    rows = version.rows.order_by("index").values_list("data", flat=True)[:limit]
    return {"columns": list(version.columns), "rows": list(rows), "row_count": version.row_count}


def dataset_from_calls(
    *,
    organization_id: int,
    project_id: int,
    name: str,
    calls: Sequence[Any],
    user_id: int | None = None,
) -> DatasetVersion:
    """A dataset version with a row per call, in the given order: `messages` is the call's
    request, `expected` its answer. Calls of another project, or whose body was not stored
    (bodies off, dropped, deleted by retention), are refused by span id."""
    # Imported here: only this function reads traces (its models, by id; no web app).
    from traces.models import CallBody

    if not calls:
        raise DatasetError(None, "select at least one call")
    foreign = [call.span_id for call in calls if call.project_id != project_id]
    if foreign:
        raise DatasetError(None, f"calls of another project: {', '.join(foreign[:10])}")
    bodies = {
        (body.started_at, body.span_id): body
        for body in CallBody.objects.filter(
            project_id=project_id,
            span_id__in={call.span_id for call in calls},
            started_at__in={call.started_at for call in calls},
        )
    }
    rows, missing = [], []
    for call in calls:
        body = bodies.get((call.started_at, call.span_id))
        messages = body.inputs.get("messages") if body and isinstance(body.inputs, dict) else None
        if not isinstance(messages, list) or not messages:
            missing.append(call.span_id)
            continue
        row: dict[str, Any] = {"messages": messages}
        answer = body.output.get("content") if isinstance(body.output, dict) else None
        if isinstance(answer, str) and answer:
            row["expected"] = answer
        rows.append(row)
    if missing:
        listed = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise DatasetError(None, f"calls without a stored request body: {listed}")
    version, _ = dataset_version_create(
        organization_id=organization_id,
        project_id=project_id,
        name=name,
        rows=rows,
        source=DatasetVersion.Source.TRACES,
        user_id=user_id,
    )
    return version
