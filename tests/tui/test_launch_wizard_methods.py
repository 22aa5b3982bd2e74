"""The launch wizard offers only the local methods the chosen base model supports (its
config.json decides: `providers.local.methods`)."""

from __future__ import annotations

import json

import pytest
from textual.widgets import Select
from textual.widgets._select import InvalidSelectValueError

from app.tui.app import create_app
from app.tui.screens.launch_form import validate_form
from app.tui.screens.launch_wizard import LaunchWizard
from tests.tui.helpers import add_dataset, settle


def _model_dir(ftm_home, name: str, model_type: str):
    path = ftm_home / "models" / name
    path.mkdir(parents=True)
    config = {
        "model_type": model_type,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "vocab_size": 100,
    }
    (path / "config.json").write_text(json.dumps(config))
    return str(path)


async def test_wizard_offers_only_the_methods_the_base_model_supports(ftm_home):
    add_dataset(ftm_home, "tickets")
    llama = _model_dir(ftm_home, "a-llama", "llama")
    recurrent = _model_dir(ftm_home, "b-mamba", "mamba")
    app = create_app(start_poller=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("n")
        await settle(pilot)
        wizard = app.screen
        assert isinstance(wizard, LaunchWizard)
        wizard.query_one("#provider", Select).value = "local"
        await settle(pilot)
        base, method = wizard.query_one("#base_model", Select), wizard.query_one("#method", Select)
        assert base.value == llama  # the first listed model is chosen
        method.value = "prefix"
        await settle(pilot)
        assert wizard.form.method == "prefix"

        base.value = recurrent
        await settle(pilot)
        assert wizard.form.method is None  # prefix is gone: no silent switch to another
        assert "method" in validate_form(wizard.form)
        for refused in ("prefix", "ia3"):
            with pytest.raises(InvalidSelectValueError):
                method.value = refused
        method.value = "dora"
        await settle(pilot)
        assert wizard.form.method == "dora" and "method" not in validate_form(wizard.form)

        base.value = llama
        await settle(pilot)
        assert wizard.form.method == "dora"  # a choice still offered is kept
        method.value = "ia3"
        await settle(pilot)
        assert wizard.form.method == "ia3"
