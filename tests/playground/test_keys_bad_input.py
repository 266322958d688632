"""The API keys page never answers 5xx to a hostile form: bad key ids are 400, others' are 404."""

import pytest

from inference_app.accounts import api_key_create
from inference_app.models import ApiKey
from tests.playground.conftest import make_member

pytestmark = pytest.mark.django_db

FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def keys(client, member):
    user, _ = member
    client.force_login(user)
    mine, _ = api_key_create(user=user, name="mine")
    other_user, _ = make_member("bob")
    theirs, _ = api_key_create(user=other_user, name="theirs")
    return mine, theirs


def _all_active() -> bool:
    return not ApiKey.objects.filter(revoked_at__isnull=False).exists()


@pytest.mark.parametrize(
    "key_id",
    [
        "abc",
        "",
        " ",
        "-1",
        "0",
        "1.5",
        "1e3",
        "0x1",
        "１",  # a fullwidth digit: int() would accept it, a key id is ASCII
        "99999999999999999999999",
        "\x00",
        "1" * 5000,
    ],
)
def test_a_key_id_that_is_not_an_id_is_a_400_and_changes_nothing(client, keys, key_id):
    response = client.post("/settings/keys/", {"action": "revoke", "key_id": key_id})
    assert response.status_code == 400
    assert _all_active()


def test_a_missing_key_id_is_a_400(client, keys):
    assert client.post("/settings/keys/", {"action": "revoke"}).status_code == 400
    assert _all_active()


def test_an_id_that_is_not_yours_or_does_not_exist_is_a_404(client, keys):
    _, theirs = keys
    for key_id in (theirs.pk, theirs.pk + 1000, 2**63 - 1):
        response = client.post("/settings/keys/", {"action": "revoke", "key_id": str(key_id)})
        assert response.status_code == 404
    assert _all_active()


def test_several_key_ids_never_reach_another_users_key(client, keys):
    mine, theirs = keys
    client.post("/settings/keys/", {"action": "revoke", "key_id": [str(mine.pk), str(theirs.pk)]})
    theirs.refresh_from_db()
    assert theirs.is_active


@pytest.mark.parametrize(
    "name",
    ["%00", "x" * 10_000, "%ED%A0%80", "%FF%FE"],  # NUL, too long, a lone surrogate, not UTF-8
)
def test_a_hostile_key_name_is_answered_not_crashed(client, keys, name):
    response = client.post("/settings/keys/", f"action=create&name={name}", content_type=FORM)
    # Django decodes bad bytes as U+FFFD (a valid name) and refuses NUL and long names.
    assert response.status_code == 200


@pytest.mark.parametrize("body", ["action=revoke&key_id=%ED%A0%80", "action=%FF"])
def test_hostile_form_bytes_are_a_400_not_a_crash(client, keys, body):
    assert client.post("/settings/keys/", body, content_type=FORM).status_code == 400
    assert _all_active()


def test_an_unknown_or_missing_action_is_a_400(client, keys):
    assert client.post("/settings/keys/", {"action": "drop"}).status_code == 400
    assert client.post("/settings/keys/", {}).status_code == 400
