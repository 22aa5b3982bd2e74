"""Weights from the Together emulator: ``GET /v1/finetune/download`` serves a real PEFT
adapter (or merged model) of the emulator's tiny base model as a ``.tar.zst``, and
providers/together/weights.py downloads it through the real SDK over real HTTP, unpacks
it atomically in PEFT's layout, and refuses damaged archives without leaving anything."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import zstandard

from app.sandbox.together.catalog import MODELS, TINY_MODEL, TINY_MODEL_PARAMS
from app.sandbox.together.server import TogetherSandboxServer
from providers.errors import UnsupportedOperation
from providers.local import demo_data
from providers.together.weights import WeightsDownloadError, download_weights
from tests.sandbox.conftest import START
from tests.sandbox.test_together_emulator import make_client
from tests.together_weights import finished_tiny_job

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database

CONFIG_WITHOUT_FAULT = {"peft_type": "LORA", "r": 4, "base_model_name_or_path": TINY_MODEL}
PROMPT = [{"role": "user", "content": "Label: the parcel arrived broken"}]


def _generate(model, tokenizer) -> tuple[list[int], object]:
    import torch

    text = tokenizer.apply_chat_template(PROMPT, tokenize=False, add_generation_prompt=True)
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        logits = model(**enc).logits
        ids = model.generate(**enc, max_new_tokens=6, do_sample=False)
    return ids[0, enc["input_ids"].shape[1] :].tolist(), logits


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_download_unpack_and_load_the_adapter_on_the_tiny_base(server, client, recorder, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    job_id = finished_tiny_job(client, server, tmp_path, lora_r=4, lora_alpha=8)
    dest = tmp_path / "jobs" / "job-1" / "adapter"

    meta = download_weights(client, job_id, dest, "adapter")

    assert (dest / "adapter_config.json").is_file()
    assert (dest / "adapter_model.safetensors").is_file()
    assert meta["base_model"] == TINY_MODEL and meta["rank"] == 4 and meta["bytes"] > 0
    assert json.loads((dest / "adapter_config.json").read_text())["r"] == 4
    assert _leftovers(dest.parent) == []
    assert ("/finetune/download", "get", 200) in recorder.seen

    base_dir = server.state.weights.base_dir
    tokenizer = AutoTokenizer.from_pretrained(dest)  # the archive carries the tokenizer
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    assert sum(p.numel() for p in base.parameters()) == TINY_MODEL_PARAMS
    base_tokens, base_logits = _generate(base, tokenizer)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), dest)
    tuned_tokens, tuned_logits = _generate(tuned.eval(), tokenizer)
    assert len(tuned_tokens) >= 1
    assert not (tuned_logits - base_logits).abs().max() < 1e-4, "the adapter changes nothing"

    # Downloading again replaces the directory whole, and the bytes are the same.
    weights = (dest / "adapter_model.safetensors").read_bytes()
    download_weights(client, job_id, dest, "adapter")
    assert (dest / "adapter_model.safetensors").read_bytes() == weights
    assert _leftovers(dest.parent) == []


def test_the_merged_model_equals_base_plus_adapter(server, client, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    job_id = finished_tiny_job(client, server, tmp_path)
    adapter = download_weights(client, job_id, tmp_path / "adapter", "adapter")
    meta = download_weights(client, job_id, tmp_path / "merged", "merged")
    assert adapter["format"] == "peft" and meta["format"] == "safetensors"
    assert (tmp_path / "merged" / "config.json").is_file()

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "merged")
    merged_tokens, merged_logits = _generate(
        AutoModelForCausalLM.from_pretrained(tmp_path / "merged"), tokenizer
    )
    base = AutoModelForCausalLM.from_pretrained(server.state.weights.base_dir)
    peft_tokens, peft_logits = _generate(
        PeftModel.from_pretrained(base, tmp_path / "adapter").eval(), tokenizer
    )
    assert (merged_logits - peft_logits).abs().max() < 1e-4
    assert merged_tokens == peft_tokens


def test_the_sdk_download_manager_reads_the_size_and_gets_the_archive(server, client, tmp_path):
    """The SDK's own downloader (what ``together fine-tuning download`` runs) first asks
    for two bytes to learn the size, then streams the whole file."""
    from together.lib import DownloadManager

    job_id = finished_tiny_job(client, server, tmp_path)
    path, size = DownloadManager(client).download(
        url=f"/v1/finetune/download?ft_id={job_id}&checkpoint=adapter",
        output=tmp_path / "out.tar.zst",
        remote_name="unused",
        fetch_metadata=True,
    )
    data = Path(path).read_bytes()
    assert size == len(data) > 0
    with tarfile.open(fileobj=io.BytesIO(zstandard.decompress(data, 1 << 26)), mode="r:") as tar:
        names = set(tar.getnames())
    assert {"adapter_config.json", "adapter_model.safetensors"} <= names


def _archive_on_the_server(server: TogetherSandboxServer, job_id: str) -> Path:
    # The newest: seeded emulators reuse job ids, for jobs trained in other tests.
    paths = (server.state.weights.root / "archives").glob(f"{job_id}-adapter-*.tar.zst")
    return max(paths, key=lambda p: p.stat().st_mtime_ns)


def _damage(archive: Path, data: bytes, damage: str, adapter_weights: bytes) -> None:
    if damage == "truncated":
        archive.write_bytes(data[: len(data) // 2])
    elif damage == "corrupt":
        middle = len(data) // 2
        archive.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:]))
    else:  # a well-formed archive whose adapter weights are cut short
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            for name, content in (
                ("adapter_config.json", json.dumps(CONFIG_WITHOUT_FAULT).encode()),
                ("adapter_model.safetensors", adapter_weights[: len(adapter_weights) // 2]),
            ):
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
        archive.write_bytes(zstandard.compress(raw.getvalue()))


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "not_an_adapter"])
def test_a_damaged_archive_is_refused_and_leaves_nothing(server, client, tmp_path, damage):
    job_id = finished_tiny_job(client, server, tmp_path)
    dest = tmp_path / "job" / "adapter"
    download_weights(client, job_id, dest, "adapter")  # a previous good download
    good = (dest / "adapter_model.safetensors").read_bytes()
    archive = _archive_on_the_server(server, job_id)
    data = archive.read_bytes()
    try:
        _damage(archive, data, damage, good)
        with pytest.raises(WeightsDownloadError) as caught:
            download_weights(client, job_id, dest, "adapter")
        # A first download that fails creates no directory at all.
        with pytest.raises(WeightsDownloadError):
            download_weights(client, job_id, tmp_path / "fresh" / "adapter", "adapter")
    finally:
        archive.write_bytes(data)  # the store is shared by the session's emulators

    message = caught.value.message
    assert job_id in message or "archive" in message
    assert "Nothing was written" in message and "again" in message
    # The previous download is intact and nothing half-written is left beside it.
    assert (dest / "adapter_model.safetensors").read_bytes() == good
    assert _leftovers(dest.parent) == []
    assert not (tmp_path / "fresh" / "adapter").exists()
    assert _leftovers(tmp_path / "fresh") == []


def test_refusals_say_what_and_what_to_do(server, client, recorder, tmp_path):
    train = demo_data.write_jsonl(tmp_path / "t.jsonl", demo_data.labelling_examples(16, seed=1))
    file_id = client.files.upload(train).id
    running = client.fine_tuning.create(
        training_file=file_id, model=TINY_MODEL, lora=True, batch_size=8, train_on_inputs=False
    )
    with pytest.raises(WeightsDownloadError, match="HTTP 400.*once it has completed"):
        download_weights(client, running.id, tmp_path / "a", "adapter")
    with pytest.raises(WeightsDownloadError, match="HTTP 404"):
        download_weights(client, "ft-00000000-0000-4000-8000-000000000000", tmp_path / "b")
    with pytest.raises(WeightsDownloadError, match="HTTP 404.*no checkpoint at step 999"):
        download_weights(client, running.id, tmp_path / "b", "adapter", checkpoint_step=999)

    full = finished_tiny_job(client, server, tmp_path, lora=False)
    with pytest.raises(UnsupportedOperation, match="full fine-tune.*'merged'"):
        download_weights(client, full, tmp_path / "c", "adapter")
    assert download_weights(client, full, tmp_path / "c", "merged")["format"] == "safetensors"

    other = next(name for name in MODELS if name != TINY_MODEL)
    job = client.fine_tuning.create(
        training_file=file_id, model=other, lora=True, batch_size=8, train_on_inputs=False
    )
    server.advance(100_000)
    with pytest.raises(WeightsDownloadError, match=f"only for jobs trained on {TINY_MODEL}"):
        download_weights(client, job.id, tmp_path / "d", "adapter")
    assert not any((tmp_path / name).exists() for name in "abd")
    assert ("/finetune/download", "get", 400) in recorder.seen
    assert ("/finetune/download", "get", 404) in recorder.seen


@pytest.mark.parametrize(
    ("fault", "expected"),
    [("server_error", "HTTP 500"), ("drop_before", "failed \\(APIConnectionError")],
)
def test_a_failed_transfer_is_retryable_and_writes_nothing(
    server, client, tmp_path, fault, expected
):
    from app.sandbox.faults import FaultPlan

    job_id = finished_tiny_job(client, server, tmp_path)
    server.faults = FaultPlan().next(1, fault, "jobs.download")
    with pytest.raises(WeightsDownloadError, match=expected) as caught:
        download_weights(client, job_id, tmp_path / "job" / "adapter", "adapter")
    assert caught.value.retryable
    assert not (tmp_path / "job" / "adapter").exists()
    assert _leftovers(tmp_path / "job") == []
    # The fault was one request: the next download succeeds.
    download_weights(client, job_id, tmp_path / "job" / "adapter", "adapter")
    assert (tmp_path / "job" / "adapter" / "adapter_model.safetensors").is_file()


def test_an_intermediate_checkpoint_has_its_own_adapter(server, client, tmp_path):
    job_id = finished_tiny_job(client, server, tmp_path, n_epochs=2, n_checkpoints=2)
    steps = sorted({c.step for c in client.fine_tuning.list_checkpoints(job_id).data})
    assert len(steps) == 2
    meta = download_weights(client, job_id, tmp_path / "mid", "adapter", checkpoint_step=steps[0])
    download_weights(client, job_id, tmp_path / "final", "adapter")
    assert meta["checkpoint_step"] == steps[0] and meta["format"] == "peft"
    mid = (tmp_path / "mid" / "adapter_model.safetensors").read_bytes()
    assert mid != (tmp_path / "final" / "adapter_model.safetensors").read_bytes()


class CuttingServer(TogetherSandboxServer):
    """The emulator, with every download cut off after its first kilobyte (the
    Content-Length still announces the whole archive): a connection lost mid-transfer."""

    CUT_AT = 1024

    def _create_app(self):
        app = super()._create_app()

        async def cut_downloads(scope, receive, send):
            if scope["type"] != "http" or scope["path"] != "/v1/finetune/download":
                return await app(scope, receive, send)

            async def send_cut(message):
                if message["type"] == "http.response.body":
                    message = {**message, "body": message["body"][: self.CUT_AT]}
                    message["more_body"] = False
                await send(message)

            return await app(scope, receive, send_cut)

        return cut_downloads


def test_a_transfer_cut_mid_body_is_refused_and_writes_nothing(
    together_weights_dir, recorder, tmp_path
):
    with CuttingServer(
        seconds_per_step=1.0, start=START, frozen=True, data_dir=tmp_path / "tg",
        weights_dir=together_weights_dir,
    ) as server:  # fmt: skip
        client = make_client(server, None)
        job_id = finished_tiny_job(client, server, tmp_path)
        with pytest.raises(
            WeightsDownloadError, match="weights failed \\(RemoteProtocolError"
        ) as caught:
            download_weights(client, job_id, tmp_path / "job" / "adapter", "adapter")
        client.close()
    assert caught.value.retryable and "run it again" in caught.value.message
    assert not (tmp_path / "job" / "adapter").exists()
    assert _leftovers(tmp_path / "job") == []
