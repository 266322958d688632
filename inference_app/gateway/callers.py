"""Who is calling: an API key (plus OpenAI-Project header) or a signed-in user, as a Caller.

Resolution reads the database at most once every few seconds per key and project (TTLCache):
the hot path of a busy key costs a SHA-256 and two dict lookups. A revoked key stops working at
once in the process that revoked it (accounts.api_key_revoke calls forget_key), and so does a
user removed from an organization (forget_user); any other process sees either within
CACHE_SECONDS.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import time

from django.conf import settings
from django.utils import timezone

from inference_app.gateway import errors
from inference_app.gateway.db_threads import run_db
from inference_app.gateway.ttl_cache import TTLCache
from inference_app.models import (
    API_KEY_LOOKUP_CHARS,
    API_KEY_PREFIX,
    ApiKey,
    Profile,
    hash_api_key,
)
from inference_app.projects import project_for_user

log = logging.getLogger(__name__)

CACHE_SECONDS = settings.GATEWAY_CACHE_SECONDS
# last_used_at is for people reading the key list; minute precision is plenty.
LAST_USED_PRECISION_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class Caller:
    user_id: int
    organization_id: int
    team: str
    project: str
    project_id: int
    api_key_prefix: str
    source: str
    user_concurrency: int
    project_concurrency: int
    # The project's "store request and response bodies" switch (traces keep metadata only
    # when off); cached with the other project fields, like a renamed project, for seconds.
    store_bodies: bool = True


@dataclasses.dataclass(frozen=True)
class _KeyRow:
    key_id: int
    key_hash: str
    user_id: int
    usable: bool  # not revoked and the user is active


_keys = TTLCache(CACHE_SECONDS)
_projects = TTLCache(CACHE_SECONDS)
_last_touched: dict[int, float] = {}


def forget_key(prefix: str) -> None:
    """Drop a key from this process's cache, so its next request reads it again (revocation)."""
    _keys.discard(prefix)


def forget_user(user_id: int) -> None:
    """Drop a user's keys and projects from this process's cache, so their next request reads
    their memberships again (removal from an organization ends access at once here)."""
    # Keys are cached by prefix (False for an unknown prefix), projects by (user_id, path).
    _keys.discard_where(lambda _prefix, row: row is not False and row.user_id == user_id)
    _projects.discard_where(lambda key, _fields: key[0] == user_id)


def clear_caches() -> None:
    """Forget cached keys and projects (tests; an operator's changes otherwise apply in seconds)."""
    _keys.clear()
    _projects.clear()
    _last_touched.clear()


async def resolve_api_caller(
    authorization_header: str | None, openai_project_header: str | None
) -> Caller:
    """The caller behind `Authorization: Bearer ys-...` and `OpenAI-Project: team/project`."""
    raw_key = _bearer_token(authorization_header)
    prefix = raw_key[:API_KEY_LOOKUP_CHARS]
    row = _keys.get(prefix)
    if row is None:
        row = await run_db(_load_key, prefix)
        _keys.set(prefix, row)
    if row is False or not row.usable:
        raise errors.invalid_api_key()
    # Compare the hash on every request: the cache is keyed by the public prefix only.
    if not _hash_matches(row.key_hash, raw_key):
        raise errors.invalid_api_key()
    caller = await _caller_for(
        row.user_id, (openai_project_header or "").strip() or None, prefix, "api"
    )
    await _touch_key(row.key_id)
    return caller


async def resolve_session_caller(user, project_path: str | None, source: str = "playground"):
    """The caller for a signed-in user (websocket or page), in `project_path` or their default."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        raise errors.invalid_api_key()
    return await _caller_for(user.pk, (project_path or "").strip() or None, "", source)


def _bearer_token(header: str | None) -> str:
    if not header:
        raise errors.invalid_api_key()
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(API_KEY_PREFIX):
        raise errors.invalid_api_key()
    if len(token) <= API_KEY_LOOKUP_CHARS or len(token) > 200:
        raise errors.invalid_api_key()
    return token


def _hash_matches(key_hash: str, raw_key: str) -> bool:
    return hmac.compare_digest(key_hash, hash_api_key(raw_key))


def _load_key(prefix: str) -> _KeyRow | bool:
    key = ApiKey.objects.select_related("user").filter(prefix=prefix).first()
    if key is None:
        return False
    return _KeyRow(
        key_id=key.pk,
        key_hash=key.key_hash,
        user_id=key.user_id,
        usable=key.revoked_at is None and key.user.is_active,
    )


async def _caller_for(user_id: int, project_path: str | None, prefix: str, source: str) -> Caller:
    cache_key = (user_id, project_path)
    fields = _projects.get(cache_key)
    if fields is None:
        fields = await run_db(_load_caller_fields, user_id, project_path)
        _projects.set(cache_key, fields)
    if fields is False:
        raise errors.invalid_api_key()
    return Caller(api_key_prefix=prefix, source=source, **fields)


def _load_caller_fields(user_id: int, project_path: str | None) -> dict | bool:
    """The project the user may use (named, default, or first) and the limits that apply."""
    project = project_for_user(user_id=user_id, path=project_path)
    if project is None:
        return False
    user_limit = (
        Profile.objects.filter(user_id=user_id).values_list("concurrency_limit", flat=True).first()
    )
    plan = project.team.organization.plan
    return {
        "user_id": user_id,
        "organization_id": project.team.organization_id,
        "team": project.team.name,
        "project": project.name,
        "project_id": project.pk,
        "store_bodies": project.store_call_bodies,
        "user_concurrency": user_limit
        or plan.user_concurrency
        or settings.DEFAULT_USER_CONCURRENCY,
        "project_concurrency": project.concurrency_limit
        or plan.project_concurrency
        or settings.DEFAULT_PROJECT_CONCURRENCY,
    }


async def _touch_key(key_id: int) -> None:
    """Record last use at most once a minute per key (one UPDATE a minute, not one a request)."""
    now = time.monotonic()
    if now - _last_touched.get(key_id, -LAST_USED_PRECISION_SECONDS) < LAST_USED_PRECISION_SECONDS:
        return
    _last_touched[key_id] = now
    try:
        await run_db(_write_last_used, key_id)
    except Exception:  # last_used_at is informational; never fail a request over it
        log.exception("could not record last use of API key %s", key_id)


def _write_last_used(key_id: int) -> None:
    ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())
