"""Fuzzing chat completions through the REAL embedded engine (SmolLM2 on llama.cpp).

The fake engine accepts anything; llama.cpp does not, and how it refuses matters: an engine error
caused by one request must be that request's 4xx, never a 5xx, and never a reason to refuse the
next tenant. So besides the usual rule (no 5xx, every error in OpenAI's shape), after every
hostile case a request of another organization must still be answered.

Cases: Schemathesis' valid requests from the served document (tools, response formats, stop
sequences... with generations capped at a few tokens), then a fixed list of what is valid for
the gateway but hard for the engine: JSON Schemas llama.cpp cannot turn into a grammar, and
llama.cpp's own parameters, which the gateway passes through untouched (`grammar`, `id_slot`,
`n_probs`, ...).
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
import requests
import schemathesis
from schemathesis import GenerationMode

from tests.support.fuzzing import (
    Finding,
    FuzzRun,
    fail_on_findings,
    fuzz_operation,
    report,
    send,
)
from tests.support.stack import Stack, sqlite_database_url
from tests.support.world import EMBEDDED_MODEL

pytestmark = [pytest.mark.engine, pytest.mark.fuzz]

MAX_TOKENS = 4
SCHEMATHESIS_EXAMPLES = 60
HELLO = [{"role": "user", "content": "Hi"}]


@pytest.fixture(scope="module")
def engine_fuzz_stack(tmp_path_factory, embedded_engine):
    var_dir = tmp_path_factory.mktemp("engine-fuzz-stack")
    stack = Stack(
        database_url=sqlite_database_url(var_dir),
        var_dir=var_dir,
        embedded_engine_url=embedded_engine.base_url,
    )
    try:
        stack.migrate()
        stack.seed(
            {
                "embedded_deployment": True,
                "organizations": [
                    {"slug": "fuzz", "plan": "free", "balance_micros": 1_000_000_000},
                    {"slug": "bystander", "plan": "free"},
                ],
                "users": [
                    {"username": "fuzzer", "organization": "fuzz", "role": "admin"},
                    {"username": "bystander", "organization": "bystander", "role": "admin"},
                ],
                "teams": [
                    {"name": "fuzz", "organization": "fuzz", "members": ["fuzzer"]},
                    {"name": "bystander", "organization": "bystander", "members": ["bystander"]},
                ],
                "projects": [
                    {"team": "fuzz", "name": "main", "default_for": ["fuzzer"]},
                    {"team": "bystander", "name": "main", "default_for": ["bystander"]},
                ],
                "api_keys": [
                    {"label": "fuzzer", "user": "fuzzer"},
                    {"label": "bystander", "user": "bystander"},
                ],
            }
        )
        stack.start_servers(1)
        yield stack
    finally:
        stack.stop()


def _short_generations_document(stack: Stack) -> dict:
    """The served document, narrowed to the embedded model and a few tokens per answer."""
    response = httpx.get(f"{stack.url}/v1/openapi.json", timeout=10)
    response.raise_for_status()
    document = response.json()
    properties = document["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    properties["model"] = {"enum": [EMBEDDED_MODEL]}
    for name in ("max_tokens", "max_completion_tokens"):
        properties[name] = {"type": "integer", "minimum": 1, "maximum": MAX_TOKENS}
    properties["n"] = {"enum": [1, 2]}
    # Every case must carry a cap, or the engine writes up to the default thousands of tokens.
    document["components"]["schemas"]["ChatCompletionRequest"]["required"].append("max_tokens")
    return document


def _hard_for_the_engine() -> list[tuple[str, dict]]:
    """Requests the gateway lets through that llama.cpp may refuse (or worse)."""

    def ask(**extra) -> dict:
        return {"model": EMBEDDED_MODEL, "messages": HELLO, "max_tokens": MAX_TOKENS, **extra}

    def json_schema(schema: dict) -> dict:
        return ask(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": schema},
            }
        )

    def tool(parameters: dict, **extra) -> dict:
        return ask(
            tools=[{"type": "function", "function": {"name": "f", "parameters": parameters}}],
            **extra,
        )

    schemas = {
        "lookbehind pattern": {"type": "string", "pattern": "(?<=a)b"},
        "unclosed pattern": {"type": "string", "pattern": "(a"},
        "missing $ref": {"$ref": "#/$defs/missing"},
        "remote $ref": {"$ref": "https://example.com/schema.json"},
        "recursive root": {"type": "object", "properties": {"a": {"$ref": "#"}}},
        "empty enum": {"enum": []},
        "impossible": {"not": {}},
        "huge minLength": {"type": "string", "minLength": 2**62},
        "huge minItems": {"type": "array", "minItems": 2**62},
        "min above max": {"type": "integer", "minimum": 10, "maximum": 1},
        "unknown format": {"type": "string", "format": "no-such-format"},
        "const object": {"const": {"a": [1, {"b": None}]}},
        "if/then/else": {"if": {"type": "string"}, "then": {"minLength": 2}, "else": {}},
        "dependentSchemas": {"type": "object", "dependentSchemas": {"a": {"required": ["b"]}}},
        "wide type union": {"type": ["string", "number", "object", "array", "boolean", "null"]},
    }
    cases = []
    for name, schema in schemas.items():
        cases.append((f"response_format {name}", json_schema(schema)))
        cases.append((f"tool parameters {name}", tool(schema, tool_choice="required")))
    cases += [
        ("a tool without its function", ask(tools=[{"type": "function"}])),
        ("json_object", ask(response_format={"type": "json_object"})),
        ("128 tools", ask(tools=[{"type": "function", "function": {"name": f"f{i}"}} for i in range(128)])),
        ("named tool choice", tool({"type": "object"}, tool_choice={"type": "function", "function": {"name": "f"}})),
        ("n=16", ask(n=16)),
        ("stop x4", ask(stop=["a", "b", "c", "\n"])),
        ("seed 2^64-1", ask(seed=2**64 - 1)),
        ("seed -2^63", ask(seed=-(2**63))),
        ("temperature 2 top_p 0", ask(temperature=2, top_p=0)),
        ("penalties", ask(presence_penalty=-2, frequency_penalty=2)),
        # llama.cpp's own parameters, passed through by the gateway untouched.
        ("grammar garbage", ask(grammar="root ::= (")),
        ("grammar empty", ask(grammar="")),
        ("json_schema top-level", ask(json_schema={"type": "string", "pattern": "(?<=a)"})),
        ("id_slot out of range", ask(id_slot=99)),
        ("id_slot negative", ask(id_slot=-5)),
        ("n_probs", ask(n_probs=-1)),
        ("logprobs huge", ask(logprobs=True, top_logprobs=10_000)),
        ("logit_bias strings", ask(logit_bias={"x": "y"})),
        ("logit_bias huge", ask(logit_bias={"1": 1e300})),
        ("samplers", ask(samplers=["no-such-sampler"])),
        ("n_keep", ask(n_keep=10**9)),
        ("cache_prompt", ask(cache_prompt="yes")),
        ("lora", ask(lora=[{"id": 99, "scale": 1}])),
        ("chat_template_kwargs", ask(chat_template_kwargs={"x": [1]})),
        ("typical_p", ask(typical_p=-5)),
        ("mirostat", ask(mirostat=7)),
        ("dry_sequence_breakers", ask(dry_sequence_breakers=5)),
        ("response_fields", ask(response_fields=["x"])),
        ("min_keep", ask(min_keep=-1)),
        ("t_max_predict_ms", ask(t_max_predict_ms=-1)),
        ("a tool turn without its call", ask(messages=[{"role": "tool", "content": "x"}, *HELLO])),
        ("only an assistant turn", ask(messages=[{"role": "assistant", "content": None}])),
        ("only a system turn", ask(messages=[{"role": "system", "content": "x"}])),
        ("developer role", ask(messages=[{"role": "developer", "content": "x"}, *HELLO])),
        ("empty content parts", ask(messages=[{"role": "user", "content": []}])),
        ("image to a text model", ask(messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])),
    ]  # fmt: skip
    return cases


def _bystander_answered(stack: Stack, key: str) -> httpx.Response:
    return httpx.post(
        f"{stack.url}/v1/chat/completions",
        json={"model": EMBEDDED_MODEL, "messages": HELLO, "max_tokens": 1},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )


def test_fuzz_chat_through_the_real_engine(engine_fuzz_stack, request, record_property):
    stack = engine_fuzz_stack
    auth = {"Authorization": f"Bearer {stack.api_keys['fuzzer']}", "OpenAI-Project": "fuzz/main"}
    bystander_key = stack.api_keys["bystander"]
    _, port = stack.servers[0]
    run = FuzzRun(log_path=stack.var_dir / f"daphne-{port}.log")
    started = time.monotonic()
    try:
        with httpx.Client(base_url=stack.url, headers=auth, timeout=60) as client:
            for name, body in _hard_for_the_engine():
                send(run, client, "hard for the engine", "POST", "/v1/chat/completions",
                     content=json.dumps(body).encode(), describe=f"{name}: {body}")  # fmt: skip
                response = _bystander_answered(stack, bystander_key)
                if response.status_code != 200:
                    run.findings.append(
                        Finding(
                            "another tenant",
                            f"a plain request right after {name!r}",
                            response.status_code,
                            "another organization was refused after this case",
                            response.text,
                            "",
                        )
                    )
        schema = schemathesis.openapi.from_dict(_short_generations_document(stack))
        operation = schema["/chat/completions"]["POST"]
        fuzz_operation(
            run,
            operation,
            GenerationMode.POSITIVE,
            SCHEMATHESIS_EXAMPLES,
            requests.Session(),
            f"{stack.url}/v1",
            auth,
        )
        response = _bystander_answered(stack, bystander_key)
        if response.status_code != 200:
            run.findings.append(
                Finding(
                    "another tenant",
                    "a plain request after the run",
                    response.status_code,
                    "another organization was refused",
                    response.text,
                    "",
                )  # fmt: skip
            )
    finally:
        report(run, request.config, record_property, name="real engine")
    fail_on_findings(run, name="real engine", elapsed=time.monotonic() - started)
