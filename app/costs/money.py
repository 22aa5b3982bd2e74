"""Dollar amounts for people: the one money formatter of the CLI, the TUI and messages.

Cents for ordinary sums, and enough digits for tiny ones: a self-hosted request can cost a
billionth of a dollar; printed with four decimals it would read "$0.0000", as if free.
Under a dollar, two significant digits are always kept. Every face (CLI tables, the Costs
tab, the jobs table, dialogs, gate messages) prints an amount through `usd`, so the same
amount reads the same everywhere.
"""

from __future__ import annotations

import math


def usd(value: float | None) -> str:
    """``$1,234.56``, ``$0.0042``, ``$0.000000025``, ``-$0.50``, ``$0.00``; ``-`` for no
    figure."""
    if value is None:
        return "-"
    sign, amount = ("-" if value < 0 else ""), abs(value)
    decimals = 2
    if 0 < amount < 1:
        decimals = max(2, 1 - math.floor(math.log10(amount)))
    return f"{sign}${amount:,.{decimals}f}"
