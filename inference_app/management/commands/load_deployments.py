from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference_app.deployments_config import (
    DeploymentConfigError,
    deployments_apply,
    parse_deployments_file,
)


class Command(BaseCommand):
    help = "Create or update deployments from a TOML file (default: $DEPLOYMENTS_FILE)."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", default=settings.DEPLOYMENTS_FILE)

    def handle(self, *args, file: str, **options):
        if not file:
            raise CommandError("Give a TOML file or set DEPLOYMENTS_FILE.")
        try:
            applied = deployments_apply(parse_deployments_file(Path(file)))
        except DeploymentConfigError as exc:
            raise CommandError(str(exc)) from exc
        for deployment in applied:
            self.stdout.write(
                f"{deployment.name}: {deployment.model.model_id} -> {deployment.base_url}"
            )
