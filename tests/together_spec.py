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
import re
from functools import cache
from typing import Any

import jsonschema
import yaml

from tests.conftest import SPECS_DIR
from tests.openapi_spec import _fix_dialect

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


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    patterns = []
    for template in load_spec()["paths"]:
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        patterns.append((re.compile(f"^{regex}$"), template))
    # Literal segments beat placeholders: /fine-tunes/estimate-price before /fine-tunes/{id}.
    patterns.sort(key=lambda p: p[1].count("{"))
    return patterns


def spec_path(path: str) -> str:
    """The spec's template for a concrete path (``/v1`` prefix and query ignored)."""
    path = path.split("?", 1)[0]
    if path.startswith("/v1/"):
        path = path[3:]
    if path in load_spec()["paths"]:
        return path
    for pattern, template in _templates():
        if pattern.match(path):
            return template
    raise AssertionError(f"no path in the Together spec matches {path}")


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node and node["$ref"].startswith("#/components/"):
        _, _, section, name = node["$ref"].split("/", 3)
        node = load_spec()["components"][section][name]
    return node


def response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    """The JSON schema the spec gives for this response (``$ref``s left to the validator)."""
    template = spec_path(path)
    operation = load_spec()["paths"][template].get(method.lower())
    assert operation is not None, f"the Together spec has no {method.upper()} {template}"
    response = operation.get("responses", {}).get(str(status))
    if response is None:
        if 200 <= status < 300:
            raise AssertionError(f"the spec describes no {status} for {method.upper()} {template}")
        return {"$ref": "#/components/schemas/ErrorData"}
    content = _resolve(response).get("content") or {}
    media = content.get("application/json")
    if media is None:  # an error the spec describes without a body: Together's ErrorData
        return {"$ref": "#/components/schemas/ErrorData"}
    return media["schema"]


def _make_validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    root = {**schema, "components": load_spec()["components"]}
    return jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@cache
def _validator(template: str, method: str, status: int) -> jsonschema.Draft202012Validator:
    return _make_validator(response_schema(template, method, status))


def validate_component(name: str, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` if ``body`` does not fit the named schema."""
    assert name in load_spec()["components"]["schemas"], f"the spec has no schema {name}"
    _make_validator({"$ref": f"#/components/schemas/{name}"}).validate(body)


def validate_response(path: str, method: str, status: int, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` if ``body`` does not fit the spec's schema."""
    _validator(spec_path(path), method.lower(), status).validate(body)
