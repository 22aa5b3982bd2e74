"""db/storage.py: what the database keeps for a path, and how a machine finds it again,
with a local root and with an fsspec URL root (``file://``, ``memory://``: real fsspec
backends) shared by two machines with their own mirrors."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from db.storage import Storage, StorageMissing, is_ref

HASH = hashlib.sha256(b"examples").hexdigest()
UID = "0123456789abcdef0123456789abcdef"


def test_paths_inside_the_root_become_references_and_everything_else_stays(tmp_path):
    store = Storage(root=str(tmp_path / "root"))
    dataset = tmp_path / "root" / "datasets" / HASH
    adapter = tmp_path / "root" / "jobs" / UID / "adapter"
    assert store.ref_for(dataset) == f"datasets/{HASH}"
    assert store.ref_for(adapter) == f"jobs/{UID}/adapter"
    # A user's own directory, even inside the root but outside ftm's areas, is theirs.
    for kept in (
        str(tmp_path / "models" / "llama"),
        str(tmp_path / "root" / "models" / "tiny"),
        str(tmp_path / "root" / "jobs" / "not-a-uid" / "adapter"),
        "meta-llama/Llama-3.1-8B",  # a hub id: never a reference
        "ft:gpt-4o-mini:org::abc",
        None,
    ):
        assert store.ref_for(kept) == kept
    assert not is_ref("meta-llama/Llama-3.1-8B") and not is_ref(f"jobs/{UID}/../../etc")


def test_a_reference_is_found_under_another_machines_root_and_a_missing_one_says_what_to_set(
    tmp_path,
):
    first = tmp_path / "first" / "jobs" / UID / "adapter"
    first.mkdir(parents=True)
    ref = Storage(root=str(tmp_path / "first")).ref_for(first)
    moved = tmp_path / "moved"
    (tmp_path / "first").rename(moved)
    assert Storage(root=str(moved)).resolve(ref) == str(moved / "jobs" / UID / "adapter")
    with pytest.raises(StorageMissing) as missing:
        Storage(root=str(tmp_path / "elsewhere")).local_path(ref, what="dataset 'tickets'")
    message = str(missing.value)
    assert f"dataset 'tickets''s file jobs/{UID}/adapter" in message
    assert f"not under the storage root {tmp_path / 'elsewhere'}" in message
    assert "[storage] root" in message and "FTM_STORAGE__ROOT" in message


def _write(store: Storage, ref: str, files: dict[str, str]) -> Path:
    base = store.local_dir / ref
    for name, text in files.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text(text)
    return base


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_a_url_root_is_written_through_fsspec_and_read_into_another_machines_mirror(
    tmp_path, scheme
):
    url = f"file://{tmp_path / 'bucket'}" if scheme == "file" else f"memory://ftm-{tmp_path.name}"
    a = Storage(root=url, cache_dir=tmp_path / "a-cache")
    b = Storage(root=url, cache_dir=tmp_path / "b-cache")
    dataset = _write(a, f"datasets/{HASH}", {"train.jsonl": "{}\n", "validation.jsonl": ""})
    adapter = _write(a, f"jobs/{UID}/adapter", {"adapter_config.json": "{}", "w/x.bin": "x"})
    assert a.publish(dataset) == f"datasets/{HASH}"
    assert a.publish(adapter) == f"jobs/{UID}/adapter"

    train = b.local_path(f"datasets/{HASH}/train.jsonl")
    assert train == tmp_path / "b-cache" / "datasets" / HASH / "train.jsonl"
    assert train.read_text() == "{}\n"
    got = Path(b.resolve(f"jobs/{UID}/adapter"))
    assert got.is_relative_to(tmp_path / "b-cache")
    assert (got / "adapter_config.json").read_text() == "{}" and (
        got / "w/x.bin"
    ).read_text() == "x"
    with pytest.raises(StorageMissing, match=f"not under the storage root {url}"):
        b.local_path(f"jobs/{UID.replace('0', 'f')}/adapter")


def test_a_file_url_root_serves_another_process(tmp_path):
    """Machines are processes: what one publishes, a separate interpreter fetches."""
    url = f"file://{tmp_path / 'bucket'}"
    a = Storage(root=url, cache_dir=tmp_path / "a-cache")
    a.publish(_write(a, f"datasets/{HASH}", {"train.jsonl": "line\n"}))
    code = (
        "import sys; from pathlib import Path; from db.storage import Storage; "
        f"s = Storage(root={url!r}, cache_dir=Path({str(tmp_path / 'b-cache')!r})); "
        f"print(s.local_path('datasets/{HASH}/train.jsonl').read_text(), end='')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "line\n"
