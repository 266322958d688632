"""The accounts and deployments live tests run against, as a seed spec (tests/support/seed.py).

Three organizations: acme (Free plan, with credits), rival (another team) and broke (Free plan,
credits spent). Catalog models are mapped to engines by role, so each test picks the behaviour
it needs by model id.
"""

from tests.support.stack import CLOSED_ENGINE_URL

EMBEDDED_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
FAST_MODEL = "meta-llama/Llama-3.1-8B-Instruct"  # the fake engine, answers at once
SLOW_MODEL = "meta-llama/Llama-3.3-70B-Instruct"  # the fake engine, streams SLOW_TOKENS_PER_SECOND
VISION_MODEL = "meta-llama/Llama-4-Scout-17B-16E-Instruct"  # text+vision, the fake engine
DOWN_MODEL = "microsoft/Phi-4-mini-instruct"  # its only deployment points at a closed port
UNDEPLOYED_MODEL = "deepseek-ai/DeepSeek-R1-0528"  # in the catalog, no deployment

# The fake engine's "slow-model": long enough that a test can hold a stream open.
SLOW_UPSTREAM = "slow-model"
SLOW_TOKENS_PER_SECOND = 20
SLOW_TOKENS = 400
FAKE_ENGINE_OVERRIDES = {
    SLOW_UPSTREAM: {"tokens": SLOW_TOKENS, "tokens_per_second": SLOW_TOKENS_PER_SECOND}
}

# Projects (team/project) with their own concurrency limits, one per test that fills them.
MAIN_PROJECT = "acme/main"
SOLO_PROJECT = "acme/solo"  # limit 1: the concurrency 429
DROP_PROJECT = "acme/drop"  # limit 1: the disconnect test
RIVAL_PROJECT = "rival/secret"
BROKE_PROJECT = "broke/lab"


def fake_deployments(fake_engine_url: str) -> list[dict]:
    """FAST_MODEL and SLOW_MODEL served by the fake engine (seed spec entries)."""
    return [
        {"name": "fake-fast", "model": FAST_MODEL, "base_url": fake_engine_url},
        {
            "name": "fake-slow",
            "model": SLOW_MODEL,
            "base_url": fake_engine_url,
            "upstream_model": SLOW_UPSTREAM,
        },
    ]


def standard_world(*, fake_engine_url: str | None, embedded: bool = False) -> dict:
    deployments = [{"name": "down", "model": DOWN_MODEL, "base_url": CLOSED_ENGINE_URL}]
    if fake_engine_url:
        deployments += [
            *fake_deployments(fake_engine_url),
            {"name": "fake-vision", "model": VISION_MODEL, "base_url": fake_engine_url},
        ]
    return {
        "embedded_deployment": embedded,
        "organizations": [
            {"slug": "acme", "plan": "free"},
            {"slug": "rival", "plan": "free"},
            {"slug": "broke", "plan": "free", "balance_micros": 0},
        ],
        "users": [
            # A high personal limit, so the project limits are the ones under test.
            {"username": "alice", "organization": "acme", "role": "admin", "concurrency_limit": 50},
            {"username": "bob", "organization": "rival", "role": "admin"},
            {"username": "carol", "organization": "broke", "role": "admin"},
        ],
        "teams": [
            {"name": "acme", "organization": "acme", "members": ["alice"]},
            {"name": "rival", "organization": "rival", "members": ["bob"]},
            {"name": "broke", "organization": "broke", "members": ["carol"]},
        ],
        "projects": [
            {"team": "acme", "name": "main", "default_for": ["alice"]},
            {"team": "acme", "name": "solo", "concurrency_limit": 1},
            {"team": "acme", "name": "drop", "concurrency_limit": 1},
            {"team": "rival", "name": "secret", "default_for": ["bob"]},
            {"team": "broke", "name": "lab", "default_for": ["carol"]},
        ],
        "deployments": deployments,
        "api_keys": [
            {"label": "alice", "user": "alice"},
            {"label": "alice-revoked", "user": "alice", "revoked": True},
            {"label": "bob", "user": "bob"},
            {"label": "carol", "user": "carol"},
        ],
    }
