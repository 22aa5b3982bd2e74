"""Validate response bodies against the official OpenAI OpenAPI spec.

Reusable by any test that talks to the API (or the sandbox)::

    from tests.openapi_spec import validate_response

    def test_something():
        validate_response("/fine_tuning/jobs/ftjob-abc", "get", 200, body)

``path`` may be a concrete path (``/v1/files/file-abc``) or the spec's template
(``/files/{file_id}``); a ``/v1`` prefix is ignored. Success bodies are checked against the
operation's response schema; error statuses the operation does not describe against
``ErrorResponse``. Every ``$ref`` resolves into the spec's ``components``.

The spec is the copy vendored in ``tests/specs/openai/openapi.json`` (source, commit and
licence in the README beside it); it is part of the repository, so nothing is skipped.

Dialect fixes (the document is OpenAPI 3.1 but keeps some 3.0 idioms JSON Schema 2020-12
reads differently; these restore the meaning its authors intended):
- ``nullable: true`` -> the schema also accepts null;
- ``exclusiveMinimum: true`` beside ``minimum: X`` -> ``exclusiveMinimum: X``.

Documented allowances (where the live service differs from the spec; nothing else is
loosened):
- ``FineTuningJob.status`` also accepts ``paused``: the spec has pause/resume routes but
  its status enum lacks the state they lead to.
- ``ListFilesResponse.first_id``/``last_id`` may be null on an empty page (there is no
  id to give); on a non-empty page they must be the first and last ids of ``data``,
  which this module checks on top of the schema.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from tests.conftest import SPECS_DIR
from tests.spec_document import SpecDocument

SPEC_PATH = SPECS_DIR / "openai" / "openapi.json"


def _fix_dialect(node: Any) -> Any:
    if isinstance(node, list):
        return [_fix_dialect(item) for item in node]
    if not isinstance(node, dict):
        return node
    fixed = {key: _fix_dialect(value) for key, value in node.items()}
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if fixed.get(bound) is True and limit in fixed:
            fixed[bound] = fixed.pop(limit)
        elif fixed.get(bound) is False:
            del fixed[bound]
    if fixed.pop("nullable", False) is True:
        return {"anyOf": [fixed, {"type": "null"}]}
    return fixed


def _apply_allowances(schemas: dict[str, Any]) -> None:
    status = schemas["FineTuningJob"]["properties"]["status"]
    assert "paused" not in status["enum"], "the spec now lists 'paused': drop this allowance"
    status["enum"] = [*status["enum"], "paused"]
    files = schemas["ListFilesResponse"]["properties"]
    for key in ("first_id", "last_id"):
        files[key] = {"anyOf": [files[key], {"type": "null"}]}


@cache
def load_spec() -> dict[str, Any]:
    """The spec with dialect fixes and allowances applied (read once)."""
    spec = json.loads(SPEC_PATH.read_text())
    spec = {"paths": spec["paths"], "components": _fix_dialect(copy.deepcopy(spec["components"]))}
    _apply_allowances(spec["components"]["schemas"])
    return spec


DOCUMENT = SpecDocument(
    load_spec, service="OpenAI", error_schema="ErrorResponse", error_without_body=False
)
spec_path = DOCUMENT.spec_path
response_schema = DOCUMENT.response_schema


def validate_component(name: str, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` if ``body`` does not fit the named component
    schema (e.g. ``ErrorResponse`` for an error from a path the spec does not have)."""
    DOCUMENT.validate_component(name, body)


def validate_response(path: str, method: str, status: int, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` if ``body`` does not fit the spec's schema."""
    template = DOCUMENT.validate_response(path, method, status, body)
    if template == "/files" and method.lower() == "get" and 200 <= status < 300 and body["data"]:
        assert body["first_id"] == body["data"][0]["id"], "first_id is not the page's first id"
        assert body["last_id"] == body["data"][-1]["id"], "last_id is not the page's last id"
