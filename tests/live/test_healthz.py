"""GET /healthz against a live daphne: the database and each deployment are named."""

import json
import uuid

import httpx
import pytest

from tests.support.stack import Stack


def test_healthz_is_200_and_names_the_database_and_each_deployment(sqlite_stack):
    response = httpx.get(f"{sqlite_stack.url}/healthz", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert "database" in body, body
    assert "deployments" in body, body
    listed = json.dumps(body["deployments"])
    for name in ("fake-fast", "fake-slow", "fake-vision", "down"):
        assert name in listed, body


@pytest.mark.scaled
def test_healthz_is_not_200_when_the_database_is_down(postgres_server_url, tmp_path):
    # A database that does not exist: the server starts, but every query fails.
    stack = Stack(
        database_url=f"{postgres_server_url}/yardstick_missing_{uuid.uuid4().hex[:8]}",
        var_dir=tmp_path,
    )
    try:
        stack.start_servers(1)
        response = httpx.get(f"{stack.url}/healthz", timeout=10)
        assert response.status_code >= 500, response.text
        assert "database" in response.json()
    finally:
        stack.stop()
