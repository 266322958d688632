"""Fixtures for the in-process gateway tests: a small world (org, team, projects, keys, models)
and a fake engine installed at the one engine seam (engine_client's httpx transport).

Everything above the transport is the real code: views, auth, concurrency, billing, settlement.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import uuid

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from billing.models import Organization, Reservation, UsageRecord
from billing.organizations import membership_set, organization_create
from inference_app.accounts import api_key_create, default_project_set, team_add_member
from inference_app.gateway import (
    callers,
    concurrency,
    engine_client,
    model_list,
    routing,
    settlement,
)
from inference_app.models import CatalogModel, Deployment, Project, Team

TEXT_MODEL = "test/text-model"
VISION_MODEL = "test/vision-model"
UNDEPLOYED_MODEL = "test/undeployed-model"
TWO_DEPLOYMENTS_MODEL = "test/two-deployments"
TEXT_CONTEXT = 2048
HELLO = [{"role": "user", "content": "Say hello."}]


def reset_gateway_state() -> None:
    callers.clear_caches()
    routing.clear_caches()
    model_list.clear_caches()
    concurrency.reset_limiter()
    engine_client.install_transport(None)


class EngineStream(httpx.AsyncByteStream):
    """An SSE body that notices when the gateway closes it before the end (a cancellation)."""

    def __init__(self, engine: FakeEngine, events: list[bytes], fail_after: int | None) -> None:
        self.engine = engine
        self.events = events
        self.fail_after = fail_after
        self.finished = False

    async def __aiter__(self):
        self.engine.open_streams += 1
        try:
            for index, event in enumerate(self.events):
                if self.fail_after is not None and index == self.fail_after:
                    raise httpx.ReadError("engine went away")
                if self.engine.token_delay and index:
                    await asyncio.sleep(self.engine.token_delay)
                yield event
            self.finished = True
        finally:
            self.engine.open_streams -= 1

    async def aclose(self) -> None:
        if not self.finished:
            self.engine.cancelled_streams += 1


@dataclasses.dataclass
class FakeEngine:
    """Answers chat completions per host: 'ok', 'refuse', 'http429', 'http500', 'http503',
    'http400',
    'break' (stream fails after two tokens), 'garbage' (200 with a body that is no completion),
    'burst' (a stream that arrives in one read).
    Records every request it gets."""

    behaviour: dict[str, str] = dataclasses.field(default_factory=dict)
    tokens: list[str] = dataclasses.field(
        default_factory=lambda: ["Hello", " there", ",", " friend", "!"]
    )
    send_usage: bool = True
    prompt_tokens: int = 7  # what the engine reports counting in the prompt
    token_delay: float = 0.0
    requests: list[tuple[str, dict]] = dataclasses.field(default_factory=list)
    cancelled_streams: int = 0
    open_streams: int = 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def hosts_called(self) -> list[str]:
        return [host for host, _ in self.requests]

    async def handle(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        behaviour = self.behaviour.get(host, "ok")
        if behaviour == "refuse":
            raise httpx.ConnectError("Connection refused", request=request)
        if request.method == "GET" and request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": []})
        payload = json.loads(request.content)
        self.requests.append((host, payload))
        if behaviour == "http500":
            return httpx.Response(500, json={"error": {"message": "boom"}})
        if behaviour == "http429":
            return httpx.Response(429, json={"error": {"message": "slow down"}})
        if behaviour == "http503":
            return httpx.Response(503, json={"error": {"message": "busy"}})
        if behaviour == "http400":
            return httpx.Response(
                400, json={"error": {"message": "the request exceeds the context size"}}
            )
        if behaviour == "garbage":
            if payload.get("stream"):
                return httpx.Response(200, content=b"data: [1, 2]\n\ndata: [DONE]\n\n")
            return httpx.Response(200, content=b"<html>proxy error</html>")
        prompt_tokens = self.prompt_tokens
        if not payload.get("stream"):
            body = {
                "id": "engine-id",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": payload["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(self.tokens)},
                        "finish_reason": "stop",
                    }
                ],
            }
            if self.send_usage:
                body["usage"] = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(self.tokens),
                    "total_tokens": prompt_tokens + len(self.tokens),
                }
            return httpx.Response(200, json=body)
        events = []
        base = {"id": "engine-id", "object": "chat.completion.chunk", "created": 1}
        base["model"] = payload["model"]
        for index, token in enumerate(self.tokens):
            delta = {"role": "assistant", "content": token} if index == 0 else {"content": token}
            events.append({**base, "choices": [{"index": 0, "delta": delta}]})
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if self.send_usage and (payload.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(self.tokens)}
            events.append({**base, "choices": [], "usage": usage})
        lines = [f"data: {json.dumps(event)}\n\n".encode() for event in events]
        lines.append(b"data: [DONE]\n\n")
        if behaviour == "burst":  # the whole stream in one network read
            return httpx.Response(
                200, headers={"content-type": "text/event-stream"}, content=b"".join(lines)
            )
        fail_after = 2 if behaviour == "break" else None
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            stream=EngineStream(self, lines, fail_after),
        )


@dataclasses.dataclass
class World:
    user: object
    organization: Organization
    project: Project
    other_project: Project  # in a team the user is not a member of
    second_project: Project  # the user's, not the default
    raw_key: str
    key_prefix: str

    def headers(self, project: str | None = "team-a/main", key: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {key or self.raw_key}"}
        if project is not None:
            headers["OpenAI-Project"] = project
        return headers


def make_world() -> World:
    """Org on the Free plan (with credits), team-a/main (default) and team-a/second for the
    user, team-b/secret for someone else; text, vision, undeployed and two-deployment models."""
    suffix = uuid.uuid4().hex[:6]
    org = organization_create(name="Acme", slug=f"acme-{suffix}")
    user = get_user_model().objects.create_user(f"alice-{suffix}", password="pw-123456789")
    membership_set(organization=org, user=user, role="admin")
    team = Team.objects.create(organization=org, name="team-a")
    team_add_member(team=team, user=user)
    project = Project.objects.create(team=team, name="main")
    second = Project.objects.create(team=team, name="second")
    default_project_set(user=user, project=project)
    other_team = Team.objects.create(organization=org, name="team-b")
    other = Project.objects.create(team=other_team, name="secret")
    key, raw = api_key_create(user=user, name="tests")

    def model(model_id: str, **fields) -> CatalogModel:
        defaults = {
            "display_name": model_id.split("/")[1],
            "context_window": TEXT_CONTEXT,
            "total_params_b": "1",
            "description": "A model for tests.",
            "input_price_micros": 1_000_000,
            "output_price_micros": 2_000_000,
        }
        return CatalogModel.objects.create(model_id=model_id, **{**defaults, **fields})

    text = model(TEXT_MODEL)
    # An image bound that fits this small context window (the default is Llama 4 Scout's).
    vision = model(VISION_MODEL, modality="text+vision", image_tokens_max=576)
    model(UNDEPLOYED_MODEL)
    two = model(TWO_DEPLOYMENTS_MODEL)
    Deployment.objects.create(
        model=text, name="text-a", base_url="http://engine-a.test/v1", upstream_model="up-text"
    )
    Deployment.objects.create(model=vision, name="vision-a", base_url="http://engine-v.test/v1")
    # Weight makes the first deployment the certain first choice; failover must find the second.
    Deployment.objects.create(
        model=two, name="two-first", base_url="http://engine-1.test/v1", weight=1_000_000
    )
    Deployment.objects.create(model=two, name="two-second", base_url="http://engine-2.test/v1")
    return World(
        user=user,
        organization=org,
        project=project,
        other_project=other,
        second_project=second,
        raw_key=raw,
        key_prefix=key.prefix,
    )


async def post_chat(
    world: World | None,
    body: dict | None = None,
    *,
    project: str | None = "team-a/main",
    raw: bytes | None = None,
    headers: dict | None = None,
):
    """POST /v1/chat/completions through Django's AsyncClient, as `world`'s key (None: no key)."""
    from django.test import AsyncClient

    auth = world.headers(project) if world is not None else {}
    return await AsyncClient().post(
        "/v1/chat/completions",
        data=raw if raw is not None else json.dumps(body),
        content_type="application/json",
        headers={**auth, **(headers or {})},
    )


@pytest.fixture
async def nothing_taken(world):
    """Asserts, after the test, that the refused request left no trace."""
    before = await ledger(world)
    yield
    assert await ledger(world) == before
    assert await slots_in_use(world) == (0, 0)


async def ledger(world: World) -> dict:
    """The ledger once every background settlement has been written."""
    await settlement.drain()
    return await sync_to_async(ledger_state)(world)


async def usage_rows() -> list[UsageRecord]:
    await settlement.drain()
    return await sync_to_async(lambda: list(UsageRecord.objects.order_by("pk")))()


def ledger_state(world: World) -> dict:
    org = Organization.objects.get(pk=world.organization.pk)
    return {
        "usage_rows": UsageRecord.objects.count(),
        "reservations": Reservation.objects.count(),
        "balance": org.balance_micros,
        "reserved": org.reserved_micros,
    }


async def slots_in_use(world: World) -> tuple[int, int]:
    limiter = concurrency.get_limiter()
    return (
        await limiter.in_flight(user_id=world.user.pk),
        await limiter.in_flight(project_id=world.project.pk),
    )


@pytest.fixture
def fake_engine(settings):
    """The engine seam replaced by a fake; in-process concurrency counters; fresh caches."""
    settings.REDIS_URL = ""
    settings.BLOCKED_COUNTRIES = []
    reset_gateway_state()
    engine = FakeEngine()
    engine_client.install_transport(engine.transport())
    yield engine
    reset_gateway_state()


@pytest.fixture
async def settlements_drained():
    """Background settlements finish inside the test that started them (before the flush)."""
    yield
    # Bounded: a report the database keeps refusing is retried for ever, by design.
    await settlement.drain(timeout=10)


@pytest.fixture
def world(transactional_db, fake_engine, settlements_drained) -> World:
    return make_world()


@dataclasses.dataclass
class AsgiResult:
    status: int
    headers: dict[str, str]
    body_parts: list[bytes]
    messages_received: int = 0  # how many times the app called `receive`
    messages_sent: list[dict] = dataclasses.field(default_factory=list)  # all it sent

    @property
    def body(self) -> bytes:
        return b"".join(self.body_parts)


_asgi_app = None


def gateway_asgi_app():
    """The HTTP application of inference_app/asgi.py (what daphne runs): the API plane for
    /v1/ and /otel/, Django for everything else. Built once, as a server does (Django's
    middleware set-up is slow); inference_app.asgi itself is not imported, it patches daphne."""
    global _asgi_app
    if _asgi_app is None:
        from django.core.handlers.asgi import ASGIHandler

        from inference_app.api.asgi import api_plane, route_api_apart

        _asgi_app = route_api_apart(api_app=api_plane(), site_app=ASGIHandler())
    return _asgi_app


async def asgi_request(
    method: str,
    path: str,
    *,
    headers: dict[str, str],
    body: bytes = b"",
    disconnect_after_parts: int | None = None,
    timeout: float = 10.0,
    body_parts: list[bytes] | None = None,
    messages: list[dict] | None = None,
) -> AsgiResult:
    """Drive the product's ASGI HTTP app (gateway_asgi_app) directly, as a server does: raw
    headers (so Content-Length can lie or be absent, as with a chunked body), the body in
    `body_parts` (one `http.request` message each; `messages` replaces them all, e.g. an
    early `http.disconnect`), and, optionally, a client that hangs up after reading some body
    parts of the response. Once the messages run out, `receive` waits, as a server's does until
    the client leaves. Host is "testserver" unless given (route_api_apart checks it)."""
    inbox: asyncio.Queue = asyncio.Queue()
    if messages is None:
        parts = body_parts if body_parts is not None else [body]
        messages = [
            {"type": "http.request", "body": part, "more_body": index < len(parts) - 1}
            for index, part in enumerate(parts)
        ]
    for message in messages:
        await inbox.put(message)
    result = AsgiResult(status=0, headers={}, body_parts=[])

    async def receive():
        result.messages_received += 1
        return await inbox.get()

    async def send(message):
        result.messages_sent.append(message)
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body" and message.get("body"):
            result.body_parts.append(message["body"])
            if disconnect_after_parts is not None and len(result.body_parts) == (
                disconnect_after_parts
            ):
                await inbox.put({"type": "http.disconnect"})

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    if not any(name == b"host" for name, _ in raw_headers):
        raw_headers.append((b"host", b"testserver"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await asyncio.wait_for(gateway_asgi_app()(scope, receive, send), timeout)
    return result
