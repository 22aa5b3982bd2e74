"""One OpenAPI document's response checks, shared by the per-service modules
(tests/openapi_spec.py for OpenAI, tests/together_spec.py for Together AI): path
templates, the response schema of an operation, and cached JSON-schema validators whose
``$ref``s resolve into the document's ``components``."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache, cached_property
from typing import Any

import jsonschema


class SpecDocument:
    """Response validation against one loaded spec.

    Args:
        load: returns ``{"paths": ..., "components": ...}`` with the service's dialect
            fixes and allowances applied; called once, on first use.
        service: the service's name, for messages ("the OpenAI spec has no ...").
        error_schema: the component an error status is checked against when the
            operation does not describe that status.
        error_without_body: an error the operation describes without a JSON body is
            checked against ``error_schema`` (True) rather than refused (False).
    """

    def __init__(
        self,
        load: Callable[[], dict[str, Any]],
        *,
        service: str,
        error_schema: str,
        error_without_body: bool,
    ) -> None:
        self._load = load
        self.service = service
        self.error_ref = {"$ref": f"#/components/schemas/{error_schema}"}
        self.error_without_body = error_without_body
        self.validator = cache(self._validator)

    @cached_property
    def spec(self) -> dict[str, Any]:
        return self._load()

    @cached_property
    def _templates(self) -> list[tuple[re.Pattern[str], str]]:
        patterns = []
        for template in self.spec["paths"]:
            regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            patterns.append((re.compile(f"^{regex}$"), template))
        # Literal segments beat placeholders: /files/{id}/content before /files/{id}.
        patterns.sort(key=lambda p: p[1].count("{"))
        return patterns

    def spec_path(self, path: str) -> str:
        """The spec's template for a concrete path (``/v1`` prefix and query ignored)."""
        path = path.split("?", 1)[0]
        if path.startswith("/v1/"):
            path = path[3:]
        if path in self.spec["paths"]:
            return path
        for pattern, template in self._templates:
            if pattern.match(path):
                return template
        raise AssertionError(f"no path in the {self.service} spec matches {path}")

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node and node["$ref"].startswith("#/components/"):
            _, _, section, name = node["$ref"].split("/", 3)
            node = self.spec["components"][section][name]
        return node

    def response_schema(self, path: str, method: str, status: int) -> dict[str, Any]:
        """The JSON schema the spec gives for this response (``$ref``s left to the
        validator)."""
        template = self.spec_path(path)
        operation = self.spec["paths"][template].get(method.lower())
        assert operation is not None, f"the {self.service} spec has no {method.upper()} {template}"
        response = operation.get("responses", {}).get(str(status))
        if response is None:
            if 200 <= status < 300:
                raise AssertionError(
                    f"the {self.service} spec describes no {status} for {method.upper()} {template}"
                )
            return self.error_ref
        content = self._resolve(response).get("content") or {}
        if self.error_without_body:
            media = content.get("application/json")
            if media is None:
                return self.error_ref
        else:
            media = content.get("application/json") or next(iter(content.values()), None)
            assert media is not None, (
                f"the {self.service} spec gives no body for {status} {method.upper()} {template}"
            )
        return media["schema"]

    def _make_validator(self, schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
        # $refs ("#/components/...") resolve against this root, which carries the components.
        root = {**schema, "components": self.spec["components"]}
        return jsonschema.Draft202012Validator(
            root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )

    def _validator(self, template: str, method: str, status: int) -> Any:
        return self._make_validator(self.response_schema(template, method, status))

    def validate_component(self, name: str, body: Any) -> None:
        """Raise ``jsonschema.ValidationError`` if ``body`` does not fit the named
        component schema."""
        assert name in self.spec["components"]["schemas"], (
            f"the {self.service} spec has no schema {name}"
        )
        self._make_validator({"$ref": f"#/components/schemas/{name}"}).validate(body)

    def validate_response(self, path: str, method: str, status: int, body: Any) -> str:
        """Raise ``jsonschema.ValidationError`` if ``body`` does not fit the spec's schema;
        return the path's template."""
        template = self.spec_path(path)
        self.validator(template, method.lower(), status).validate(body)
        return template
