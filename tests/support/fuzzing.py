"""Fuzzing a live stack: judging each answer, keeping what went wrong, and reporting the counts.

    run = FuzzRun(log_path=...)             # the daphne log, for the traceback of a finding
    send(run, client, "source", "POST", "/v1/chat/completions", content=b"...")
    fuzz_operation(run, operation, GenerationMode.NEGATIVE, 100, session, base_url, auth)
    report(run, summary, record_property, name="api")

The rule every answer is judged by: no 5xx (nor a stream that ends with an error event), and every
other non-2xx in OpenAI's error body {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.processes import REPO_DIR


@dataclass
class Finding:
    source: str
    request: str
    status: int
    problem: str
    body: str
    server_log: str

    def render(self) -> str:
        log = self.server_log.strip() or "(nothing logged)"
        return (
            f"[{self.source}] {self.problem}: HTTP {self.status}\n"
            f"  request: {self.request}\n  response: {self.body[:500]}\n"
            f"  server log:\n" + "\n".join("    " + line for line in log.splitlines()[-40:])
        )


@dataclass
class FuzzRun:
    """Counts every case, judges every response, and keeps what went wrong."""

    log_path: Path
    cases: Counter = field(default_factory=Counter)
    unsent: Counter = field(default_factory=Counter)  # refused by the client library itself
    statuses: Counter = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    _log_offset: int = 0

    def __post_init__(self) -> None:
        self._log_offset = self._log_size()

    def _log_size(self) -> int:
        return os.path.getsize(self.log_path) if self.log_path.exists() else 0

    def _new_log(self) -> str:
        # A 500's traceback is logged before the response is sent; give the file a moment.
        time.sleep(0.05)
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            text = log.read().decode("utf-8", "replace")
        self._log_offset = self._log_size()
        return text

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    @property
    def server_errors(self) -> int:
        """5xx answers, and streams that broke off with a server error event."""
        return sum(1 for f in self.findings if f.status >= 500 or f.problem.startswith("stream"))

    def judge(self, source: str, request: str, status: int, content_type: str, body: bytes) -> None:
        self.cases[source] += 1
        self.statuses[status] += 1
        problem = answer_problem(status, content_type, body)
        if problem is None:
            self._log_offset = self._log_size()
            return
        self.findings.append(
            Finding(
                source=source,
                request=request,
                status=status,
                problem=problem,
                body=body.decode("utf-8", "replace"),
                server_log=self._new_log(),
            )
        )

    def summary(self) -> str:
        by_source = ", ".join(f"{source} {n}" for source, n in sorted(self.cases.items()))
        statuses = " ".join(f"{status}x{n}" for status, n in sorted(self.statuses.items()))
        other = len(self.findings) - self.server_errors
        unsent = f"; {sum(self.unsent.values())} not sendable" if self.unsent else ""
        return (
            f"{self.total} cases, {self.server_errors} 5xx, {other} other findings "
            f"({by_source}; statuses {statuses}{unsent})"
        )


def answer_problem(status: int, content_type: str, body: bytes) -> str | None:
    """What is wrong with a response, or None."""
    if status == 0:
        return "connection closed without a response"
    if status >= 500:
        return "server error"
    if 200 <= status < 300:
        if content_type.startswith("text/event-stream"):
            return _stream_problem(body)
        return None
    if not content_type.startswith("application/json"):
        return f"error not in JSON ({content_type or 'no content type'})"
    try:
        payload = json.loads(body)
    except ValueError:
        return "error body is not JSON"
    if not is_openai_error(payload):
        return "error body not in OpenAI's shape"
    return None


def _stream_problem(body: bytes) -> str | None:
    """A stream that broke off with a server error is a 5xx sent as an event."""
    for line in body.split(b"\n"):
        if line.startswith(b"data: {") and b'"error"' in line:
            payload = json.loads(line[len(b"data: ") :])
            if "error" in payload:
                if not is_openai_error(payload):
                    return "stream error event not in OpenAI's shape"
                return f"stream ended with an error event ({payload['error'].get('code')})"
    return None


def is_openai_error(payload: object) -> bool:
    if not isinstance(payload, dict) or list(payload) != ["error"]:
        return False
    error = payload["error"]
    return (
        isinstance(error, dict)
        and set(error) == {"message", "type", "param", "code"}
        and isinstance(error["message"], str)
        and bool(error["message"])
        and isinstance(error["type"], str)
        and isinstance(error["param"], str | None)
        and isinstance(error["code"], str | None)
    )


# --- reporting -------------------------------------------------------------------------------
class TerminalSummary:
    """Adds each fuzz run's summary line to pytest's closing summary (capture-proof)."""

    name = "yardstick-fuzz-summary"

    def __init__(self) -> None:
        self.lines: list[str] = []

    @classmethod
    def of(cls, config: pytest.Config) -> TerminalSummary:
        """The one summary of this pytest run, registered as a plugin on first use."""
        plugin = config.pluginmanager.get_plugin(cls.name)
        if plugin is None:
            plugin = cls()
            config.pluginmanager.register(plugin, cls.name)
        return plugin

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.lines:
            terminalreporter.write_sep("-", "fuzzing")
            for line in self.lines:
                terminalreporter.write_line(line)


FINDINGS_DIR = REPO_DIR / "test-artifacts"


def findings_file(name: str) -> Path:
    return FINDINGS_DIR / f"fuzz-findings-{name}.txt"


def report(run: FuzzRun, config: pytest.Config, record_property, *, name: str) -> None:
    """The summary line to the terminal and a junit property; every finding in full to a file
    under test-artifacts/ (the test's failure shows the first ones)."""
    line = f"fuzz ({name}): {run.summary()}"
    TerminalSummary.of(config).lines.append(line)
    record_property("fuzz_cases", run.total)
    record_property("fuzz_5xx", run.server_errors)
    FINDINGS_DIR.mkdir(exist_ok=True)
    findings_file(name).write_text(
        line + "\n\n" + "\n\n".join(f.render() for f in run.findings) + "\n", encoding="utf-8"
    )


def fail_on_findings(run: FuzzRun, *, name: str, elapsed: float) -> None:
    if run.findings:
        pytest.fail(
            f"fuzz ({name}): {run.summary()} in {elapsed:.0f} s; findings (all in {findings_file(name)}):\n\n"
            + "\n\n".join(f.render() for f in run.findings[:20]),
            pytrace=False,
        )


# --- sending cases ---------------------------------------------------------------------------
def hypothesis_settings(max_examples: int) -> settings:
    return settings(
        max_examples=max_examples,
        derandomize=True,  # the same cases each run of the same tests: findings reproduce
        deadline=None,
        database=None,
        phases=[Phase.generate],  # no shrinking: findings are collected, not raised
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


def fuzz_operation(run, operation, mode, examples, session, base_url, auth) -> None:
    source = f"schemathesis {mode.value}"

    @hypothesis_settings(examples)
    @given(case=operation.as_strategy(generation_mode=mode))
    def one_case(case):
        try:
            response = case.call(base_url=base_url, session=session, headers=auth, timeout=30)
        except requests.RequestException:  # e.g. a header `requests` refuses to send
            run.unsent[source] += 1
            return
        request = case.as_curl_command(headers=auth, base_url=base_url)
        run.judge(
            source,
            request,
            response.status_code,
            (response.headers.get("content-type") or [""])[0],  # schemathesis: header lists
            response.content,
        )
        try:
            # The answer is what the document promises: a documented status, content type
            # and body. A mismatch is the document's bug (or the server's).
            case.validate_response(response, checks=CONFORMANCE, headers=auth)
        except (AssertionError, FailureGroup) as exc:
            run.findings.append(
                Finding(
                    source=source,
                    request=request,
                    status=response.status_code,
                    problem=f"does not match the document: {str(exc).strip()[:600]}",
                    body=response.text,
                    server_log="",
                )
            )

    try:
        one_case()
    except Unsatisfiable:
        pass  # negative mode on an operation without parameters: nothing to break


CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]


def send(
    run: FuzzRun,
    client: httpx.Client,
    source: str,
    method: str,
    path: str,
    *,
    content=None,
    headers: dict | None = None,
    describe: str | None = None,
) -> None:
    """One request as given: `headers` replace the client's (None removes one), `content` is
    sent as bytes (or chunked, from an iterator)."""
    if describe is None:
        shown = content[:300] if isinstance(content, bytes) else content
        more = (
            f"... ({len(content)} bytes)"
            if isinstance(content, bytes) and len(content) > 300
            else ""
        )
        describe = f"{method} {path} body={shown!r}{more}"
    if headers:
        shown_headers = {
            k: (v if k.lower() != "authorization" else "<...>") for k, v in headers.items()
        }
        describe += f" headers={shown_headers}"
    request = client.build_request(method, path, content=content)
    for name, value in (headers or {}).items():
        if value is None:
            request.headers.pop(name, None)
        else:
            request.headers[name] = value  # outside ASCII: sent as UTF-8 bytes
    try:
        response = client.send(request)
    except httpx.LocalProtocolError:
        run.unsent[source] += 1
        return
    except httpx.HTTPError as exc:
        run.judge(source, describe, 0, "", f"no response: {exc!r}".encode())
        return
    run.judge(
        source,
        describe,
        response.status_code,
        response.headers.get("content-type", ""),
        response.content,
    )
