"""Per-request prices of eval candidates (`app.evaluation.pricing`) for a fine-tune whose
id does not name its base (Together's ``account/Base-suffix-id``, a deployment name):
priced at its base model's fine-tuned rates, from the real catalog."""

from __future__ import annotations

from app.evaluation.pricing import request_cost, token_price
from providers.azure import AzureOpenAIProvider

BASE = "gpt-4.1-nano-2025-04-14"  # a base Azure OpenAI fine-tunes and prices


def test_an_unnamed_fine_tune_is_priced_at_its_base_s_fine_tuned_rates():
    declared = AzureOpenAIProvider.pricing().models[BASE]
    price = token_price("azure", "acme/routing-v2", base_model=BASE)
    assert price is not None and price.fine_tuned
    assert (price.input, price.output) == (declared.ft_input, declared.ft_output)
    cost = request_cost("azure", "acme/routing-v2", 1000, 10, base_model=BASE)
    assert cost == (1000 * declared.ft_input + 10 * declared.ft_output) / 1e6


def test_without_a_known_base_it_has_no_price_and_a_base_keeps_its_own():
    assert token_price("azure", "acme/routing-v2") is None
    assert token_price("azure", "acme/routing-v2", base_model="nobody/unknown") is None
    base = token_price("azure", BASE, base_model=BASE)
    assert base is not None and not base.fine_tuned
    assert base.input == AzureOpenAIProvider.pricing().models[BASE].base_input
