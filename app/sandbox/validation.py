"""File validation for emulated jobs: the same checks as ``ftm data check``
(:func:`app.datasets.check.check_file`), reported the way the service reports a bad file —
the job fails with ``error = {code, message, param}``.

On top of the data check, the file's format must suit the job's method, as the service
requires: chat examples for supervised, preference examples for DPO.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from app.sandbox.records import StoredFile

# The data check's formats the service itself accepts, per method (ftm's own
# "instruction" form is converted to chat before upload; the service never takes it).
ACCEPTED_FORMATS = {"supervised": ("chat",), "dpo": ("preference",)}
EXPECTED_SHAPE = {
    "supervised": 'each line must be a chat example: {"messages": [...]}',
    "dpo": 'each line must be a preference example: {"input": {"messages": [...]}, '
    '"preferred_output": [...], "non_preferred_output": [...]}',
}


def _error(param: str, detail: str) -> dict[str, Any]:
    kind = "training" if param == "training_file" else "validation"
    return {
        "code": f"invalid_{param}",
        "message": f"The job failed due to an invalid {kind} file. {detail}",
        "param": param,
    }


def _tokenizer_model(model: str) -> str | None:
    """``model`` where the data check knows its tokenizer, else None (the default one).

    The service accepts base models outside the tokenizer families ftm knows (e.g.
    babbage-002); a file's shape does not depend on the tokenizer, so it is checked with
    the default one rather than failing the request.
    """
    from app.tokens import encoding_name_for_model

    try:
        encoding_name_for_model(model)
    except KeyError:
        return None
    return model


def validate_file(
    stored: StoredFile | None, file_id: str, *, param: str, model: str, method: str
) -> dict[str, Any] | None:
    """The job error a bad file causes, or None when the file is fit for ``method``."""
    from app.datasets.check import check_file  # the data check is heavier than the sandbox

    if stored is None:
        return _error(param, f"The file {file_id} no longer exists.")
    report = check_file(stored.path, model=_tokenizer_model(model))
    if param == "validation_file":
        # The minimum example count applies to training data only.
        report = replace(
            report, problems=[p for p in report.problems if p.category != "too_few_examples"]
        )
    first = report.first_error()
    if first is not None:
        where = f"Line {first.line}: " if first.line else ""
        return _error(param, f"Invalid file format. {where}{first.message}")
    if report.format not in ACCEPTED_FORMATS[method]:
        return _error(
            param,
            f"Invalid file format for the {method} method: {EXPECTED_SHAPE[method]} "
            f"(the file holds {report.format or 'no'} examples).",
        )
    return None
