"""A stored call as code to run it again: curl and the openai Python client.

The key is always `$YARDSTICK_API_KEY` (the environment variable), never a real one: a stored
body holds no key, and a snippet is copied into chats and tickets.
"""

from __future__ import annotations

import json
import keyword
import shlex

# Sent by the gateway's clients as request metadata, not parameters a user chose.
_LEFT_OUT = {"stream_options"}


def _body(inputs: dict) -> dict:
    return {key: value for key, value in inputs.items() if key not in _LEFT_OUT}


def call_as_curl(inputs: dict, project_path: str, base_url: str) -> str:
    body = _body(inputs)
    lines = [
        f"curl {shlex.quote(base_url.rstrip('/') + '/chat/completions')} \\",
        '  -H "Content-Type: application/json" \\',
        '  -H "Authorization: Bearer $YARDSTICK_API_KEY" \\',
        f"  -H {shlex.quote('OpenAI-Project: ' + project_path)} \\",
    ]
    if body.get("stream"):
        lines.append("  --no-buffer \\")
    # shlex.quote: a message with a quote in it stays one shell word.
    lines.append(f"  -d {shlex.quote(json.dumps(body, indent=2, ensure_ascii=False))}")
    return "\n".join(lines)


def call_as_python(inputs: dict, project_path: str, base_url: str) -> str:
    body = _body(inputs)
    args = "\n".join(_argument(key, value) for key, value in body.items())
    lines = [
        "import os",
        "",
        "import openai",
        "",
        "client = openai.OpenAI(",
        f"    base_url={_py(base_url.rstrip('/'), 1)},",
        '    api_key=os.environ["YARDSTICK_API_KEY"],',
        f"    project={_py(project_path, 1)},",
        ")",
        "",
    ]
    if body.get("stream"):
        lines += [
            "stream = client.chat.completions.create(",
            args,
            ")",
            "for chunk in stream:",
            "    if chunk.choices and chunk.choices[0].delta.content:",
            '        print(chunk.choices[0].delta.content, end="", flush=True)',
            "print()",
        ]
    else:
        lines += [
            "response = client.chat.completions.create(",
            args,
            ")",
            "print(response.choices[0].message.content)",
        ]
    return "\n".join(lines)


def _argument(key: str, value) -> str:
    if key.isidentifier() and not keyword.iskeyword(key):
        return f"    {key}={_py(value, 1)},"
    return f"    **{{{_py(key, 1)}: {_py(value, 1)}}},"


def _py(value, indent: int) -> str:
    """A Python literal for a JSON value (True/False/None, not true/false/null)."""
    pad = "    " * (indent + 1)
    end = "    " * indent
    if value is None:
        return "None"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + "".join(f"{pad}{_py(item, indent + 1)},\n" for item in value) + end + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = "".join(
            f"{pad}{json.dumps(str(key), ensure_ascii=False)}: {_py(item, indent + 1)},\n"
            for key, item in value.items()
        )
        return "{\n" + items + end + "}"
    return json.dumps(str(value))
