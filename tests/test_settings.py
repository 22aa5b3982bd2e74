from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import (
    Settings,
    SettingsError,
    config_path,
    ensure_home,
    get_settings,
    home_dir,
    mask_passwords,
)


@pytest.mark.no_database  # the default URL, whichever database the pass gives ftm
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


def _settings_error() -> str:
    get_settings.cache_clear()
    with pytest.raises(SettingsError) as caught:
        get_settings()
    return str(caught.value)


@pytest.mark.parametrize(
    ("toml", "line"),
    [
        # a table header, then the key
        ('user = "ann"\n\n[tui]\ntheme = "x"\n[tui.keymap]\n"app.new_job" = 5\n', 6),
        # a dotted key under its parent table
        ('[tui]\ntheme = "x"\nkeymap."app.new_job" = 5\n', 3),
        # an inline table: the line that holds it
        ('[poller]\ninterval_s = 1\n[tui]\nkeymap = { "app.new_job" = 5 }\n', 4),
    ],
)
def test_invalid_setting_points_at_its_config_line(ftm_home, toml, line):
    ftm_home.mkdir(parents=True)
    (ftm_home / "config.toml").write_text(toml)
    message = _settings_error()
    assert message.startswith("setting tui.keymap.app.new_job = 5 ")
    assert f"config.toml, line {line} is not valid" in message


def test_several_invalid_settings_in_one_line(ftm_home, monkeypatch):
    monkeypatch.setenv("FTM_POLLER__CONCURRENCY", "many")
    monkeypatch.setenv("FTM_OPENAI__TIMEOUT_S", "soon")
    message = _settings_error()
    assert "\n" not in message
    assert "FTM_POLLER__CONCURRENCY" in message and "FTM_OPENAI__TIMEOUT_S" in message


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://bob:pw@host/db", "postgresql://bob:***@host/db"),
        ("postgresql://bob:p@ss:w/rd@host/db", "postgresql://bob:***@host/db"),
        ("postgresql//bob:pw@host/db", "postgresql//bob:***@host/db"),
        ("bob:pw@host", "bob:***@host"),
        ("postgresql://:pw@host/db", "postgresql://:***@host/db"),
        ("'mysql://u:pw@h' and more", "'mysql://u:***@h' and more"),
        ("sqlite:////tmp/ftm.db", "sqlite:////tmp/ftm.db"),
        ("postgresql://bob@host/db", "postgresql://bob@host/db"),
    ],
)
def test_mask_passwords(text, shown):
    assert mask_passwords(text) == shown


def test_an_empty_variable_means_unset(ftm_home, monkeypatch):
    """As `home_dir` reads FTM_HOME: empty is unset, never the current directory."""
    ftm_home.mkdir(parents=True)
    (ftm_home / "config.toml").write_text("[poller]\ninterval_s = 3\n")
    monkeypatch.setenv("FTM_POLLER__INTERVAL_S", "")
    get_settings.cache_clear()
    assert get_settings().poller.interval_s == 3.0
    monkeypatch.delenv("FTM_HOME")
    monkeypatch.setenv("FTM_HOME", "")
    assert Settings().home == home_dir() != Path("")


def test_a_default_is_not_blamed_on_the_config_file(tmp_path, monkeypatch):
    """The platform's default home cannot be made; the config file (which does not set
    `home`) must not be named as its source."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = tmp_path / "ftm.toml"
    config.write_text('user = "ann"\n')
    monkeypatch.delenv("FTM_HOME")
    monkeypatch.setenv("FTM_CONFIG", str(config))
    monkeypatch.setenv("XDG_DATA_HOME", str(blocker))
    get_settings.cache_clear()
    with pytest.raises(SettingsError) as caught:
        ensure_home(get_settings())
    message = str(caught.value)
    assert f"home directory {blocker / 'ftm'} (the default)" in message
    assert str(config) not in message
    assert "Set FTM_HOME to a directory you can write" in message
