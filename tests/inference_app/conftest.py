# The gateway tests' fixtures live in gateway_world.py (with the fake engine they use).
from tests.inference_app.gateway_world import (  # noqa: F401
    fake_engine,
    nothing_taken,
    settlements_drained,
    world,
)
