"""The method a launch, the wizard or a migration uses when none is given is the one the
provider declares (`Provider.default_method`), read from its installed class."""

from __future__ import annotations

import sys
import textwrap

import pytest

from app.cli.jobs import _default_method
from app.jobs.providers import default_method_of

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

PLUGIN = textwrap.dedent("""
    from providers.base import Capabilities, Provider


    class Picky(Provider):
        name = "picky"
        display_name = "Picky"
        capabilities = Capabilities(methods=("sft", "preference"))

        @classmethod
        def default_method(cls):
            return "preference"  # not the first: only the declaration can say so

        def prepare(self, spec): return spec
        def create(self, spec): raise NotImplementedError
        def refresh(self, remote_id, events_cursor=None): raise NotImplementedError
        def cancel(self, remote_id): raise NotImplementedError
        def list_base_models(self): return []
        def complete(self, model, messages, *, max_tokens=256, temperature=0.0):
            raise NotImplementedError
""")


@pytest.fixture
def picky(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "ftm_picky_plugin").mkdir(parents=True)
    (site / "ftm_picky_plugin" / "__init__.py").write_text(PLUGIN)
    dist = site / "ftm_picky_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ftm-picky-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ftm.providers]\npicky = ftm_picky_plugin:Picky\n")
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("ftm_picky_plugin", None)


def test_the_declared_default_method_is_used(picky):
    assert default_method_of("picky") == "preference"
    assert _default_method("picky") == "preference"  # `ftm launch` without --method
    # The built-ins keep theirs: hosted supervised, local LoRA.
    assert default_method_of("openai") == "supervised"
    assert default_method_of("local") == "lora"
    assert default_method_of("not-installed") is None
