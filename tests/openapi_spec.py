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
import re
from functools import cache
from typing import Any

import jsonschema

from tests.conftest import SPECS_DIR

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


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    patterns = []
    for template in load_spec()["paths"]:
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        patterns.append((re.compile(f"^{regex}$"), template))
    # Literal segments beat placeholders: /files/{id}/content before /files/{id}.
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
    raise AssertionError(f"no path in the spec matches {path}")


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node and node["$ref"].startswith("#/components/"):
        _, _, section, name = node["$ref"].split("/", 3)
        node = load_spec()["components"][section][name]
    return node


def response_schema(path: str, method: str, status: int) -> dict[str, Any]:
    """The JSON schema the spec gives for this response (``$ref``s left to the validator)."""
    template = spec_path(path)
    operation = load_spec()["paths"][template].get(method.lower())
    assert operation is not None, f"the spec has no {method.upper()} {template}"
    response = operation.get("responses", {}).get(str(status))
    if response is None:
        if 200 <= status < 300:
            raise AssertionError(f"the spec describes no {status} for {method.upper()} {template}")
        return {"$ref": "#/components/schemas/ErrorResponse"}
    content = _resolve(response).get("content", {})
    media = content.get("application/json") or next(iter(content.values()), None)
    assert media is not None, f"the spec gives no body for {status} {method.upper()} {template}"
    return media["schema"]


def _make_validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    # $refs ("#/components/...") resolve against this root, which carries the components.
    root = {**schema, "components": load_spec()["components"]}
    return jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@cache
def _validator(path_template: str, method: str, status: int) -> jsonschema.Draft202012Validator:
    return _make_validator(response_schema(path_template, method, status))


@cache
def _component_validator(name: str) -> jsonschema.Draft202012Validator:
    assert name in load_spec()["components"]["schemas"], f"the spec has no schema {name}"
    return _make_validator({"$ref": f"#/components/schemas/{name}"})


def validate_component(name: str, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` if ``body`` does not fit the named component
    schema (e.g. ``ErrorResponse`` for an error from a path the spec does not have)."""
    _component_validator(name).validate(body)


def validate_response(path: str, method: str, status: int, body: Any) -> None:
    """Raise ``jsonschema.ValidationError`` if ``body`` does not fit the spec's schema."""
    template = spec_path(path)
    _validator(template, method.lower(), status).validate(body)
    if template == "/files" and method.lower() == "get" and 200 <= status < 300 and body["data"]:
        assert body["first_id"] == body["data"][0]["id"], "first_id is not the page's first id"
        assert body["last_id"] == body["data"][-1]["id"], "last_id is not the page's last id"
