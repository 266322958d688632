"""The Members page in Debian's Chromium: an admin opens it from the header, removes a member
(htmx, after the confirm dialog) and the row goes; at a desktop and at a phone's width."""

import pytest

from billing.models import Membership
from inference_app.accounts import (
    default_project_set,
    project_create,
    team_add_member,
    team_create,
)
from inference_app.models import TeamMembership
from tests.billing.conftest import make_org, make_user

pytestmark = pytest.mark.browser

LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def members_world(transactional_db):
    org = make_org(plan_code="pro", name="Acme Research")
    admin = make_user(organization=org, role=Membership.Role.ADMIN, username="org-admin")
    admin.email = "admin@acme-research.example"
    admin.save(update_fields=["email"])
    research = team_create(organization=org, name="acme-research")
    evals = team_create(organization=org, name="acme-evaluations")
    team_add_member(team=research, user=admin)
    # A project, so the header's project switcher is there too (it must fit on a phone).
    default_project_set(user=admin, project=project_create(team=research, name="chatbot"))
    people = {}
    for name, role in [("grace", "admin"), ("linus", "member"), ("margaret", "member")]:
        user = make_user(organization=org, role=role, username=name)
        user.email = f"{name}@acme-research.example"
        user.save(update_fields=["email"])
        team_add_member(team=research, user=user)
        if name != "grace":
            team_add_member(team=evals, user=user)
        people[name] = user
    return org, admin, people


@pytest.mark.parametrize("width", [1440, 390])
def test_admin_removes_a_member_from_the_page(
    members_world, live_server, chromium_executable, artifacts_dir, width
):
    from playwright.sync_api import expect, sync_playwright

    org, _, people = members_world
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_executable, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
        try:
            page.goto(f"{live_server.url}/accounts/login/?next=/billing/")
            page.fill("input[name=username]", "org-admin")
            page.fill("input[name=password]", "pw-123456789")
            page.click("button[type=submit]")
            page.wait_for_url(f"{live_server.url}/billing/")
            if width < 720:
                # A phone's header folds its links under Menu.
                expect(page.locator(".topnav")).to_be_hidden()
                page.get_by_role("button", name="Menu").click()
            else:
                expect(page.get_by_role("button", name="Menu")).to_be_hidden()
            page.locator(".topnav").get_by_role("link", name="Members").click()
            page.wait_for_url(f"{live_server.url}/billing/members/")
            if width < 720:
                page.get_by_role("button", name="Menu").click()
                expect(page.get_by_role("button", name="Menu")).to_have_attribute(
                    "aria-expanded", "true"
                )
            linus = page.get_by_test_id("member-linus")
            expect(linus).to_contain_text("acme-evaluations")
            expect(page.get_by_role("heading", name="4 members")).to_be_visible()
            members_link = page.locator(".topnav").get_by_role("link", name="Members")
            for link in page.locator(".topnav a").all():  # every link fits the screen
                box = link.bounding_box()
                assert box and box["x"] + box["width"] <= width, link.inner_text()
            assert members_link.is_visible()
            # The one-admin rule is visible before it is enforced: here there are two admins.
            expect(page.get_by_test_id("member-org-admin").get_by_role("button", name="Remove"))
            page.screenshot(path=str(artifacts_dir / f"members-{width}.png"), full_page=True)

            linus.get_by_role("button", name="Remove").click()
            expect(page.get_by_role("status")).to_have_text("linus was removed from Acme Research.")
            expect(page.get_by_test_id("member-linus")).to_have_count(0)
            expect(page.get_by_role("heading", name="3 members")).to_be_visible()
            assert dialogs and "Remove linus from Acme Research?" in dialogs[0]
            assert page.url == f"{live_server.url}/billing/members/"  # htmx: no navigation
            page.screenshot(
                path=str(artifacts_dir / f"members-removed-{width}.png"), full_page=True
            )
            assert errors == []
        finally:
            browser.close()
    assert not Membership.objects.filter(organization=org, user=people["linus"]).exists()
    assert not TeamMembership.objects.filter(user=people["linus"]).exists()
