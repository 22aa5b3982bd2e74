"""A tiny Llama-architecture model built once per test session (no download), for any test
that needs a real model: ``from tests.tiny import tiny_model  # noqa: F401`` in a conftest,
then take ``tiny_model`` (its directory) as a fixture argument.

Also small datasets of the labelling task it is meant to learn.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.local import demo_data


def build(path: Path) -> Path:
    import torch

    from providers.local.tiny_model import build_tiny_model

    torch.set_num_threads(2)
    return build_tiny_model(path, demo_data.corpus_texts())


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny pre-trained Llama with a chat template (built in ~5 s)."""
    return build(tmp_path_factory.mktemp("tiny-model") / "model")


HELD_OUT_START = 160
"""Examples from here on (seed 1) are never in `labelling_files`' splits."""


def labelling_files(
    directory: Path, n_train: int = 96, n_validation: int = 24
) -> tuple[Path, Path]:
    """train.jsonl and validation.jsonl of the labelling task (chat format)."""
    train = demo_data.write_jsonl(
        directory / "train.jsonl", demo_data.labelling_examples(n_train, seed=1)
    )
    val = demo_data.write_jsonl(
        directory / "validation.jsonl",
        demo_data.labelling_examples(n_validation, seed=1, start=n_train),
    )
    return train, val


def add_labelling_dataset(
    engine, directory: Path, n_train: int = 32, n_validation: int = 8, name: str = "labels"
) -> None:
    """The labelling task's files in ``directory``, registered as the dataset ``name``
    (as `ftm data add` would leave it), for tests that launch a local job on it."""
    from db.engine import write_session
    from db.models import Dataset

    directory.mkdir(parents=True, exist_ok=True)
    labelling_files(directory, n_train=n_train, n_validation=n_validation)
    with write_session(engine) as session:
        session.add(
            Dataset(
                name=name,
                content_hash=name,
                format="chat",
                source_path=str(directory),
                n_examples=n_train + n_validation,
                n_train=n_train,
                n_validation=n_validation,
                val_fraction=0.2,
                split_seed=0,
                verdict="ok",
                data_dir=str(directory),
            )
        )
