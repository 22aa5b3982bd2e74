"""Validate response bodies against Together AI's official OpenAPI spec, vendored in
``tests/specs/together/openapi.yaml`` (source, commit and licence in the README beside it).

    from tests.together_spec import validate_response

    validate_response("/v1/fine-tunes/ft-...", "get", 200, body)

``path`` may be concrete or the spec's template; a ``/v1`` prefix is ignored. Success
bodies are checked against the operation's JSON response schema; an error status the
operation does not describe against ``ErrorData``. The dialect fixes are
tests/openapi_spec.py's (``nullable``, boolean ``exclusiveMinimum``).

Documented allowances (where the live service differs from the spec; nothing else is
loosened):
- ``FinetuneResponse.id`` is declared ``format: uuid``, but the service's ids are a
  UUID with an ``ft-`` prefix (the spec's own examples show ``ft-...``): the format is
  replaced by that exact pattern.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

import yaml

from tests.conftest import SPECS_DIR
from tests.openapi_spec import _fix_dialect
from tests.spec_document import SpecDocument

SPEC_PATH = SPECS_DIR / "together" / "openapi.yaml"
JOB_ID_PATTERN = "^ft-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def _apply_allowances(schemas: dict[str, Any]) -> None:
    job_id = schemas["FinetuneResponse"]["properties"]["id"]
    assert job_id.get("format") == "uuid", "the spec changed FinetuneResponse.id: review this"
    del job_id["format"]
    job_id["pattern"] = JOB_ID_PATTERN


@cache
def load_spec() -> dict[str, Any]:
    """The spec with dialect fixes and allowances applied (read once)."""
    spec = yaml.safe_load(SPEC_PATH.read_text())
    spec = {"paths": spec["paths"], "components": _fix_dialect(copy.deepcopy(spec["components"]))}
    _apply_allowances(spec["components"]["schemas"])
    return spec


DOCUMENT = SpecDocument(
    load_spec, service="Together", error_schema="ErrorData", error_without_body=True
)
spec_path = DOCUMENT.spec_path
response_schema = DOCUMENT.response_schema


def validate_component(name: str, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` if ``body`` does not fit the named schema."""
    DOCUMENT.validate_component(name, body)


def validate_response(path: str, method: str, status: int, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` if ``body`` does not fit the spec's schema."""
    DOCUMENT.validate_response(path, method, status, body)
