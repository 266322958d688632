"""Fuzzing /v1/ on a live daphne (bench's fake engine behind it): no input may get a 5xx, and
every refusal has OpenAI's error body {"error": {"message", "type", "param", "code"}}.

Three sources of cases, each bounded and derandomized, so that a run is reproducible and the
whole module takes well under a minute (about 35 s here):

- Schemathesis, from the document the server itself serves at /v1/openapi.json: positive cases
  (valid by the document) and negative ones (each breaks it somewhere: a wrong type, a missing
  field, a number out of range, a header that does not match);
- Hypothesis: a valid request with one part replaced by what a schema-driven generator never
  sends (lone surrogates, 1e309, NaN, 400-digit integers, nesting hundreds deep);
- a fixed list of hostile requests: bodies that are not JSON or not UTF-8, 100,000 levels deep,
  oversized (declared and chunked); bad keys and projects; wrong methods and strange paths.

Findings are collected rather than raised at the first, so that one run reports them all, each
with the request that caused it and the traceback the server logged. The count of cases and of
5xx is written to the terminal summary (and recorded as a property for junit reports).
"""

from __future__ import annotations

import json
import math
import time

import httpx
import pytest
import requests
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from inference_app.api.openapi import CHAT_REQUEST_EXAMPLES
from tests.support.fuzzing import (
    Finding,
    FuzzRun,
    answer_problem,
    fail_on_findings,
    fuzz_operation,
    hypothesis_settings,
    report,
    send,
)
from tests.support.stack import Stack, sqlite_database_url
from tests.support.world import FAST_MODEL, VISION_MODEL

pytestmark = pytest.mark.fuzz

MAX_REQUEST_BYTES = 200_000
PROJECT = "fuzz/main"
OTHER_TENANTS_PROJECT = "other/secret"
DEPLOYED_MODELS = [FAST_MODEL, VISION_MODEL]

# Examples per operation and mode. Chat completions is where the parsing is; the GET endpoints
# take only a header and a path parameter.
CHAT_EXAMPLES = 200
GET_EXAMPLES = 15
HOSTILE_JSON_EXAMPLES = 200


# --- the stack -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory, fake_engine):
    """A stack of its own: fuzzing spends credits and may leave a deployment marked sick, which
    must not change what the other live tests see. No deployment here is down on purpose, so any
    503 is a finding too."""
    var_dir = tmp_path_factory.mktemp("fuzz-stack")
    stack = Stack(
        database_url=sqlite_database_url(var_dir),
        var_dir=var_dir,
        env={"BLOCKED_COUNTRIES": "XX", "MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES)},
    )
    try:
        stack.migrate()
        stack.seed(_world(fake_engine.base_url))
        stack.start_servers(1)
        yield stack
    finally:
        stack.stop()


def _world(engine_url: str) -> dict:
    return {
        "organizations": [
            # Enough credits that no case is refused for quota: 1,000 USD.
            {"slug": "fuzz", "plan": "free", "balance_micros": 1_000_000_000},
            {"slug": "other", "plan": "free"},
        ],
        "users": [
            {"username": "fuzzer", "organization": "fuzz", "role": "admin"},
            {"username": "other", "organization": "other", "role": "admin"},
            {"username": "member", "organization": "fuzz", "role": "member"},
        ],
        "teams": [
            {"name": "fuzz", "organization": "fuzz", "members": ["fuzzer", "member"]},
            {"name": "other", "organization": "other", "members": ["other"]},
        ],
        "projects": [
            {"team": "fuzz", "name": "main", "default_for": ["fuzzer", "member"]},
            {"team": "other", "name": "secret", "default_for": ["other"]},
        ],
        "deployments": [
            {"name": "fuzz-fast", "model": FAST_MODEL, "base_url": engine_url},
            {"name": "fuzz-vision", "model": VISION_MODEL, "base_url": engine_url},
        ],
        "api_keys": [
            {"label": "fuzzer", "user": "fuzzer"},
            {"label": "revoked", "user": "fuzzer", "revoked": True},
            {"label": "member", "user": "member"},  # not an admin: billing is a 403
        ],
    }


# --- the cases -------------------------------------------------------------------------------
def _fuzz_document(stack: Stack) -> dict:
    """The served document, with the model ids narrowed to deployed ones, so that valid cases
    get past the model lookup and reach the engine (negative cases still send any string)."""
    response = httpx.get(f"{stack.url}/v1/openapi.json", timeout=10)
    response.raise_for_status()
    document = response.json()
    schemas = document["components"]["schemas"]
    schemas["ChatCompletionRequest"]["properties"]["model"] = {"enum": DEPLOYED_MODELS}
    for parameter in document["paths"]["/models/{model}"]["get"]["parameters"]:
        if parameter.get("name") == "model":
            parameter["schema"] = {"enum": DEPLOYED_MODELS}
    return document


def _run_schemathesis(run: FuzzRun, stack: Stack, auth: dict[str, str]) -> None:
    schema = schemathesis.openapi.from_dict(_fuzz_document(stack))
    session = requests.Session()
    base_url = f"{stack.url}/v1"
    for result in schema.get_all_operations():
        operation = result.ok()
        examples = CHAT_EXAMPLES if operation.method.upper() == "POST" else GET_EXAMPLES
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz_operation(run, operation, mode, examples, session, base_url, auth)


def _valid_body() -> dict:
    return {"model": FAST_MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}


# Values no JSON-Schema generator produces; `json.dumps` writes them as JSON text Python's own
# parser accepts (NaN, Infinity, \ud800...).
_hostile_scalars = st.one_of(
    st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3),  # lone surrogates
    st.text(alphabet=st.characters(codec=None), max_size=20).map(lambda s: s + "\ud800"),
    st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -0.0, 5e-324]),
    st.integers(min_value=10**18, max_value=10**400),
    st.integers(max_value=-(10**18), min_value=-(10**400)),
    st.sampled_from(["", "\x00", "\u202e", "𝓍" * 1000, "a" * 60_000]),
    st.booleans(),
    st.none(),
)


def _nested(depth: int, leaf) -> object:
    for _ in range(depth):
        leaf = [leaf]
    return leaf


_hostile_values = st.one_of(
    _hostile_scalars,
    st.recursive(
        _hostile_scalars,
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=5), children, max_size=3)
        ),
        max_leaves=8,
    ),
    # Past the gateway's nesting limit, short of this process's own recursion limit in json.dumps.
    st.builds(_nested, st.integers(min_value=50, max_value=500), _hostile_scalars),
)

# Where in a valid request the hostile value goes.
_PLACES = [
    ("model",),
    ("messages",),
    ("messages", 0),
    ("messages", 0, "role"),
    ("messages", 0, "content"),
    ("messages", 0, "name"),
    ("max_tokens",),
    ("max_completion_tokens",),
    ("temperature",),
    ("top_p",),
    ("n",),
    ("seed",),
    ("stop",),
    ("stream",),
    ("stream_options",),
    ("tools",),
    ("tool_choice",),
    ("response_format",),
    ("user",),
    ("logit_bias",),  # not validated by the gateway: passed to the engine as is
]


def _place(body: dict, path: tuple, value: object) -> dict:
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


def _run_hostile_json(run: FuzzRun, client: httpx.Client) -> None:
    @hypothesis_settings(HOSTILE_JSON_EXAMPLES)
    @given(
        path=st.sampled_from(_PLACES),
        value=_hostile_values,
        stream=st.booleans(),
    )
    def one_case(path, value, stream):
        body = _place(_valid_body(), path, value)
        if stream and path != ("stream",):
            body["stream"] = True
        raw = json.dumps(body).encode()  # ensure_ascii: lone surrogates travel as \ud800
        send(run, client, "hostile json", "POST", "/v1/chat/completions", content=raw)

    one_case()


def _run_fixed_hostile(run: FuzzRun, client: httpx.Client, keys: dict[str, str]) -> None:
    key = keys["fuzzer"]
    chat = "/v1/chat/completions"
    bearer = f"Bearer {key}"

    def post(body: bytes, **headers) -> None:
        send(run, client, "hostile fixed", "POST", chat, content=body, headers=headers)

    def post_json(body: object, **headers) -> None:
        post(json.dumps(body).encode(), **headers)

    valid = _valid_body()
    # Not JSON, not an object, not UTF-8.
    for raw in [b"", b"{", b"not json", b"[]", b"null", b'"x"', b"1", b"\xff\xfe\x00",
                b"\xef\xbb\xbf" + json.dumps(valid).encode(), json.dumps(valid).encode("utf-16"),
                b'{"model": "a", "messages": [}', b"{" * 10]:  # fmt: skip
        post(raw)
    # Nesting: a few hundred levels (parsed), 100,000 levels (past the parser's recursion).
    for depth in (500, 1_000, 100_000):
        post(b'{"model":"%s","messages":[{"role":"user","content":"Hi"}],"x":%s1%s}' % (
            FAST_MODEL.encode(), b"[" * depth, b"]" * depth))  # fmt: skip
        post(b"[" * depth + b"]" * depth)
        post(b'{"a":' * depth + b"1" + b"}" * depth)
    # Huge and strange numbers where numbers go.
    for name, text in [
        ("max_tokens", b"1e309"),
        ("max_tokens", b"1" + b"0" * 400),
        ("max_tokens", b"1" * 5000),
        ("max_tokens", b"-1"),
        ("max_tokens", b"1.5"),
        ("max_tokens", b"NaN"),
        ("temperature", b"NaN"),
        ("temperature", b"Infinity"),
        ("temperature", b"-Infinity"),
        ("temperature", b"1e309"),
        ("top_p", b"-0"),
        ("seed", b"1" + b"0" * 400),
        ("seed", b"-1" + b"0" * 30),
        ("n", b"1e2"),
        ("presence_penalty", b"1e-400"),
    ]:
        without = {k: v for k, v in valid.items() if k != name}
        body = json.dumps(without).encode()[:-1] + b',"%s":%s}' % (name.encode(), text)
        post(body)
        post(body[:-1] + b',"stream":true}')
    # Lone surrogates and control characters where strings go.
    for place in [("model",), ("messages", 0, "content"), ("messages", 0, "role"), ("user",),
                  ("stop",), ("messages", 0, "name")]:  # fmt: skip
        for text in ["\ud800", "\udfff", "a\udc00b", "\x00", "\u0085\u2028"]:
            post_json(_place(_valid_body(), place, text))
            post_json({**_place(_valid_body(), place, text), "stream": True})
    post_json({**valid, "messages": [{"role": "user", "content": [{"type": "text",
              "text": "\ud800"}]}]})  # fmt: skip
    # Wrong types, everywhere.
    for place, value in [
        (("messages",), "Hi"),
        (("messages",), [1]),
        (("messages",), [[]]),
        (("messages", 0, "content"), 5),
        (("messages", 0, "content"), [{"type": "text"}]),
        (("messages", 0, "content"), [{"type": "image_url", "image_url": "x"}]),
        (("messages", 0, "content"), [{"type": "video", "video": {}}]),
        (("messages", 0, "content"), [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]),
        (("messages", 0, "role"), 7),
        (("stream",), "yes"),
        (("stream_options",), []),
        (("stream_options",), {"include_usage": "yes"}),
        (("stop",), [1, 2]),
        (("stop",), ["a"] * 50),
        (("tools",), "x"),
        (("tools",), [{"type": "function"}]),
        (("tools",), [{"type": "function", "function": {"name": 5}}]),
        (("tools",), [{"type": "function", "function": {"name": "f", "parameters": "x"}}]),
        (("tool_choice",), 5),
        (("tool_choice",), {"type": "function"}),
        (("response_format",), "json"),
        (("response_format",), {"type": "json_schema"}),
        (("response_format",), {"type": "json_schema", "json_schema": {"schema": 5}}),
        (("logit_bias",), {"x": "y"}),
        (("n",), 0),
        (("n",), 1000),
    ]:  # fmt: skip
        post_json(_place(_valid_body(), place, value))
        post_json({**_place(_valid_body(), place, value), "stream": True})
    for model in [VISION_MODEL, FAST_MODEL]:
        post_json({**valid, "model": model, "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 1000}}]}]})  # fmt: skip
    # A context window's worth, and more, in one message (under the size limit).
    post_json({**valid, "messages": [{"role": "user", "content": "word " * 39_000}]})
    post_json({**valid, "messages": [{"role": "user", "content": "a"}] * 5_000})
    post_json({**valid, "max_tokens": 10**9})
    # Oversized: declared, then chunked (no Content-Length).
    post(b'{"x":"' + b"a" * (MAX_REQUEST_BYTES + 10) + b'"}')
    post(b'{"x":"' + b"a" * (MAX_REQUEST_BYTES * 3) + b'"}')
    send(run, client, "hostile fixed", "POST", chat,
          content=iter([b'{"x":"', b"a" * (MAX_REQUEST_BYTES + 10), b'"}']),  # type: ignore[arg-type]
          describe=f"POST {chat} chunked body of {MAX_REQUEST_BYTES + 18} bytes")  # fmt: skip
    # Bad keys, projects, countries: on every endpoint.
    for method, path, body in [
        ("POST", chat, json.dumps(valid).encode()),
        ("GET", "/v1/models", None),
        ("GET", f"/v1/models/{FAST_MODEL}", None),
        ("GET", "/v1/billing/balance", None),
    ]:
        for headers in [
            {"Authorization": None},
            {"Authorization": "Bearer "},
            {"Authorization": "Bearer"},
            {"Authorization": "Basic " + key},
            {"Authorization": "Bearer ys-" + "x" * 10_000},
            {"Authorization": "Bearer ys-\x7f"},
            {"Authorization": bearer + " extra"},
            {"Authorization": "bearer " + key},
            {"Authorization": "Bearer " + keys["revoked"]},
            {"Authorization": "Bearer " + keys["member"]},
            {"Authorization": "Bearer " + keys["member"], "OpenAI-Project": "fuzz/nope"},
            {"OpenAI-Project": OTHER_TENANTS_PROJECT},
            {"OpenAI-Project": "fuzz"},
            {"OpenAI-Project": "fuzz/main/extra"},
            {"OpenAI-Project": "../.."},
            {"OpenAI-Project": "/"},
            {"OpenAI-Project": "fuzz/" + "x" * 5000},
            {"OpenAI-Project": "fuzz/ma\u00efn"},
            {"OpenAI-Project": "fuzz/main\x00"},
            {"CF-IPCountry": "XX"},
            {"CF-IPCountry": "\u00ff"},
            {"Content-Type": "text/plain"},
            {"Content-Type": "multipart/form-data; boundary=x"},
        ]:
            send(run, client, "hostile fixed", method, path, content=body, headers=headers)
    send(run, client, "hostile fixed", "POST", chat, content=json.dumps(valid).encode(),
          headers={"Authorization": "Bearer " + "\u00e9"})  # fmt: skip
    # Wrong methods, strange paths.
    for method in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"]:
        send(run, client, "hostile fixed", method, chat)
    for method in ["POST", "PUT", "DELETE"]:
        for path in ["/v1/models", "/v1/billing/balance", f"/v1/models/{FAST_MODEL}"]:
            send(run, client, "hostile fixed", method, path, content=b"{}")
    for path in [
        "/v1/models/%00",
        "/v1/models/%ff",
        "/v1/models/%ed%a0%80",  # an encoded lone surrogate
        "/v1/models/..%2F..%2Fadmin",
        "/v1/models/" + "x" * 8000,
        "/v1/models//",
        "/v1/",
        "/v1/%2e%2e/",
        "/v1/chat/completions/",
        "/v1/chat/completions%00",
        "/v1/\u00e9",
    ]:
        send(run, client, "hostile fixed", "GET", path)


def _run_documented_examples(run: FuzzRun, client: httpx.Client) -> None:
    """The document's own request examples: each must succeed, not only avoid a 5xx."""
    for name, example in CHAT_REQUEST_EXAMPLES.items():
        response = client.post("/v1/chat/completions", json=example["value"])
        run.judge(
            "documented examples",
            f"POST /v1/chat/completions example {name!r}",
            response.status_code,
            response.headers.get("content-type", ""),
            response.content,
        )
        if 400 <= response.status_code < 500:  # (a 5xx is a finding already)
            run.findings.append(
                Finding(
                    source="documented examples",
                    request=f"example {name!r}",
                    status=response.status_code,
                    problem="a documented example was refused",
                    body=response.text,
                    server_log="",
                )
            )


def _check_aftermath(run: FuzzRun, stack: Stack, auth: dict[str, str]) -> None:
    """What hundreds of bad requests must not leave behind: a credit hold that is never
    released, or a model taken down for everyone (one tenant's bad input is its own 400)."""
    deadline = time.monotonic() + 10
    while stack.unsettled_requests() and time.monotonic() < deadline:
        time.sleep(0.1)
    if held := stack.unsettled_requests():
        run.findings.append(
            Finding(
                "aftermath", "(all of the above)", 0, f"{held} credit holds never released", "", ""
            )
        )
    for model in DEPLOYED_MODELS:
        response = httpx.post(
            f"{stack.url}/v1/chat/completions",
            json={**_valid_body(), "model": model},
            headers=auth,
            timeout=30,
        )
        if response.status_code != 200:
            run.findings.append(
                Finding(
                    "aftermath",
                    f"a plain request to {model} after the run",
                    response.status_code,
                    "the model no longer answers",
                    response.text,
                    "",
                )
            )


def test_fuzz_v1(fuzz_stack, request, record_property):
    key = fuzz_stack.api_keys["fuzzer"]
    auth = {"Authorization": f"Bearer {key}", "OpenAI-Project": PROJECT}
    _, port = fuzz_stack.servers[0]
    run = FuzzRun(log_path=fuzz_stack.var_dir / f"daphne-{port}.log")
    started = time.monotonic()
    try:
        with httpx.Client(base_url=fuzz_stack.url, headers=auth, timeout=30) as client:
            _run_documented_examples(run, client)
            _run_fixed_hostile(run, client, fuzz_stack.api_keys)
            _run_hostile_json(run, client)
        _run_schemathesis(run, fuzz_stack, auth)
        _check_aftermath(run, fuzz_stack, auth)
    finally:
        report(run, request.config, record_property, name="api")
    fail_on_findings(run, name="api", elapsed=time.monotonic() - started)


# --- the judge itself ------------------------------------------------------------------------
_ERROR = b'{"error":{"message":"Bad","type":"invalid_request_error","param":null,"code":null}}'


@pytest.mark.parametrize(
    ("status", "content_type", "body", "expected"),
    [
        (200, "application/json", b"{}", None),
        (400, "application/json", _ERROR, None),
        (413, "application/json; charset=utf-8", _ERROR, None),
        (200, "text/event-stream", b"data: {}\n\ndata: [DONE]\n\n", None),
        (500, "application/json", _ERROR, "server error"),
        (503, "application/json", _ERROR, "server error"),
        (0, "", b"", "connection closed without a response"),
        (400, "", b"", "error not in JSON (no content type)"),
        (400, "text/html", b"<h1>Bad Request</h1>", "error not in JSON (text/html)"),
        (404, "application/json", b"{", "error body is not JSON"),
        (400, "application/json", b'{"detail":"x"}', "error body not in OpenAI's shape"),
        (
            400,
            "application/json",
            _ERROR[:-2] + b',"extra":1}}',
            "error body not in OpenAI's shape",
        ),
        (
            400,
            "application/json",
            _ERROR.replace(b'"Bad"', b'""'),
            "error body not in OpenAI's shape",
        ),
        (
            200,
            "text/event-stream",
            b'data: {}\n\ndata: {"error":{"message":"m","type":"server_error","param":null,'
            b'"code":"server_error"}}\n\n',
            "stream ended with an error event (server_error)",
        ),
        (
            200,
            "text/event-stream",
            b'data: {"error":"x"}\n\n',
            "stream error event not in OpenAI's shape",
        ),
    ],
)
def test_the_judge_flags_what_it_must(status, content_type, body, expected):
    assert answer_problem(status, content_type, body) == expected
