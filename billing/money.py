"""Micro-dollars at the edges: formatting for people and for CSV. Decimal, never float.

The one rule for showing money (static/js/money.js is the browser's copy of it, tested against
this one on the same table of values in tests/billing/test_money_format.py):
- zero, and any amount of a cent or more: dollars and cents, halves rounded away from zero,
  thousands separated: "$0.00", "$5.00", "$1,234.57", "-$0.02";
- an amount under a cent: every micro-dollar digit, trailing zeros dropped: "$0.001602",
  "$0.00005" (money is whole micro-dollars, so six decimals are exact).
"""

from decimal import ROUND_HALF_UP, Decimal

from billing.models import MICROS_PER_DOLLAR

CENT_MICROS = MICROS_PER_DOLLAR // 100


def micros_to_decimal(micros: int) -> Decimal:
    """Exact dollars, six decimal places (what CSV exports carry)."""
    return (Decimal(micros) / MICROS_PER_DOLLAR).quantize(Decimal("0.000001"))


def format_usd(micros: int) -> str:
    """ "$1,234.57" for zero and amounts of a cent or more; under a cent, "$0.001602"."""
    micros = int(micros)
    sign = "-" if micros < 0 else ""
    size = abs(micros)
    if size == 0 or size >= CENT_MICROS:
        dollars = (Decimal(size) / MICROS_PER_DOLLAR).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )
        return f"{sign}${dollars:,}"
    return f"{sign}${micros_to_decimal(size).normalize():f}"
