"""Micro-dollars at the edges: formatting for people and for CSV. Decimal, never float."""

from decimal import Decimal

from billing.models import MICROS_PER_DOLLAR


def micros_to_decimal(micros: int) -> Decimal:
    """Exact dollars, six decimal places (what CSV exports carry)."""
    return (Decimal(micros) / MICROS_PER_DOLLAR).quantize(Decimal("0.000001"))


def format_usd(micros: int) -> str:
    """ "$1,234.57" for amounts of a cent or more; small amounts keep their micro-dollar digits."""
    dollars = micros_to_decimal(micros)
    sign = "-" if dollars < 0 else ""
    dollars = abs(dollars)
    if dollars == 0 or dollars >= Decimal("0.01"):
        return f"{sign}${dollars.quantize(Decimal('0.01')):,}"
    return f"{sign}${dollars.normalize():f}"
