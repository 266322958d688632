"""Billing: organizations and plans, memberships, and the usage ledger.

Money is integer micro-dollars (1 USD = 1_000_000) everywhere; never floats.
`billing` knows nothing of HTTP, websockets or serving engines: teams, projects and models
appear here only as names, so the dependency stays `inference_app -> billing`.
"""

from django.conf import settings
from django.db import models

MICROS_PER_DOLLAR = 1_000_000


class Plan(models.Model):
    class Code(models.TextChoices):
        FREE = "free", "Free"
        PRO = "pro", "Pro"
        ACADEMIC = "academic", "Academic"
        ENTERPRISE = "enterprise", "Enterprise"

    code = models.CharField(max_length=20, choices=Code.choices, unique=True)
    name = models.CharField(max_length=50)
    included_credits_micros = models.BigIntegerField(default=0)
    credit_validity_days = models.PositiveIntegerField(default=30)
    # Overage: when credits run out, may requests go on (billed monthly) up to the cap?
    allows_overage = models.BooleanField(default=False)
    monthly_spend_cap_micros = models.BigIntegerField(default=0)
    user_concurrency = models.PositiveIntegerField(default=8)
    project_concurrency = models.PositiveIntegerField(default=16)

    def __str__(self) -> str:
        return self.name


class Organization(models.Model):
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="organizations")
    # Derived from the ledger and kept equal to it in the same transaction as every entry.
    balance_micros = models.BigIntegerField(default=0)
    # Worst-case cost of requests in flight; available = balance - reserved (+ overage room).
    reserved_micros = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        MEMBER = "member", "Member"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="org_memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="uniq_org_member")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class UsageRecord(models.Model):
    """One row per request, keyed by its request id: retries and replays never double-bill."""

    class Source(models.TextChoices):
        API = "api", "API"
        PLAYGROUND = "playground", "Playground"

    class Status(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"
        CANCELLED = "cancelled", "Cancelled"

    request_id = models.CharField(max_length=64, unique=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="usage_records"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key_prefix = models.CharField(max_length=32, blank=True)
    team = models.CharField(max_length=100)
    project = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    deployment = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.API)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OK)
    http_status = models.PositiveSmallIntegerField(default=200)
    error_code = models.CharField(max_length=64, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    # True when the engine gave no usage and the gateway counted the tokens itself.
    tokens_counted_by_gateway = models.BooleanField(default=False)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    # Prices that applied (per million tokens) and the resulting cost; history never reprices.
    input_price_micros = models.BigIntegerField(default=0)
    output_price_micros = models.BigIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "created_at"]),
        ]

    def __str__(self) -> str:
        return self.request_id


class Reservation(models.Model):
    """Worst-case cost held for a request in flight; settlement replaces it with the real charge."""

    request_id = models.CharField(max_length=64, unique=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="reservations"
    )
    amount_micros = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
