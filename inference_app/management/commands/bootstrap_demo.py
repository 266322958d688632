"""Idempotent demo set-up: plans, catalog, the embedded deployment and a ready-to-use account."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from billing.models import Membership, Organization
from billing.organizations import membership_set, organization_create
from inference_app.accounts import default_project_set, team_add_member
from inference_app.catalog import ensure_embedded_deployment
from inference_app.models import Project, Team

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"


class Command(BaseCommand):
    help = "Create the demo organization (Free plan, with credits), team demo, project quickstart, user demo."

    def handle(self, *args, **options):
        with transaction.atomic():
            ensure_embedded_deployment()
            org = Organization.objects.filter(slug="demo").first() or organization_create(
                name="Demo", slug="demo"
            )
            user = get_user_model().objects.filter(username=DEMO_USERNAME).first()
            if user is None:
                user = get_user_model().objects.create_user(
                    username=DEMO_USERNAME, password=DEMO_PASSWORD, email="demo@example.com"
                )
            membership_set(organization=org, user=user, role=Membership.Role.ADMIN)
            team, _ = Team.objects.get_or_create(name="demo", defaults={"organization": org})
            team_add_member(team=team, user=user)
            project, _ = Project.objects.get_or_create(team=team, name="quickstart")
            if not hasattr(user, "profile") or user.profile.default_project_id is None:
                default_project_set(user=user, project=project)
        self.stdout.write(
            f"Demo login: username '{DEMO_USERNAME}', password '{DEMO_PASSWORD}' "
            f"(organization '{org.name}', project '{project.path}')"
        )
