"""Where eval examples come from: a dataset's held-out split (or any split of another
dataset), through the dataset store, so a run can be reloaded from its stored config."""

from __future__ import annotations

from sqlalchemy import Engine

from app.evaluation.candidates import EvalExample, split_example
from db.engine import read_session
from db.models import Dataset


class EvalDataError(ValueError):
    """The eval data cannot be found or used."""


def find_dataset(engine: Engine, name_or_id: str | int) -> Dataset:
    from app.datasets.store import get_dataset

    with read_session(engine) as session:
        try:
            dataset = get_dataset(session, name_or_id)
        except LookupError as exc:
            raise EvalDataError(str(exc)) from None
    if dataset is None:
        raise EvalDataError(f"no dataset {name_or_id!r}; list them with: ftm data list")
    return dataset


def _load(engine: Engine, dataset_id: int | None, split: str) -> list[dict]:
    from app.datasets.store import load_examples

    if dataset_id is None:
        raise EvalDataError("this eval has no dataset to load examples from")
    dataset = find_dataset(engine, dataset_id)
    try:
        if split == "all":
            return load_examples(dataset, "train") + load_examples(dataset, "validation")
        return load_examples(dataset, split)
    except (FileNotFoundError, ValueError) as exc:  # files gone, or a bad split name
        raise EvalDataError(f"dataset {dataset.name!r} (id {dataset.id}): {exc}") from None


def eval_examples(
    engine: Engine, dataset_id: int | None, split: str = "validation"
) -> list[EvalExample]:
    """The examples of ``split`` as prompts and expected answers, indexed in split order."""
    raw = _load(engine, dataset_id, split)
    if not raw:
        raise EvalDataError(
            f"dataset {dataset_id} has no {split} examples to evaluate on; re-add it with a "
            "held-out fraction, or pass --eval-dataset"
        )
    return [split_example(example, i) for i, example in enumerate(raw)]


def training_examples(engine: Engine, dataset_id: int | None) -> list[dict]:
    """The training half, where few-shot examples are drawn from."""
    return _load(engine, dataset_id, "train")
