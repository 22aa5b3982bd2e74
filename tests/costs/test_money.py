from app.costs.money import usd


def test_ordinary_amounts_in_cents_and_tiny_ones_with_two_significant_digits():
    assert usd(None) == "-"
    assert usd(0) == "$0.00"
    assert usd(1234.567) == "$1,234.57"
    assert usd(0.0042) == "$0.0042"
    assert usd(2.538e-08) == "$0.000000025"  # a self-hosted request: never "$0.0000"
    assert usd(-0.002) == "-$0.0020"


def test_a_column_can_ask_for_at_least_four_decimals_under_a_dollar():
    assert usd(0.0126, min_decimals=4) == "$0.0126"
    assert usd(0.0126) == "$0.013"
    assert usd(12.3456, min_decimals=4) == "$12.35"
