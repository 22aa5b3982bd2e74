"""The launch wizard with the Together provider pointed at its emulator: the models and
the option fields come from the provider's own declarations (`list_base_models`,
`options`), and the preview prices the job from Together's declared prices."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from textual.widgets import Input, Label, Select, Static

from app.sandbox.together.server import TogetherSandboxServer
from app.tui.app import create_app
from app.tui.screens.launch_wizard import LaunchWizard
from providers.together import TogetherProvider
from providers.together.provider import BASE_MODELS, SANDBOX_MODELS
from tests.tui.helpers import add_dataset, settle


@pytest.fixture
def together_sandbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[TogetherSandboxServer]:
    from app import database

    with TogetherSandboxServer(port=0, seconds_per_step=0.01, seed=7) as server:
        monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX", "true")
        monkeypatch.setenv("FTM_PROVIDERS__TOGETHER__SANDBOX_URL", server.base_url)
        database.reset()
        yield server


async def test_the_wizard_lists_together_s_models_and_options(together_sandbox, ftm_home):
    add_dataset(ftm_home, "tickets")
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        await settle(pilot)
        wizard = app.screen
        assert isinstance(wizard, LaunchWizard)
        wizard.query_one("#provider", Select).value = "together"
        await settle(pilot)
        await pilot.pause(0.5)
        await settle(pilot)
        form = wizard.form
        assert form.provider == "together"
        # Every model the provider suggests, and the emulator's tiny one (sandbox mode).
        assert [m.id for m in form.base_models] == [*BASE_MODELS, *SANDBOX_MODELS]
        offered = wizard.query_one("#base_model", Select)
        assert {v for _, v in offered._options if isinstance(v, str)} == {
            *BASE_MODELS,
            *SANDBOX_MODELS,
        }
        # One field per declared option, labelled with its description.
        labels = [str(w.render()) for w in wizard.query("#options Label").results(Label)]
        for option in TogetherProvider.options:
            assert wizard.query_one(f"#option-{option.name}")
            assert f"{option.name}: {option.description}" in labels
        assert isinstance(wizard.query_one("#option-train_on_inputs"), Select)
        assert isinstance(wizard.query_one("#option-lora_r"), Input)
        assert wizard.query_one("#common-hyperparameters").display  # epochs, batch, rate
        method = wizard.query_one("#method", Select)
        assert [v for _, v in method._options if isinstance(v, str)] == [
            "supervised",
            "dpo",
        ]
        assert "Together AI" in str(wizard.query_one("#provider-info", Static).render())

        offered.value = "meta-llama/Llama-3.2-1B-Instruct"
        wizard.query_one("#option-lora_r", Input).value = "16"
        await pilot.pause(0.6)  # the preview is debounced
        await settle(pilot)
        assert wizard.form.option_values() == {"lora_r": 16}
        preview = wizard.preview
        assert preview is not None and preview.raw["provider"] == "together"
        assert preview.training_cost_usd > 0 and preview.no_estimate is None
        # priced from Together's declared table (LoRA SFT, $0.48 per 1M tokens)
        assert preview.raw["inputs"]["training"]["usd_per_1m_tokens"] == 0.48
