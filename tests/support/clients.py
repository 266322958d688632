"""The official `openai` client (and a raw httpx one) pointed at a live stack."""

import json
import time

import httpx
import openai


class RequestCounter:
    """Counts the HTTP requests a client really sends (to prove it did not retry)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, request) -> None:
        self.count += 1

    async def async_hook(self, request) -> None:
        self.count += 1


def openai_client(
    url: str, key: str, project: str | None = None, *, counter: RequestCounter | None = None, **kw
) -> openai.OpenAI:
    kw.setdefault("timeout", 60)
    if counter is not None:
        kw["http_client"] = openai.DefaultHttpxClient(event_hooks={"request": [counter]})
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, project=project, **kw)


def async_openai_client(
    url: str, key: str, project: str | None = None, *, counter: RequestCounter | None = None, **kw
) -> openai.AsyncOpenAI:
    kw.setdefault("timeout", 60)
    if counter is not None:
        kw["http_client"] = openai.DefaultAsyncHttpxClient(
            event_hooks={"request": [counter.async_hook]}
        )
    return openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, project=project, **kw)


def api_headers(key: str, project: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if project:
        headers["OpenAI-Project"] = project
    return headers


def create_once_a_slot_is_free(client: openai.OpenAI, *, timeout: float = 5.0, **kwargs):
    """chat.completions.create, retried while it gets 429 concurrency_limit_reached: a slot
    released by a finished or dropped request may take a moment to come back. The last 429
    is raised when `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.chat.completions.create(**kwargs)
        except openai.RateLimitError as error:
            if error.code != "concurrency_limit_reached" or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def stream_then_hang_up(url: str, key: str, project: str, body: dict, *, chunks: int) -> int:
    """POST a streaming chat completion with httpx, read `chunks` chunks that carry content,
    then close the connection mid-stream (a client going away). Returns the chunks read."""
    read = 0
    with httpx.stream(
        "POST",
        f"{url}/v1/chat/completions",
        json={**body, "stream": True},
        headers=api_headers(key, project),
        timeout=60,
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[len("data: ") :])
            if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                read += 1
            if read >= chunks:
                break
    return read
