"""Display helpers for the Traces pages: durations and a call's cost."""

from django import template

from billing.money import format_usd, micros_to_decimal

register = template.Library()


@register.filter
def duration(ms: int | None) -> str:
    """840 -> "840 ms", 1_234 -> "1.23 s"; None -> "—"."""
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 10_000:
        return f"{ms / 1000:.2f} s"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    return f"{minutes} min {seconds} s"


@register.filter
def call_cost(micros: int | None) -> str:
    """The ledger's charge as dollars; "—" for a span the gateway did not charge (NULL)."""
    if micros is None:
        return "—"
    return format_usd(micros)


@register.filter
def exact_usd(micros: int | None) -> str:
    """Every micro-dollar: "$0.000123" (the call page's exact figure)."""
    if micros is None:
        return "—"
    return f"${micros_to_decimal(micros)}"
