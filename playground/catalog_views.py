"""The Inference page (model cards) and one model's page."""

import html
import json

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils.safestring import mark_safe

from playground.chat_requests import MAX_PANES
from playground.model_health import with_health
from playground.selectors import catalog_cards, catalog_model_find, current_project

# The examples never hold a real key: the reader exports their own.
KEY_VARIABLE = "YARDSTICK_API_KEY"


def api_base_url(request) -> str:
    """Base URL for the openai client: SITE_URL when the operator set it, else this request's."""
    if settings.SITE_URL:
        return settings.SITE_URL.rstrip("/") + "/v1"
    return request.build_absolute_uri("/v1")


@login_required
def inference(request):
    return render(
        request,
        "inference/index.html",
        {
            "models": with_health(catalog_cards()),  # each card says whether its engines answer
            "compare_hint": "compare" in request.GET,
            "max_selected": MAX_PANES,  # Compare shows at most this many panes
        },
    )


@login_required
def model_detail(request, model_id: str):
    model = catalog_model_find(model_id=model_id)
    if model is None:
        return render(
            request,
            "404.html",
            {"missing_model": model_id, "back_url": "/inference/", "back_label": "the models"},
            status=404,
        )
    project = current_project(user=request.user)
    project_path = project.path if project else "<your-team>/<your-project>"
    base_url = api_base_url(request)
    return render(
        request,
        "inference/model_detail.html",
        {
            "model": model,
            "base_url": base_url,
            "project_path": project_path,
            "examples": code_examples(base_url, project_path, model.model_id),
        },
    )


def code_examples(base_url: str, project: str, model_id: str) -> list[dict]:
    """The model page's request examples: tab id, label, highlight.js language, code."""
    q = json.dumps  # a JSON / Python / JavaScript string literal
    messages_json = (
        '    "messages": [\n'
        '      {"role": "system", "content": "You are a helpful assistant."},\n'
        '      {"role": "user", "content": "Tell me a joke."}\n'
        "    ]"
    )
    curl = (
        f"curl {base_url}/chat/completions \\\n"
        '  -H "Content-Type: application/json" \\\n'
        f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
        f'  -H "OpenAI-Project: {project}" \\\n'
        "  -d '{\n"
        f'    "model": {q(model_id)},\n'
        f"{messages_json}\n"
        "  }'"
    )
    python_client = (
        "import os\n\n"
        "import openai\n\n"
        "client = openai.OpenAI(\n"
        f"    base_url={q(base_url)},\n"
        f'    api_key=os.environ["{KEY_VARIABLE}"],\n'
        f"    project={q(project)},  # the team/project usage is tracked against\n"
        ")\n"
    )
    python_messages = (
        "    messages=[\n"
        '        {"role": "system", "content": "You are a helpful assistant."},\n'
        '        {"role": "user", "content": "Tell me a joke."},\n'
        "    ],\n"
    )
    python = (
        f"{python_client}\n"
        "response = client.chat.completions.create(\n"
        f"    model={q(model_id)},\n"
        f"{python_messages}"
        ")\n"
        "print(response.choices[0].message.content)"
    )
    streaming = (
        f"{python_client}\n"
        "stream = client.chat.completions.create(\n"
        f"    model={q(model_id)},\n"
        f"{python_messages}"
        "    stream=True,\n"
        ")\n"
        "for chunk in stream:\n"
        "    if chunk.choices and chunk.choices[0].delta.content:\n"
        '        print(chunk.choices[0].delta.content, end="", flush=True)\n'
        "print()"
    )
    javascript = (
        "// npm install openai  (works the same in TypeScript)\n"
        'import OpenAI from "openai";\n\n'
        "const client = new OpenAI({\n"
        f"  baseURL: {q(base_url)},\n"
        f"  apiKey: process.env.{KEY_VARIABLE},\n"
        f"  project: {q(project)},\n"
        "});\n\n"
        "const completion = await client.chat.completions.create({\n"
        f"  model: {q(model_id)},\n"
        "  messages: [\n"
        '    { role: "system", content: "You are a helpful assistant." },\n'
        '    { role: "user", content: "Tell me a joke." },\n'
        "  ],\n"
        "});\n"
        "console.log(completion.choices[0].message.content);"
    )
    models = (
        f"curl {base_url}/models \\\n"
        f'  -H "Authorization: Bearer ${KEY_VARIABLE}" \\\n'
        f'  -H "OpenAI-Project: {project}"'
    )
    examples = [
        {"id": "curl", "label": "curl", "language": "bash", "code": curl},
        {"id": "python", "label": "Python", "language": "python", "code": python},
        {"id": "streaming", "label": "Streaming", "language": "python", "code": streaming},
        {
            "id": "javascript",
            "label": "JavaScript / TS",
            "language": "javascript",
            "code": javascript,
        },
        {"id": "models", "label": "/v1/models", "language": "bash", "code": models},
    ]
    for example in examples:
        # Element text needs only & and < escaped: quotes stay readable quotes in the page source.
        example["code_html"] = mark_safe(html.escape(example["code"], quote=False))  # noqa: S308
    return examples
