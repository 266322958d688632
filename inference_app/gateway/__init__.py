"""The gateway: every chat completion (API or playground) goes through `start_chat_completion`.

Modules, one concept each: admission (country block, size limit), errors, requests (the
request schema), tokens (counting), callers (who is calling), routing (deployments and health),
engine_client (HTTP to engines), concurrency (slots), credit_holds (each request's worst case,
held before the engine call), settlement (usage rows, written in the background, never lost),
pipeline (the path of one call).
"""

from inference_app.gateway.callers import Caller, resolve_api_caller, resolve_session_caller
from inference_app.gateway.errors import GatewayError
from inference_app.gateway.pipeline import ChatCall, start_chat_completion

__all__ = [
    "Caller",
    "ChatCall",
    "GatewayError",
    "resolve_api_caller",
    "resolve_session_caller",
    "start_chat_completion",
]
