"""Fixtures that run the product for real: daphne processes, the embedded and the fake engine.

Stacks are module- or package-scoped: starting one costs a few seconds (migrate, seed, daphne),
so tests in one module share it and compare usage rows before and after, never absolute counts.
"""

import pytest

from tests.support.engines import start_embedded_engine, start_fake_engine
from tests.support.processes import SERVERS
from tests.support.stack import Stack, sqlite_database_url
from tests.support.world import FAKE_ENGINE_OVERRIDES, standard_world


@pytest.fixture(scope="session")
def embedded_engine(tmp_path_factory):
    """The REAL embedded engine (SmolLM2 on llama.cpp), started once for tests marked `engine`."""
    engine = start_embedded_engine(var_dir=tmp_path_factory.mktemp("embedded-engine"))
    yield engine
    engine.stop()


@pytest.fixture(scope="package")
def fake_engine(tmp_path_factory):
    """bench/fake_engine.py: 16 tokens at once by default; model "slow-model" streams slowly."""
    engine = start_fake_engine(
        var_dir=tmp_path_factory.mktemp("fake-engine"), model_overrides=FAKE_ENGINE_OVERRIDES
    )
    yield engine
    engine.stop()


@pytest.fixture(scope="package", params=SERVERS)
def sqlite_stack(request, tmp_path_factory, fake_engine):
    """One server on a SQLite file with the standard world (tests/support/world.py), once per
    ASGI server the API runs under: daphne (the whole product), uvicorn and granian (the API
    plane on its own). The tests that use it are the live API tests; they run against each.

    Geographic blocking is on for country XX; bodies over 1 MB are refused.
    """
    var_dir = tmp_path_factory.mktemp(f"sqlite-stack-{request.param}")
    stack = Stack(
        server=request.param,
        database_url=sqlite_database_url(var_dir),
        var_dir=var_dir,
        env={"BLOCKED_COUNTRIES": "XX", "MAX_REQUEST_BYTES": str(1_000_000)},
    )
    try:
        stack.migrate()
        stack.seed(standard_world(fake_engine_url=fake_engine.base_url))
        stack.start_servers(1)
        yield stack
    finally:
        stack.stop()
