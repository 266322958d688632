"""Teams, projects, API keys, the model catalog and deployments."""

import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import models

from billing.models import Organization


class Team(models.Model):
    """The seed's "entity": a team inside an organization that owns projects."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.SlugField(max_length=100, unique=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="TeamMembership", related_name="teams"
    )

    def __str__(self) -> str:
        return self.name


class TeamMembership(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="uniq_team_member")]


class Project(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="projects")
    name = models.SlugField(max_length=100)
    # Overrides the plan's per-project concurrency limit when set.
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)
    # Traces keep each call's request and answer; off, only who, what, when and how much.
    store_call_bodies = models.BooleanField("store request and response bodies", default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="uniq_project_in_team")
        ]

    @property
    def path(self) -> str:
        """The `team/project` form used by the OpenAI-Project header."""
        return f"{self.team.name}/{self.name}"

    def __str__(self) -> str:
        return self.path


class Profile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    # Used when a request names no project (no OpenAI-Project header) and by the web UI.
    default_project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Overrides the plan's per-user concurrency limit when set.
    concurrency_limit = models.PositiveIntegerField(null=True, blank=True)


API_KEY_PREFIX = "ys-"
# Characters of the key kept in clear to find it (and to show it in lists); the rest is secret.
API_KEY_LOOKUP_CHARS = 12


def hash_api_key(raw_key: str) -> str:
    # Keys are 256-bit random, so a fast hash is safe here; a slow KDF would only add latency.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKey(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=API_KEY_LOOKUP_CHARS, unique=True)
    key_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    @staticmethod
    def generate_raw_key() -> str:
        return API_KEY_PREFIX + secrets.token_urlsafe(32)

    def matches(self, raw_key: str) -> bool:
        return hmac.compare_digest(self.key_hash, hash_api_key(raw_key))

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class CatalogModel(models.Model):
    """A model users can call, as the Inference page and /v1/models describe it."""

    class Modality(models.TextChoices):
        TEXT = "text", "Text"
        TEXT_VISION = "text+vision", "Text, Vision"

    model_id = models.CharField(max_length=200, unique=True)
    display_name = models.CharField(max_length=100)
    modality = models.CharField(max_length=20, choices=Modality.choices, default=Modality.TEXT)
    context_window = models.PositiveIntegerField()
    # Parameters in billions; active is null for dense models (the seed shows "8B (Total)").
    active_params_b = models.DecimalField(max_digits=8, decimal_places=2, null=True, blank=True)
    total_params_b = models.DecimalField(max_digits=8, decimal_places=3)
    description = models.TextField()
    input_price_micros = models.BigIntegerField(help_text="USD micros per 1M input tokens")
    output_price_micros = models.BigIntegerField(help_text="USD micros per 1M output tokens")
    # The most prompt tokens one image can take, held for every image whatever its size (the
    # gateway does not decode images). The default is Llama 4 Scout's, the catalog's vision
    # model: an image is cut into at most 16 tiles of 336 px, each 144 tokens (24 x 24 patches
    # of 14 px, pixel-shuffled 4 to 1) with a separator, plus a 144-token view of the whole
    # image and 3 markers: 16 * 145 + 144 + 3 = 2467.
    image_tokens_max = models.PositiveIntegerField(
        default=2467, help_text="Upper bound of the prompt tokens of one image"
    )
    owned_by = models.CharField(max_length=100, default="yardstick")
    sort_order = models.PositiveIntegerField(default=100)
    is_listed = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["sort_order", "display_name"]

    @property
    def supports_vision(self) -> bool:
        return "vision" in self.modality

    def __str__(self) -> str:
        return self.model_id


class Deployment(models.Model):
    """One OpenAI-compatible engine that serves a catalog model (vLLM, llama.cpp, a provider…)."""

    model = models.ForeignKey(CatalogModel, on_delete=models.CASCADE, related_name="deployments")
    name = models.CharField(max_length=100, unique=True)
    base_url = models.URLField(help_text="Up to and including /v1, e.g. http://10.0.0.5:8000/v1")
    upstream_model = models.CharField(
        max_length=200, blank=True, help_text="Model name the engine expects; blank = model ID"
    )
    upstream_api_key = models.CharField(max_length=500, blank=True)
    weight = models.PositiveIntegerField(default=1)
    is_enabled = models.BooleanField(default=True)
    # Health as last observed by the gateway or the health check task.
    is_healthy = models.BooleanField(default=True)
    last_error = models.CharField(max_length=500, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name

    @property
    def engine_model_name(self) -> str:
        return self.upstream_model or self.model.model_id
