"""The Together emulator's downloadable weights, shared by the tests that need them:
``from tests.together_weights import together_weights_dir  # noqa: F401`` then take
``together_weights_dir`` as a fixture, and pass it as the servers' ``weights_dir``.

The emulator's store builds its tiny base model there once per test session (seconds, up
to a minute on a loaded CPU); each job's archives are built on demand.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import together

from app.sandbox.together.artifacts import WeightsStore
from app.sandbox.together.catalog import TINY_MODEL
from app.sandbox.together.server import TogetherSandboxServer
from providers.local import demo_data


@pytest.fixture(scope="session")
def together_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The emulators' shared weights store, its base model already built (by the
    emulator's own code) so no request waits for it."""
    import torch

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("together-weights")
    WeightsStore(root).base()
    return root


def finished_tiny_job(
    client: together.Together, server: TogetherSandboxServer, directory: Path, **options
) -> str:
    """A completed LoRA job (unless ``lora=False``) on the emulator's tiny model; its id."""
    train = demo_data.write_jsonl(
        directory / "train.jsonl", demo_data.labelling_examples(24, seed=1)
    )
    file_id = client.files.upload(train).id
    options.setdefault("lora", True)
    options.setdefault("n_epochs", 1)
    options.setdefault("batch_size", 8)
    job = client.fine_tuning.create(
        training_file=file_id, model=TINY_MODEL, train_on_inputs=False, **options
    )
    server.advance(100_000)
    assert client.fine_tuning.retrieve(job.id).status == "completed"
    return job.id
