"""The emulator's file validation (app.sandbox.validation) on files written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.sandbox.records import StoredFile
from app.sandbox.validation import validate_file
from tests.sandbox.conftest import sentiment_rows

# Never opens a database: run in the SQLite pass only (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


def _stored(tmp_path: Path, lines: list[str]) -> StoredFile:
    path = tmp_path / "train.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return StoredFile(
        id="file-1",
        filename="train.jsonl",
        purpose="fine-tune",
        bytes=path.stat().st_size,
        created_at=0.0,
        path=path,
    )


def test_a_model_outside_the_known_tokenizer_families_is_checked_with_the_default(tmp_path):
    good = _stored(tmp_path, [json.dumps(r) for r in sentiment_rows()])
    assert (
        validate_file(
            good, "file-1", param="training_file", model="babbage-002", method="supervised"
        )
        is None
    )
    bad = _stored(tmp_path, [json.dumps(r) for r in sentiment_rows()] + ["{not json"])
    error = validate_file(
        bad, "file-1", param="training_file", model="babbage-002", method="supervised"
    )
    assert error["code"] == "invalid_training_file" and error["param"] == "training_file"
    assert f"Line {len(sentiment_rows()) + 1}:" in error["message"]


def test_the_error_reported_is_the_reports_first_error_a_line_before_a_file_level_one(tmp_path):
    rows = [json.dumps(r) for r in sentiment_rows()[:3]]
    stored = _stored(tmp_path, [rows[0], '{"messages": "not a list"}', rows[1], rows[2]])
    error = validate_file(
        stored, "file-1", param="training_file", model="gpt-4o-mini", method="supervised"
    )
    # too few examples (a file-level problem, line 0) and a bad line 2: the line wins,
    # as `CheckReport.first_error` says the service answers
    assert error is not None and "Line 2:" in error["message"], error


def test_a_short_validation_file_is_not_refused_for_its_size(tmp_path):
    stored = _stored(tmp_path, [json.dumps(r) for r in sentiment_rows()[:2]])
    assert (
        validate_file(
            stored, "file-1", param="validation_file", model="gpt-4o-mini", method="supervised"
        )
        is None
    )
