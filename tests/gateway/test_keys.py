"""Gateway keys: issued once, stored hashed, verified, revoked; and `ftm keys`."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlmodel import select

from app.cli.main import cli
from app.database import get_engine
from app.gateway import keys
from db.engine import read_session, write_session
from db.models import GatewayKey
from tests.database_contents import database_bytes

KEY_SHAPE = re.compile(r"^ftm_gw_[A-Za-z0-9_-]{43}$")  # 256 bits, url-safe base64


def _ftm(*args: str, columns: int = 80):
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": str(columns)})


def test_the_key_is_never_stored_only_its_hash(ftm_home):
    created = keys.create(get_engine(), "billing-app")
    assert KEY_SHAPE.match(created.key), created.key
    on_disk = database_bytes(ftm_home, get_engine())
    secret_part = created.key.removeprefix("ftm_gw_").encode()
    assert secret_part not in on_disk
    # ... and the search looked in the right place: the hash and the name are there.
    assert hashlib.sha256(created.key.encode()).hexdigest().encode() in on_disk
    assert b"billing-app" in on_disk


def test_verify_accepts_a_live_key_and_refuses_a_wrong_or_revoked_one():
    engine = get_engine()
    good = keys.create(engine, "app").key
    other = keys.create(engine, "other").key
    assert keys.verify(engine, good) == "app"
    assert keys.verify(engine, other) == "other"
    # Same prefix (so the row is found), one character off: refused.
    wrong = good[:-1] + ("A" if good[-1] != "A" else "B")
    assert keys.verify(engine, wrong) is None
    assert keys.verify(engine, "ftm_gw_") is None
    assert keys.verify(engine, "sk-" + good) is None
    keys.revoke(engine, "app")
    assert keys.verify(engine, good) is None
    assert keys.verify(engine, other) == "other"  # revoking one key leaves the others


def test_a_revoked_name_can_be_issued_again_and_the_old_key_stays_refused():
    engine = get_engine()
    old = keys.create(engine, "app").key
    keys.revoke(engine, "app")
    new = keys.create(engine, "app").key
    assert keys.verify(engine, new) == "app"
    assert keys.verify(engine, old) is None
    assert [(k.name, k.live) for k in keys.list_keys(engine)] == [("app", False), ("app", True)]


def test_verify_records_last_use_at_most_once_a_minute():
    engine = get_engine()
    key = keys.create(engine, "app").key
    assert keys.list_keys(engine)[0].last_used_at is None
    keys.verify(engine, key)
    first = keys.list_keys(engine)[0].last_used_at
    assert first is not None
    keys.verify(engine, key)  # within the minute: no write
    assert keys.list_keys(engine)[0].last_used_at == first
    with write_session(engine) as s:  # a minute and more later: written again
        row = s.exec(select(GatewayKey)).one()
        row.last_used_at = first - timedelta(minutes=2)
        s.add(row)
    keys.verify(engine, key)
    assert keys.list_keys(engine)[0].last_used_at > first - timedelta(seconds=1)


def test_duplicate_unknown_and_already_revoked_are_clear_errors():
    engine = get_engine()
    keys.create(engine, "app")
    with pytest.raises(keys.DuplicateKeyName, match="already named 'app'.*ftm keys revoke app"):
        keys.create(engine, "app")
    with pytest.raises(keys.UnknownKeyName, match="no gateway key is named 'nope'"):
        keys.revoke(engine, "nope")
    keys.revoke(engine, "app")
    with pytest.raises(keys.AlreadyRevoked, match="'app' is already revoked"):
        keys.revoke(engine, "app")
    with pytest.raises(keys.InvalidKeyName, match="not usable"):
        keys.create(engine, "has space")
    with read_session(engine) as s:
        assert len(s.exec(select(GatewayKey)).all()) == 1


# --------------------------------------------------------------------------- the CLI


def test_cli_prints_the_key_once_with_a_warning_and_lists_without_it(ftm_home):
    created = _ftm("keys", "create", "billing-app")
    assert created.exit_code == 0, created.output
    key = created.stdout.strip()
    assert KEY_SHAPE.match(key), created.stdout  # stdout is the key alone: scriptable
    assert "cannot be shown again" in created.stderr
    assert keys.verify(get_engine(), key) == "billing-app"

    _ftm("keys", "create", "a-much-longer-client-application-name")
    assert _ftm("keys", "revoke", "billing-app").exit_code == 0
    listed = _ftm("keys", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), listed.stdout
    assert "\x1b[" not in listed.stdout  # a pipe gets plain text
    assert lines[0].split()[:3] == ["NAME", "PREFIX", "CREATED"]
    assert "LAST USED" in lines[0] and "REVOKED" in lines[0]
    (row,) = [line for line in lines if line.startswith("billing-app")]
    assert key[:13] in row and key[13:] not in listed.stdout
    assert re.search(r"\d{4}-\d\d-\d\d$", row), row  # revoked: a date in the last column
    assert key not in listed.stdout

    as_json = json.loads(_ftm("keys", "list", "--json").stdout)
    assert [(k["name"], k["live"]) for k in as_json] == [
        ("billing-app", False),
        ("a-much-longer-client-application-name", True),
    ]
    assert as_json[0]["prefix"] == key[:13] and as_json[0]["revoked_at"].endswith("+00:00")
    assert key not in json.dumps(as_json)


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        (["app"], ["create", "app"], "a live gateway key is already named 'app'"),
        ([], ["revoke", "ghost"], "no gateway key is named 'ghost'"),
        (["app", "-app"], ["revoke", "app"], "'app' is already revoked"),
    ],
)
def test_cli_errors_are_one_line_and_exit_1(setup, args, message):
    for name in setup:
        if name.startswith("-"):
            assert _ftm("keys", "revoke", name[1:]).exit_code == 0
        else:
            assert _ftm("keys", "create", name).exit_code == 0
    result = _ftm("keys", *args)
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_an_empty_list_says_how_to_create_a_key():
    result = _ftm("keys", "list")
    assert result.exit_code == 0 and "ftm keys create NAME" in result.stdout
