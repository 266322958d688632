# The gateway tests' fixtures live in gateway_world.py (with the fake engine they use).
from tests.inference_app.gateway_world import fake_engine, world  # noqa: F401
