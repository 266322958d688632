"""The chat-completions body the Playground sends: built from the UI's model, messages and params.

static/js/chat_ui.js builds the same body for the "View code" panel; this module is the
server's copy, which decides what is actually sent, so the browser cannot smuggle other fields.
The gateway validates the body it gets like any API request's (types, ranges, JSON values);
this module only has to turn the UI's loose values (numbers typed as text) into a body, and
refuse, as a 400, what it cannot turn into one.
"""

import math

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
    """A run message the consumer cannot turn into a request (shown in the pane as a 400)."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def _messages(raw) -> list[dict]:
    if not isinstance(raw, list) or not raw:
        raise PlaygroundRequestError("Type a message first.", "messages")
    messages = []
    for item in raw:
        if not isinstance(item, dict) or item.get("role") not in ("system", "user", "assistant"):
            raise PlaygroundRequestError(
                "Messages must have a role of system, user or assistant.", "messages"
            )
        content = item.get("content")
        if not isinstance(content, str | list):
            raise PlaygroundRequestError("Message content must be text.", "messages")
        messages.append({"role": item["role"], "content": content})
    return messages


def _number(name: str, value, cast: type) -> int | float:
    """`value` as the param's type: JSON numbers, or text the UI's inputs hold ("0.5").

    Only finite numbers, and whole ones for integer params: json.loads reads 1e309 as
    infinity and accepts NaN, which int() refuses with OverflowError or ValueError and float()
    lets through, and 1.5 tokens would silently become 1.
    """
    wanted = "a whole number" if cast is int else "a number"
    problem = PlaygroundRequestError(f"{name} must be {wanted}.", name)
    if isinstance(value, str):
        try:
            value = float(value) if cast is float or "." in value else int(value)
        except ValueError:  # not a number, or past int()'s 4,300 digits
            raise problem from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise problem
    if isinstance(value, float):
        if not math.isfinite(value) or (cast is int and not value.is_integer()):
            raise problem
        return cast(value)
    if cast is float:
        try:
            return float(value)
        except OverflowError:  # an integer of some 309 digits or more
            raise problem from None
    return value


def chat_body_build(*, model, messages, params) -> dict:
    """The streaming request for one pane; the gateway validates it further (400/404/413)."""
    if not isinstance(model, str) or not model:
        raise PlaygroundRequestError("Choose a model.", "model")
    body: dict = {"model": model, "messages": _messages(messages)}
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise PlaygroundRequestError("The parameters must be an object.", "params")
    for name, cast in _NUMERIC_PARAMS.items():
        value = params.get(name)
        if value is None or value == "":
            continue
        body[name] = _number(name, value, cast)
    stop = params.get("stop")
    if isinstance(stop, list):
        stop = [s for s in stop if isinstance(s, str) and s]
        if len(stop) > MAX_STOP_SEQUENCES:
            raise PlaygroundRequestError(f"At most {MAX_STOP_SEQUENCES} stop sequences.", "stop")
        if stop:
            body["stop"] = stop
    # JSON mode / JSON schema: passed on as given; the gateway checks its shape (400).
    response_format = params.get("response_format")
    if response_format is not None:
        if not isinstance(response_format, dict):
            raise PlaygroundRequestError(
                "The response format must be an object.", "response_format"
            )
        body["response_format"] = response_format
    body["stream"] = True
    body["stream_options"] = {"include_usage": True}
    return body
