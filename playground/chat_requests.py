"""The chat-completions body the Playground sends: built from the UI's model, messages and params.

static/js/chat_ui.js builds the same body for the "View code" panel; this module is the
server's copy, which decides what is actually sent, so the browser cannot smuggle other fields.
"""

# UI parameter -> the type it must have in the OpenAI body.
_NUMERIC_PARAMS = {
    "temperature": float,
    "top_p": float,
    "presence_penalty": float,
    "frequency_penalty": float,
    "max_tokens": int,
    "seed": int,
}
MAX_STOP_SEQUENCES = 4
# Compare shows up to this many panes; one socket runs at most this many at once.
MAX_PANES = 6


class PlaygroundRequestError(ValueError):
    """A run message the consumer cannot turn into a request (shown in the pane)."""


def _messages(raw) -> list[dict]:
    if not isinstance(raw, list) or not raw:
        raise PlaygroundRequestError("Type a message first.")
    messages = []
    for item in raw:
        if not isinstance(item, dict) or item.get("role") not in ("system", "user", "assistant"):
            raise PlaygroundRequestError("Messages must have a role of system, user or assistant.")
        content = item.get("content")
        if not isinstance(content, str | list):
            raise PlaygroundRequestError("Message content must be text.")
        messages.append({"role": item["role"], "content": content})
    return messages


def chat_body_build(*, model, messages, params) -> dict:
    """The streaming request for one pane; the gateway validates it further (400/404/413)."""
    if not isinstance(model, str) or not model:
        raise PlaygroundRequestError("Choose a model.")
    body: dict = {"model": model, "messages": _messages(messages)}
    params = params if isinstance(params, dict) else {}
    for name, cast in _NUMERIC_PARAMS.items():
        value = params.get(name)
        if value is None or value == "":
            continue
        try:
            body[name] = cast(value)
        except (TypeError, ValueError):
            raise PlaygroundRequestError(f"{name} must be a number.") from None
    stop = params.get("stop")
    if isinstance(stop, list):
        stop = [s for s in stop if isinstance(s, str) and s]
        if len(stop) > MAX_STOP_SEQUENCES:
            raise PlaygroundRequestError(f"At most {MAX_STOP_SEQUENCES} stop sequences.")
        if stop:
            body["stop"] = stop
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    return body
