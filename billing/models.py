"""Billing: organizations and plans, memberships, and the usage ledger.

Money is integer micro-dollars (1 USD = 1_000_000) everywhere; never floats.
`billing` knows nothing of HTTP, websockets or serving engines: teams, projects and models
appear here only as names, so the dependency stays `inference_app -> billing`.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

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
    # Overage charged in `overage_month` (first day of it): the monthly cap is checked against this
    # counter under the same row lock as reservations, so the check costs one row read.
    overage_month = models.DateField(null=True, blank=True)
    overage_micros = models.BigIntegerField(default=0)
    # The monthly spend cap an admin chose, within the plan's (billing.plan_changes); null: the
    # plan's own cap. Reservations read it under the same row lock as the overage counter.
    spend_cap_micros = models.BigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name

    @property
    def monthly_spend_cap_micros(self) -> int:
        """The cap that applies: the admin's choice, else the plan's."""
        if self.spend_cap_micros is not None:
            return self.spend_cap_micros
        return self.plan.monthly_spend_cap_micros


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
        COMPARE = "compare", "Compare"
        EVALUATION = "evaluation", "Evaluation"

    class Status(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"
        CANCELLED = "cancelled", "Cancelled"
        # The process running the request died before settling it: charged for the prompt
        # (what is known from its reservation), by the sweep in billing.lost.
        LOST = "lost", "Lost"

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
    """Worst-case cost held for a request in flight; settlement replaces it with the real charge.

    Written before the request reaches an engine, the row is also the request's write-ahead
    record: who asked, for which model, how long the prompt is, and which process (`holder`)
    runs it. If that process dies before settling, the sweep (billing.lost) settles the request
    from this row, as `lost`, instead of letting the hold go silently.
    """

    request_id = models.CharField(max_length=64, unique=True)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="reservations"
    )
    amount_micros = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    holder = models.CharField(max_length=64, blank=True, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    api_key_prefix = models.CharField(max_length=32, blank=True)
    team = models.CharField(max_length=100, blank=True)
    project = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=12, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    input_price_micros = models.BigIntegerField(default=0)
    output_price_micros = models.BigIntegerField(default=0)


class ReservationHolder(models.Model):
    """A process that holds reservations, alive while its heartbeat is recent.

    A reservation whose holder has not been seen for billing.lost.LOST_AFTER belongs to a dead
    process (killed, crashed, its machine gone): nothing else will ever settle it.
    """

    token = models.CharField(max_length=64, unique=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()


class PlanChange(models.Model):
    """One row per plan change: who moved the organization from which plan to which, and when.

    Also a change of the monthly spend cap (from_plan == to_plan, spend_cap_micros set). A
    downgrade waits as `scheduled` until `effective_at` (the end of the month), when the
    month-end job applies it; a change made meanwhile cancels it.
    """

    class Status(models.TextChoices):
        APPLIED = "applied", "Applied"
        SCHEDULED = "scheduled", "Scheduled"
        CANCELLED = "cancelled", "Cancelled"

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="plan_changes"
    )
    from_plan = models.ForeignKey(
        Plan, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    to_plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="+")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.APPLIED)
    # When it took (or will take) effect; null on rows written before scheduling existed.
    effective_at = models.DateTimeField(null=True, blank=True)
    spend_cap_micros = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # At most one change waits per organization.
            models.UniqueConstraint(
                fields=["organization"],
                condition=models.Q(status="scheduled"),
                name="uniq_scheduled_plan_change",
            )
        ]


class CreditGrant(models.Model):
    """Credits given to an organization. `remaining_micros` is what charges have not yet used.

    The grant itself is written once; `remaining_micros` (and `expired_at`) move only in the same
    transaction as the ledger entry that explains the move.
    """

    class Kind(models.TextChoices):
        PLAN = "plan", "Plan credits"
        PURCHASE = "purchase", "Purchase"
        PROMOTION = "promotion", "Promotion"

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="credit_grants"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    amount_micros = models.BigIntegerField()
    remaining_micros = models.BigIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)
    # Set when the expiry ran (its ledger entry wrote off what remained).
    expired_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["expires_at", "id"]
        indexes = [models.Index(fields=["organization", "expired_at", "expires_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(remaining_micros__gte=0)
                & models.Q(remaining_micros__lte=models.F("amount_micros")),
                name="grant_remaining_within_amount",
            ),
            models.CheckConstraint(condition=models.Q(amount_micros__gt=0), name="grant_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.amount_micros / MICROS_PER_DOLLAR:.2f} USD"


class Invoice(models.Model):
    """Month-end bill for a paid plan's overage: one per organization and month, never two."""

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="invoices"
    )
    month = models.DateField(help_text="First day of the billed month")
    overage_micros = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-month"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "month"], name="uniq_invoice_org_month")
        ]

    def __str__(self) -> str:
        return f"{self.organization} {self.month:%Y-%m}"


class LedgerEntry(models.Model):
    """Append-only: every change of an organization's balance is one new row, never an edit.

    The sum of `amount_micros` over an organization's entries equals its `balance_micros`.
    """

    class Kind(models.TextChoices):
        GRANT = "grant", "Grant"
        CHARGE = "charge", "Charge"
        EXPIRATION = "expiration", "Expiration"
        ADJUSTMENT = "adjustment", "Adjustment"

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices)
    amount_micros = models.BigIntegerField(help_text="Signed: grants add, charges subtract")
    balance_after_micros = models.BigIntegerField()
    # For charges: the part no credit grant covered (billed at month end on plans with overage).
    overage_micros = models.BigIntegerField(default=0)
    request_id = models.CharField(max_length=64, blank=True)
    grant = models.ForeignKey(
        CreditGrant, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    invoice = models.ForeignKey(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="ledger_entries"
    )
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["organization", "kind", "created_at"])]
        constraints = [
            # A request is never charged twice; a grant expires once; an invoice settles once.
            models.UniqueConstraint(
                fields=["request_id"],
                condition=models.Q(kind="charge"),
                name="uniq_charge_per_request",
            ),
            models.UniqueConstraint(
                fields=["grant"],
                condition=models.Q(kind="expiration"),
                name="uniq_expiration_per_grant",
            ),
            models.UniqueConstraint(
                fields=["invoice"],
                condition=models.Q(invoice__isnull=False),
                name="uniq_entry_per_invoice",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_micros} ({self.organization})"


class UsageRollup(models.Model):
    """Usage per organization, team, project, model and day, recomputed from UsageRecord rows."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="usage_rollups"
    )
    day = models.DateField()
    team = models.CharField(max_length=100)
    project = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    requests = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["organization", "day"])]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "day", "team", "project", "model"],
                name="uniq_rollup_key",
            )
        ]


class UsageRollupDay(models.Model):
    """A day whose rollups were computed after it ended: readers trust its rollups over raw rows."""

    day = models.DateField(unique=True)
    computed_at = models.DateTimeField()
    usage_records = models.PositiveIntegerField(default=0)
