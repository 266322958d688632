"""The gateway's errors, in OpenAI's error body: {"error": {"message", "type", "param", "code"}}.

Every rejection the API, the playground and the tests see is one of these constructors, so the
status, message and code of each documented error live in one place.
"""

from __future__ import annotations


class GatewayError(Exception):
    """An error answered to the caller, before or during a response."""

    def __init__(
        self,
        *,
        status: int,
        message: str,
        type: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def __repr__(self) -> str:
        return f"GatewayError({self.status}, {self.code!r}, {self.message!r})"


def invalid_api_key(message: str = "Invalid Authentication") -> GatewayError:
    return GatewayError(
        status=401, message=message, type="invalid_request_error", code="invalid_api_key"
    )


def unsupported_country() -> GatewayError:
    return GatewayError(
        status=403,
        message="Country, region, or territory not supported",
        type="request_forbidden",
        code="unsupported_country_region_territory",
    )


def permission_denied(message: str) -> GatewayError:
    """A valid caller asking for something their role does not allow (e.g. billing, non-admin)."""
    return GatewayError(
        status=403, message=message, type="permission_error", code="permission_denied"
    )


def concurrency_limit_reached(retry_after_seconds: int = 1) -> GatewayError:
    return GatewayError(
        status=429,
        message="Concurrency limit reached for requests",
        type="rate_limit_error",
        code="concurrency_limit_reached",
        headers={"Retry-After": str(retry_after_seconds)},
    )


def insufficient_quota() -> GatewayError:
    # The openai client retries every 429 unless told not to; a quota error never heals by itself.
    return GatewayError(
        status=429,
        message="You exceeded your current quota, please check your plan and billing details",
        type="insufficient_quota",
        code="insufficient_quota",
        headers={"x-should-retry": "false"},
    )


def server_error(
    message: str = "The server had an error while processing your request",
) -> GatewayError:
    return GatewayError(status=500, message=message, type="server_error", code="server_error")


def engine_overloaded() -> GatewayError:
    return GatewayError(
        status=503,
        message="The engine is currently overloaded, please try again later",
        type="server_error",
        code="engine_overloaded",
    )


def model_unavailable(model: str) -> GatewayError:
    """No deployment of the model answers (all out of rotation, or none took the connection):
    the engine is down, not busy, so "overloaded" would send the caller to retry in vain."""
    return GatewayError(
        status=503,
        message=f"The model `{model}` is unavailable right now.",
        type="server_error",
        code="model_unavailable",
    )


def model_not_found(model: str) -> GatewayError:
    return GatewayError(
        status=404,
        message=f"The model `{model}` does not exist or you do not have access to it.",
        type="invalid_request_error",
        code="model_not_found",
        param="model",
    )


def invalid_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(
        status=400,
        message=message,
        type="invalid_request_error",
        code="invalid_request_error",
        param=param,
    )


def request_too_large(limit_bytes: int) -> GatewayError:
    return GatewayError(
        status=413,
        message=f"Request body too large: the limit is {limit_bytes} bytes.",
        type="invalid_request_error",
        code="request_too_large",
    )


def not_found(path: str) -> GatewayError:
    return GatewayError(
        status=404,
        message=f"Unknown request URL: {path}",
        type="invalid_request_error",
        code="unknown_url",
    )


def method_not_allowed(method: str, path: str) -> GatewayError:
    return GatewayError(
        status=405,
        message=f"Method {method} is not allowed on {path}",
        type="invalid_request_error",
        code="method_not_allowed",
    )
