"""Two machines (two FTM_HOMEs, one database): with the same shared root, a dataset one
adds is listed, shown and estimated on the other; without it, the other is told what to
set. A mounted directory and an fsspec URL root (``file://``) alike."""

from __future__ import annotations

import json
import shutil

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from app import database
from app.cli.main import cli
from db.models import SQLModel
from tests.datasets.helpers import chat, write_jsonl


def _ftm(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


@pytest.fixture
def machines(tmp_path, monkeypatch, database_url):
    """Switch this process to machine "a" or "b": its own home, the same database."""
    monkeypatch.setenv("FTM_DATABASE_URL", database_url)

    def use(name: str, root: str | None) -> None:
        monkeypatch.setenv("FTM_HOME", str(tmp_path / f"machine-{name}"))
        if root is None:
            monkeypatch.delenv("FTM_STORAGE__ROOT", raising=False)
        else:
            monkeypatch.setenv("FTM_STORAGE__ROOT", root)
        database.reset()

    return use


def texts_in_database() -> str:
    """Every value of every row, as text: what a copied database would carry."""
    engine = database.get_engine()
    with engine.connect() as conn:
        return "\n".join(
            str(tuple(row))
            for table in SQLModel.metadata.sorted_tables
            for row in conn.execute(sa.select(table))
        )


@pytest.mark.parametrize("kind", ["mounted", "url"])
def test_a_dataset_added_on_one_machine_is_used_on_another_with_the_same_root(
    machines, tmp_path, kind
):
    shared = tmp_path / "team-root"
    root = str(shared) if kind == "mounted" else f"file://{shared}"
    source = write_jsonl(tmp_path / "tickets.jsonl", [chat(i) for i in range(30)])
    machines("a", root)
    added = _ftm("data", "add", str(source), "--name", "tickets")
    assert added.exit_code == 0, added.output
    assert (shared / "datasets").is_dir()  # written to the shared root (through fsspec)
    # Neither A's home nor the shared root's mount point (the source file's path, the
    # user's own, is kept).
    named = [
        row
        for row in texts_in_database().splitlines()
        if str(tmp_path / "machine-a") in row or str(shared) in row
    ]
    assert named == []
    shutil.rmtree(tmp_path / "machine-a")  # nothing of machine a's home is needed

    machines("b", root)
    listed = _ftm("data", "list", "--json")
    assert listed.exit_code == 0 and [d["name"] for d in json.loads(listed.stdout)] == ["tickets"]
    estimate = _ftm("estimate", "tickets")
    assert estimate.exit_code == 0, estimate.output
    assert _ftm("data", "show", "tickets").exit_code == 0


def test_a_machine_without_the_shared_root_is_told_to_set_it(machines, tmp_path):
    source = write_jsonl(tmp_path / "tickets.jsonl", [chat(i) for i in range(30)])
    machines("a", str(tmp_path / "team-root"))
    assert _ftm("data", "add", str(source), "--name", "tickets").exit_code == 0
    machines("b", None)  # its root: its own home, where the files are not
    estimate = _ftm("estimate", "tickets")
    said = " ".join(estimate.output.split())
    assert estimate.exit_code == 1 and "Traceback" not in said
    assert "dataset 'tickets''s file datasets/" in said
    assert f"is not under the storage root {tmp_path / 'machine-b'}" in said
    assert "Set [storage] root (FTM_STORAGE__ROOT) to the shared root" in said
