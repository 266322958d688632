"""Server-rendered pages: sign-up, the header, API keys, the Inference page, model pages."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from billing.models import Membership, Organization
from inference_app.accounts import api_key_create, project_create
from inference_app.catalog import ensure_embedded_deployment
from inference_app.models import ApiKey
from tests.playground.conftest import make_member

pytestmark = pytest.mark.django_db

SMOL = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture
def signed_in(client, member):
    user, project = member
    client.force_login(user)
    return user, project


def test_root_redirects_to_inference(client):
    assert client.get("/").headers["Location"] == "/inference/"


def test_pages_need_sign_in(client):
    for url in ("/inference/", "/playground/", "/playground/compare", "/settings/keys/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/accounts/login/")


def test_sign_up_creates_an_organization_on_free_with_credits_team_and_project(client):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "newbie",
            "email": "n@example.com",
            "password1": "a-Long-pass-42",
            "password2": "a-Long-pass-42",
        },
    )
    assert response.status_code == 302 and response.headers["Location"] == "/inference/"
    user = get_user_model().objects.get(username="newbie")
    membership = Membership.objects.get(user=user)
    assert membership.role == Membership.Role.ADMIN
    org = membership.organization
    assert org.plan.code == "free" and org.balance_micros > 0
    project = user.profile.default_project
    assert project.team.organization == org and user in project.team.members.all()
    # Signed in right away.
    assert client.get("/inference/").status_code == 200


def test_sign_up_twice_with_one_name_gets_free_slugs(client):
    make_member("taken", slug="taken")
    get_user_model().objects.filter(username="taken").update(username="taken-old")
    client.post(
        "/accounts/signup/",
        {"username": "taken", "password1": "a-Long-pass-42", "password2": "a-Long-pass-42"},
    )
    user = get_user_model().objects.get(username="taken")
    assert Organization.objects.filter(memberships__user=user).get().slug == "taken-2"


def test_sign_in_and_out(client, member):
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice"})
    assert response.status_code == 302 and response.headers["Location"] == "/inference/"
    assert "Sign out" in client.get("/inference/").content.decode()
    client.post("/accounts/logout/")
    assert client.get("/inference/").status_code == 302


def test_header_shows_billing_only_to_org_admins(client):
    admin, _ = make_member("boss")
    member, _ = make_member("worker", role=Membership.Role.MEMBER)
    client.force_login(admin)
    assert 'href="/billing/"' in client.get("/inference/").content.decode()
    client.force_login(member)
    page = client.get("/inference/").content.decode()
    assert 'href="/billing/"' not in page
    assert 'href="/settings/keys/"' in page and 'href="/playground/"' in page


def test_project_switch_only_among_own_projects(client, signed_in):
    user, project = signed_in
    other = project_create(team=project.team, name="other")
    _, foreign = make_member("mallory")
    response = client.post(reverse("project_switch"), {"project": other.pk, "next": "/playground/"})
    assert response.headers["Location"] == "/playground/"
    user.profile.refresh_from_db()
    assert user.profile.default_project == other
    assert "team-alice/other" in client.get("/inference/").content.decode()

    response = client.post(reverse("project_switch"), {"project": foreign.pk})
    assert response.status_code == 404
    user.profile.refresh_from_db()
    assert user.profile.default_project == other
    # htmx asks for a refresh instead of a redirect.
    response = client.post(
        reverse("project_switch"), {"project": project.pk}, HTTP_HX_REQUEST="true"
    )
    assert response.headers["HX-Refresh"] == "true"


def test_project_switch_ignores_offsite_next(client, signed_in):
    _, project = signed_in
    response = client.post(
        reverse("project_switch"), {"project": project.pk, "next": "https://evil.example/"}
    )
    assert response.headers["Location"] == "/inference/"


def test_api_key_created_is_shown_once_and_listed_by_prefix(client, signed_in):
    user, _ = signed_in
    response = client.post("/settings/keys/", {"action": "create", "name": "laptop"})
    assert "no-store" in response.headers["Cache-Control"]
    page = response.content.decode()
    key = ApiKey.objects.get(user=user)
    raw = page.split('<code id="new-key">')[1].split("</code>")[0]
    assert raw.startswith(key.prefix) and key.matches(raw)
    listing = client.get("/settings/keys/").content.decode()
    assert key.prefix in listing and "laptop" in listing
    assert raw not in listing


def test_api_key_htmx_create_renders_the_panel_partial(client, signed_in):
    response = client.post(
        "/settings/keys/", {"action": "create", "name": "ci"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<section id="keys-panel"')
    assert "<html" not in html and 'id="new-key"' in html


def test_api_keys_users_see_and_revoke_only_their_own(client, signed_in):
    user, _ = signed_in
    mine, _ = api_key_create(user=user, name="mine")
    other_user, _ = make_member("bob")
    theirs, _ = api_key_create(user=other_user, name="theirs")
    listing = client.get("/settings/keys/").content.decode()
    assert mine.prefix in listing and theirs.prefix not in listing

    assert (
        client.post("/settings/keys/", {"action": "revoke", "key_id": theirs.pk}).status_code == 404
    )
    theirs.refresh_from_db()
    assert theirs.is_active

    client.post("/settings/keys/", {"action": "revoke", "key_id": mine.pk})
    mine.refresh_from_db()
    assert not mine.is_active
    assert "Revoked" in client.get("/settings/keys/").content.decode()


def test_inference_page_shows_every_listed_model_with_its_facts(client, signed_in):
    ensure_embedded_deployment()
    html = client.get("/inference/").content.decode()
    assert html.count('<article class="model-card') == 7
    for text in (
        "DeepSeek R1-0528",
        "deepseek-ai/DeepSeek-R1-0528",
        "161K",
        "37B - 680B (Active - Total)",
        "8B (Total)",
        "Text, Vision",
        "$1.35 in",
        "$5.40 out",
        "Not available: no deployment",
    ):
        assert text in html, text
    # SmolLM2 is served (the embedded deployment): its card offers the Playground.
    smol = html.split(f'data-model-id="{SMOL}"')[1].split("</article>")[0]
    assert "Available" in smol and "Try in Playground" in smol


def test_model_page_has_details_and_examples_with_base_url_and_project(client, signed_in, settings):
    _, project = signed_in
    html = client.get(
        "/inference/models/meta-llama/Llama-4-Scout-17B-16E-Instruct"
    ).content.decode()
    assert "Llama 4 Scout" in html and "17B - 109B (Active - Total)" in html and "64K" in html
    assert "http://testserver/v1/chat/completions" in html
    assert f"OpenAI-Project: {project.path}" in html and f'project="{project.path}"' in html
    settings.SITE_URL = "https://inference.example.com/"
    html = client.get(
        "/inference/models/meta-llama/Llama-4-Scout-17B-16E-Instruct"
    ).content.decode()
    assert 'base_url="https://inference.example.com/v1"' in html
    assert client.get("/inference/models/nope/missing").status_code == 404


def test_playground_dropdown_lists_served_models_and_compare(client, signed_in):
    ensure_embedded_deployment()
    html = client.get("/playground/").content.decode()
    group = html.split('<optgroup label="Yardstick Inference">')[1].split("</optgroup>")[0]
    assert f'value="{SMOL}"' in group and 'value="__compare__">Compare<' in group
    assert "DeepSeek" not in group  # no deployment, not in the dropdown
    for param in (
        "temperature",
        "max_tokens",
        "top_p",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "stop",
    ):
        assert f'data-param="{param}"' in html
    assert 'data-param="presence_penalty" min="-2" max="2"' in html
    assert (
        "not served right now"
        in client.get("/playground/?model=deepseek-ai/DeepSeek-R1-0528").content.decode()
    )


def test_compare_page_carries_the_models_from_the_url(client, signed_in):
    ensure_embedded_deployment()
    html = client.get(
        f"/playground/compare?models={SMOL},{SMOL},microsoft/Phi-4-mini-instruct"
    ).content.decode()
    assert f'["{SMOL}", "{SMOL}", "microsoft/Phi-4-mini-instruct"]' in html
    # Fewer than two models: filled up to two panes.
    html = client.get(f"/playground/compare?models={SMOL}").content.decode()
    assert f'["{SMOL}", "{SMOL}"]' in html


def test_new_user_without_projects_still_gets_pages(client):
    user = get_user_model().objects.create_user("lonely")
    client.force_login(user)
    assert client.get("/inference/").status_code == 200
    assert client.get("/playground/").status_code == 200


def test_billing_link_shows_for_an_org_admin_without_projects(client):
    from billing.organizations import membership_set, organization_create

    admin = get_user_model().objects.create_user("lonely-admin", password="pw-123456789")
    org = organization_create(name="Lonely", slug="lonely")
    membership_set(organization=org, user=admin, role=Membership.Role.ADMIN)
    client.force_login(admin)
    assert 'href="/billing/"' in client.get("/inference/").content.decode()

    membership_set(organization=org, user=admin, role=Membership.Role.MEMBER)
    assert 'href="/billing/"' not in client.get("/inference/").content.decode()


@pytest.mark.django_db
def test_playground_and_compare_say_when_the_organization_is_out_of_credits(client):
    from billing.models import CreditGrant

    user, project = make_member("olive")
    client.force_login(user)
    for url in ("/playground/", "/playground/compare"):
        assert 'data-testid="out-of-credits"' not in client.get(url).content.decode()
    organization = project.team.organization
    CreditGrant.objects.filter(organization=organization).update(remaining_micros=0)
    Organization.objects.filter(pk=organization.pk).update(balance_micros=0)
    for url in ("/playground/", "/playground/compare"):
        html = client.get(url).content.decode()
        assert 'data-testid="out-of-credits"' in html and "/billing/plan/" in html
