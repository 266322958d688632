"""The four plans of the seed and their defaults. Operators may edit them in the admin."""

from billing.models import MICROS_PER_DOLLAR, Plan

PLAN_DEFAULTS = {
    Plan.Code.FREE: {
        "name": "Free",
        "included_credits_micros": 5 * MICROS_PER_DOLLAR,
        "credit_validity_days": 30,
        "allows_overage": False,
        "monthly_spend_cap_micros": 0,
        "user_concurrency": 4,
        "project_concurrency": 8,
    },
    Plan.Code.PRO: {
        "name": "Pro",
        "included_credits_micros": 20 * MICROS_PER_DOLLAR,
        "credit_validity_days": 30,
        "allows_overage": True,
        "monthly_spend_cap_micros": 500 * MICROS_PER_DOLLAR,
        "user_concurrency": 16,
        "project_concurrency": 32,
    },
    Plan.Code.ACADEMIC: {
        "name": "Academic",
        "included_credits_micros": 50 * MICROS_PER_DOLLAR,
        "credit_validity_days": 90,
        "allows_overage": False,
        "monthly_spend_cap_micros": 0,
        "user_concurrency": 8,
        "project_concurrency": 16,
    },
    Plan.Code.ENTERPRISE: {
        "name": "Enterprise",
        "included_credits_micros": 0,
        "credit_validity_days": 365,
        "allows_overage": True,
        "monthly_spend_cap_micros": 100_000 * MICROS_PER_DOLLAR,
        "user_concurrency": 64,
        "project_concurrency": 128,
    },
}


def ensure_plans() -> None:
    """Create the four plans if missing; never overwrite an operator's edits."""
    for code, defaults in PLAN_DEFAULTS.items():
        Plan.objects.get_or_create(code=code, defaults=defaults)
