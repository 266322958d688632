"""The project switcher's `next`: any value is answered with a redirect on this site, never a 500."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "next_url",
    ["abc", "home", "-1", "<script>", "%FF", "%ED%A0%80", "javascript:alert(1)", "//evil.example/"],
)
def test_a_next_that_is_not_a_path_on_this_site_goes_to_the_inference_page(
    client, member, next_url
):
    user, project = member
    client.force_login(user)
    response = client.post(
        reverse("project_switch"),
        f"project={project.pk}&next={next_url}",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/inference/"


def test_a_path_on_this_site_is_kept(client, member):
    user, project = member
    client.force_login(user)
    response = client.post(
        reverse("project_switch"), {"project": project.pk, "next": "/billing/usage/?end=x"}
    )
    assert response.headers["Location"] == "/billing/usage/?end=x"
