"""Dollar amounts for people: cents for ordinary sums, and enough digits for tiny ones.

A self-hosted request can cost a billionth of a dollar; printed with four decimals it
would read "$0.0000", as if free. Under a dollar, two significant digits are always kept.
"""

from __future__ import annotations

import math


def usd(value: float | None, *, min_decimals: int = 2) -> str:
    """``$1,234.56``, ``$0.0042``, ``$0.000000025``, ``-$0.50``; ``-`` for no figure.

    ``min_decimals`` applies under a dollar (a column of per-1k costs reads evenly at 4).
    """
    if value is None:
        return "-"
    sign, amount = ("-" if value < 0 else ""), abs(value)
    decimals = 2
    if 0 < amount < 1:
        decimals = max(min_decimals, 1 - math.floor(math.log10(amount)))
    return f"{sign}${amount:,.{decimals}f}"
