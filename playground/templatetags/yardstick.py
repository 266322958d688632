"""Display helpers for catalog numbers and money (integer micro-dollars)."""

from datetime import timedelta
from decimal import Decimal

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from playground.selectors import header_context

register = template.Library()


@register.filter
def tokens_compact(value: int) -> str:
    """161000 -> "161K", as the seed writes context windows."""
    value = int(value)
    if value >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if value >= 1000:
        return f"{value // 1000}K"
    return str(value)


def _params(b: Decimal) -> str:
    if b < 1:
        return f"{(b * 1000).normalize():f}M"
    return f"{b.normalize():f}B"


@register.filter
def params_label(model) -> str:
    """ "37B - 680B (Active - Total)" for mixture-of-experts models, "8B (Total)" for dense ones."""
    total = model.total_params_b
    active = model.active_params_b
    if active is not None and active != total:
        return f"{_params(active)} - {_params(total)} (Active - Total)"
    return f"{_params(total)} (Total)"


@register.filter
def usd_micros(value: int) -> str:
    """Integer micro-dollars as dollars: 1350000 -> "$1.35", 80000 -> "$0.08"."""
    dollars = Decimal(int(value)) / Decimal(1_000_000)
    text = f"{dollars:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


@register.filter
def ago(value) -> str:
    """A past time as "just now" or "5 minutes ago" (the largest unit only)."""
    if value is None:
        return ""
    if timezone.now() - value < timedelta(minutes=1):
        return "just now"
    return f"{timesince(value, depth=1)} ago"


@register.simple_tag(takes_context=True)
def nav_context(context) -> dict:
    """The header's projects, current project and whether to show Billing."""
    return header_context(user=getattr(context.get("request"), "user", None))
