from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from inference_app.accounts import api_key_create


class Command(BaseCommand):
    help = "Create an API key for USERNAME and print it (only the key, so scripts can capture it)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")

    def handle(self, *args, username: str, name: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        _, raw_key = api_key_create(user=user, name=name)
        self.stdout.write(raw_key)
