"""The OpenAPI document of /v1: valid, served without a key, and in step with the gateway."""

import json

import jsonschema
import pytest
import schemathesis
from channels.testing import HttpCommunicator
from openapi_spec_validator import validate

from inference_app.api.openapi import CHAT_REQUEST_EXAMPLES, build_document
from inference_app.asgi import application
from inference_app.gateway import requests as gateway_requests
from inference_app.gateway.requests import ChatRequest, parse_chat_request

DOCUMENT = build_document(max_request_bytes=1_000_000, image_max_bytes=100_000)


def _schema_of(name: str) -> dict:
    """A component schema that resolves its $refs inside the document."""
    return {**DOCUMENT, "$ref": f"#/components/schemas/{name}"}


def test_document_is_valid_openapi_3_1():
    validate(DOCUMENT)
    assert DOCUMENT["openapi"].startswith("3.1")


def test_schemathesis_loads_every_operation():
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} == {
        "POST /chat/completions",
        "GET /generation",
        "GET /models",
        "GET /models/{model}",
        "GET /billing/balance",
        "GET /openapi.json",
        "GET /datasets",
        "POST /datasets",
        "GET /evaluations",
        "POST /evaluations",
        "GET /evaluations/{evaluation_id}",
        "GET /evaluations/{evaluation_id}/results",
        "POST /evaluations/{evaluation_id}/cancel",
        "GET /leaderboards",
        "POST /leaderboards",
        "GET /leaderboards/{leaderboard_id}",
    }


def test_chat_completions_documents_every_error_status():
    responses = DOCUMENT["paths"]["/chat/completions"]["post"]["responses"]
    assert set(responses) == {"200", "400", "401", "403", "404", "413", "429", "500", "503"}
    assert set(responses["200"]["content"]) == {"application/json", "text/event-stream"}


def test_every_parameter_the_gateway_validates_is_documented():
    documented = DOCUMENT["components"]["schemas"]["ChatCompletionRequest"]
    gateway = ChatRequest.model_json_schema()
    assert set(gateway["properties"]) <= set(documented["properties"])
    assert set(gateway["required"]) == set(documented["required"])


def _documented_fields(schema: dict) -> set[str]:
    """Every property a schema (or any branch of it) lists, following $refs."""
    if "$ref" in schema:
        return _documented_fields(_component(schema["$ref"].rsplit("/", 1)[-1]))
    fields = set(schema.get("properties", {}))
    for branch in schema.get("oneOf", []) + schema.get("anyOf", []):
        fields |= _documented_fields(branch)
    return fields


def _component(name: str) -> dict:
    return DOCUMENT["components"]["schemas"][name]


def _request_property(name: str) -> dict:
    return _component("ChatCompletionRequest")["properties"][name]


@pytest.mark.parametrize(
    ("model", "documented"),
    [
        ("Message", lambda: _documented_fields(_component("Message"))),
        ("TextPart", lambda: _documented_fields(_component("TextContentPart"))),
        ("ImageUrlPart", lambda: _documented_fields(_component("ImageContentPart"))),
        (
            "ImageUrl",
            lambda: _documented_fields(_component("ImageContentPart")["properties"]["image_url"]),
        ),
        ("Tool", lambda: _documented_fields(_component("Tool"))),
        (
            "FunctionDefinition",
            lambda: _documented_fields(_component("Tool")["properties"]["function"]),
        ),
        (
            "JsonSchemaSpec",
            lambda: _documented_fields(
                _component("ResponseFormat")["oneOf"][2]["properties"]["json_schema"]
            ),
        ),
        ("StreamOptions", lambda: _documented_fields(_request_property("stream_options"))),
    ],
)
def test_every_nested_field_the_gateway_validates_is_documented(model, documented):
    # The document's request objects are closed (no other fields): a field the gateway learns
    # must be documented, or clients validating against the document could not send it.
    gateway_fields = set(getattr(gateway_requests, model).model_json_schema()["properties"])
    assert gateway_fields <= documented()


@pytest.mark.parametrize("name", sorted(CHAT_REQUEST_EXAMPLES))
def test_request_examples_are_valid_for_the_document_and_the_gateway(name):
    body = CHAT_REQUEST_EXAMPLES[name]["value"]
    jsonschema.validate(body, _schema_of("ChatCompletionRequest"))
    parse_chat_request(body)


def test_error_examples_have_openais_error_shape():
    responses = DOCUMENT["components"]["responses"]
    for response in responses.values():
        for example in response["content"]["application/json"]["examples"].values():
            jsonschema.validate(example["value"], _schema_of("Error"))
            assert set(example["value"]["error"]) == {"message", "type", "param", "code"}


def test_schema_examples_match_their_schemas():
    for name, schema in DOCUMENT["components"]["schemas"].items():
        for example in schema.get("examples", []):
            jsonschema.validate(example, _schema_of(name))


async def test_served_at_v1_openapi_json_without_a_key():
    communicator = HttpCommunicator(
        application, "GET", "/v1/openapi.json", headers=[(b"host", b"testserver")]
    )
    response = await communicator.get_response()
    headers = {k.decode().lower(): v.decode() for k, v in response["headers"]}
    assert response["status"] == 200
    assert headers["content-type"] == "application/json"
    # Through the API's own stack: the site's middleware (X-Frame-Options...) did not run.
    assert "x-frame-options" not in headers
    served = json.loads(response["body"])
    validate(served)
    assert served["paths"].keys() == DOCUMENT["paths"].keys()


async def test_other_methods_get_a_405_in_openais_shape():
    communicator = HttpCommunicator(
        application, "POST", "/v1/openapi.json", headers=[(b"host", b"testserver")]
    )
    response = await communicator.get_response()
    assert response["status"] == 405
    assert json.loads(response["body"])["error"]["code"] == "method_not_allowed"
