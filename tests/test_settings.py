from __future__ import annotations

from app.settings import Settings, config_path


def test_ftm_home_relocates_database_and_config(ftm_home):
    s = Settings()
    assert s.home == ftm_home
    assert s.resolved_database_url == f"sqlite:///{ftm_home / 'ftm.db'}"
    assert config_path() == ftm_home / "config.toml"


def test_toml_config_then_environment_override(ftm_home, monkeypatch):
    ftm_home.mkdir(parents=True, exist_ok=True)
    (ftm_home / "config.toml").write_text(
        '[openai]\nsandbox = true\nbase_url = "http://proxy.local/v1"\n[poller]\ninterval_s = 2.5\n'
    )
    s = Settings()
    assert s.openai.sandbox is True and s.poller.interval_s == 2.5
    monkeypatch.setenv("FTM_POLLER__INTERVAL_S", "7")
    monkeypatch.setenv("FTM_DATABASE_URL", "postgresql://db.example/ftm")
    s = Settings()
    assert s.poller.interval_s == 7.0
    assert s.resolved_database_url == "postgresql://db.example/ftm"
    assert s.openai.base_url == "http://proxy.local/v1"
