"""The price catalog: sources and dates on every figure, the user's overrides, clear errors."""

from __future__ import annotations

from datetime import date

import pytest

from app.costs.catalog import SHIPPED_CATALOG, load_catalog
from app.costs.errors import CatalogError, UnknownGPU, UnknownModel
from providers.openai.lifecycle import load_lifecycle


def test_every_shipped_figure_names_a_dated_source():
    c = load_catalog(use_settings=False)
    assert c.files == (str(SHIPPED_CATALOG),)
    for m in c.hosted.values():  # dated, and never from the future
        assert m.source.text and m.source.as_of <= date.today()
    for g in c.gpus.values():
        assert g.spec_source.as_of
        for p in g.prices:
            assert p.source.text and p.source.as_of
    for key in ("h100", "h200", "a100-80gb", "l40s", "l4", "rtx-4090", "cpu"):
        assert key in c.gpus
    # Several clouds for the data-centre GPUs.
    assert len(c.gpus["h100"].prices) >= 2 and len(c.gpus["a100-80gb"].prices) >= 2
    assert c.age_days(date(2026, 11, 28)) == (date(2026, 11, 28) - c.as_of).days


def test_prices_match_the_published_table():
    c = load_catalog(use_settings=False)
    m = c.hosted_model("gpt-4o-mini")  # alias of the dated snapshot
    assert m.id == "gpt-4o-mini-2024-07-18"
    assert (m.training, m.ft_input, m.ft_cached_input, m.ft_output) == (3.00, 0.30, 0.15, 1.20)
    assert (m.base_input, m.base_cached_input, m.base_output) == (0.15, 0.075, 0.60)
    assert c.hosted_model("gpt-4.1-2025-04-14").training == 25.00
    # An ft: model prices as its base snapshot.
    assert (
        c.hosted_model("ft:gpt-4.1-mini-2025-04-14:acme:tickets:abc12345").id
        == "gpt-4.1-mini-2025-04-14"
    )


def test_lifecycle_dates_come_from_the_openai_lifecycle_file():
    """One source of truth: the sunsets and the cutoff are the provider's file's."""
    c = load_catalog(use_settings=False)
    lc = load_lifecycle()
    assert c.priced["openai"].service_cutoff == lc.job_creation_cutoff == date(2027, 1, 6)
    for mid in (
        "gpt-4o-2024-08-06",
        "gpt-4o-mini-2024-07-18",
        "gpt-4.1-2025-04-14",
        "gpt-4.1-mini-2025-04-14",
    ):
        assert c.hosted_model(mid).sunset == date(2027, 1, 14)
        assert str(c.hosted_model(mid).sunset) == lc.model(mid).sunset
    assert c.hosted_model("gpt-3.5-turbo").token_limit == 16385


def test_user_file_overrides_a_price_and_adds_a_gpu(tmp_path, monkeypatch):
    user = tmp_path / "prices.toml"
    user.write_text(
        'as_of = "2026-11-01"\n'
        '[openai.models."gpt-4o-mini-2024-07-18"]\ntraining = 2.40\n'
        '[gpus.my-a6000]\nname = "our A6000"\ntflops_bf16 = 155\nmemory_gb = 48\n'
        "owned = true\nwatts = 300\n"
        '[gpus.h100]\nusd_per_hour = 1.85\ncloud = "negotiated"\n'
        "[electricity]\nusd_per_kwh = 0.30\n"
    )
    monkeypatch.setenv("FTM_PRICES_FILE", str(user))
    from app.settings import get_settings

    get_settings.cache_clear()
    c = load_catalog()
    assert c.files[-1] == str(user)
    m = c.hosted_model("gpt-4o-mini")
    assert m.training == 2.40 and m.source.key == "user" and m.source.as_of == date(2026, 11, 1)
    assert m.ft_input == 0.30  # untouched figures keep the shipped value and source
    own = c.gpu("my-a6000")
    price = c.hourly_price(own)
    assert price.usd_per_hour == pytest.approx(0.300 * 0.30)  # 300 W at $0.30/kWh
    h100 = c.hourly_price(c.gpu("h100"))
    assert (h100.cloud, h100.usd_per_hour, h100.source.key) == ("negotiated", 1.85, "user")
    # The shipped catalog is unchanged for everyone else.
    assert load_catalog(use_settings=False).hosted_model("gpt-4o-mini").training == 3.00


def test_bad_user_files_are_clear_errors(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[gpus.x\n")
    with pytest.raises(CatalogError, match="not valid TOML"):
        load_catalog(bad)
    incomplete = tmp_path / "incomplete.toml"
    incomplete.write_text('[gpus.mine]\nname = "no specs"\nusd_per_hour = 1\n')
    with pytest.raises(CatalogError, match="missing field 'tflops_bf16'"):
        load_catalog(incomplete)


def test_unknown_model_or_gpu_lists_the_known_ones():
    c = load_catalog(use_settings=False)
    with pytest.raises(UnknownGPU) as e:
        c.gpu("h900")
    assert "h100" in str(e.value) and "rtx-4090" in str(e.value) and "prices file" in str(e.value)
    with pytest.raises(UnknownModel) as e:
        c.hosted_model("gpt-5-turbo")
    assert "gpt-4o-mini-2024-07-18" in str(e.value)


# OpenAI's last published self-serve fine-tuning price table (USD per 1M tokens, about
# 2025-11), typed in independently of app/costs/catalog.toml so a wrong catalog entry shows.
PUBLISHED_OPENAI_PRICES = """
| gpt-4.1-2025-04-14 | 25.00 | 3.00 / 0.75 / 12.00 | 2.00 / 0.50 / 8.00 |
| gpt-4.1-mini-2025-04-14 | 5.00 | 0.80 / 0.20 / 3.20 | 0.40 / 0.10 / 1.60 |
| gpt-4.1-nano-2025-04-14 | 1.50 | 0.20 / 0.05 / 0.80 | 0.10 / 0.025 / 0.40 |
| gpt-4o-2024-08-06 | 25.00 | 3.75 / 1.875 / 15.00 | 2.50 / 1.25 / 10.00 |
| gpt-4o-mini-2024-07-18 | 3.00 | 0.30 / 0.15 / 1.20 | 0.15 / 0.075 / 0.60 |
| gpt-3.5-turbo | 8.00 | 3.00 / – / 6.00 | 0.50 / – / 1.50 |
"""


def test_openai_prices_agree_with_the_published_table():
    """Every supervised price in the shipped catalog is the one OpenAI published."""
    import re

    c = load_catalog(use_settings=False)
    checked = 0
    for line in PUBLISHED_OPENAI_PRICES.strip().splitlines():
        m = re.match(r"\| (\S+) \| ([\d.]+) \| ([^|]+) \| ([^|]+) \|", line)
        assert m, line
        model = c.hosted_model(m.group(1))
        ft = [None if v.strip() in ("–", "-") else float(v) for v in m.group(3).split("/")]
        base = [None if v.strip() in ("–", "-") else float(v) for v in m.group(4).split("/")]
        assert model.training == float(m.group(2))
        assert [model.ft_input, model.ft_cached_input, model.ft_output] == ft
        assert [model.base_input, model.base_cached_input, model.base_output] == base
        checked += 1
    assert checked == 6  # every supervised model (o4-mini, priced per hour, is not listed)
