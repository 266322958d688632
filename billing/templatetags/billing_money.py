from django import template

from billing.money import format_usd

register = template.Library()


@register.filter
def usd(micros: int | None) -> str:
    """Micro-dollars as dollars for display: {{ org.balance_micros|usd }}."""
    return format_usd(micros or 0)


@register.filter
def count(number: int | None) -> str:
    """Token and request counts with thousands separators: 1,950,000."""
    return f"{number or 0:,}"
