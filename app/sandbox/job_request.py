"""Parsing and checking a `POST /fine_tuning/jobs` body, with the API's error wording.

Every problem raises an :class:`~app.sandbox.errors.ApiError` (400) naming the parameter,
e.g. ``param="method.supervised.hyperparameters.n_epochs"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.sandbox.errors import ApiError, invalid

TOP_LEVEL_KEYS = {
    "model",
    "training_file",
    "validation_file",
    "suffix",
    "seed",
    "metadata",
    "integrations",
    "method",
    "hyperparameters",
}
METHODS = ("supervised", "dpo", "reinforcement")
HYPERPARAMETERS = {
    "supervised": ("n_epochs", "batch_size", "learning_rate_multiplier"),
    "dpo": ("n_epochs", "batch_size", "learning_rate_multiplier", "beta"),
}
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_SUFFIX = 64
MAX_SEED = 2_147_483_647


@dataclass(frozen=True)
class JobRequest:
    model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    seed: int | None
    metadata: dict[str, str] | None
    integrations: list[dict[str, Any]] | None
    method: str
    hyperparameters: dict[str, Any]
    """Requested values, ``"auto"`` where not given."""


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _wrong_type(param: str, expected: str, value: Any) -> ApiError:
    return invalid(
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _missing(param: str) -> ApiError:
    return invalid(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _unrecognized(param: str) -> ApiError:
    return invalid(
        f"Unrecognized request argument supplied: {param}", param=param, code="unknown_parameter"
    )


def _string(body: dict, key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise _missing(key)
        return None
    if not isinstance(value, str):
        raise _wrong_type(key, "a string", value)
    if required and not value:
        raise invalid(
            f"Invalid '{key}': empty string. Expected a string with minimum length 1.",
            param=key,
            code="empty_string",
        )
    return value


def _integer_in(param: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(param, "an integer", value)
    if value < low:
        raise invalid(
            f"Invalid '{param}': integer below minimum value. Expected a value greater than or "
            f"equal to {low}, but got {value} instead.",
            param=param,
            code="integer_below_min_value",
        )
    if value > high:
        raise invalid(
            f"Invalid '{param}': integer above maximum value. Expected a value less than or "
            f"equal to {high}, but got {value} instead.",
            param=param,
            code="integer_above_max_value",
        )
    return value


def _positive_number(param: str, value: Any, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _wrong_type(param, "a number", value)
    if value <= 0:
        raise invalid(
            f"Invalid '{param}': number must be greater than 0, but got {value} instead.",
            param=param,
            code="decimal_below_min_value",
        )
    if high is not None and value > high:
        raise invalid(
            f"Invalid '{param}': number above maximum value. Expected a value less than or "
            f"equal to {high}, but got {value} instead.",
            param=param,
            code="decimal_above_max_value",
        )
    return float(value)


def _hyperparameters(raw: Any, param: str, method: str) -> dict[str, Any]:
    allowed = HYPERPARAMETERS[method]
    values: dict[str, Any] = {name: "auto" for name in allowed}
    if raw is None:
        return values
    if not isinstance(raw, dict):
        raise _wrong_type(param, "an object", raw)
    for name, value in raw.items():
        where = f"{param}.{name}"
        if name not in allowed:
            raise _unrecognized(where)
        if value == "auto" or value is None:
            continue
        if isinstance(value, str):
            raise invalid(
                f"Invalid value for '{where}': expected 'auto' or a number, but got '{value}'.",
                param=where,
                code="invalid_value",
            )
        if name == "n_epochs":
            values[name] = _integer_in(where, value, 1, 50)
        elif name == "batch_size":
            values[name] = _integer_in(where, value, 1, 256)
        elif name == "learning_rate_multiplier":
            values[name] = _positive_number(where, value)
        elif name == "beta":
            values[name] = _positive_number(where, value, high=2.0)
    return values


def _metadata(raw: Any) -> dict[str, str] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _wrong_type("metadata", "an object", raw)
    if len(raw) > MAX_METADATA_PAIRS:
        raise invalid(
            f"Invalid 'metadata': too many properties. Expected an object with at most "
            f"{MAX_METADATA_PAIRS} properties, but got an object with {len(raw)} properties instead.",
            param="metadata",
            code="object_above_max_properties",
        )
    for key, value in raw.items():
        if len(key) > MAX_METADATA_KEY:
            raise invalid(
                f"Invalid 'metadata': key '{key[:20]}...' is longer than {MAX_METADATA_KEY} characters.",
                param="metadata",
                code="invalid_metadata",
            )
        if not isinstance(value, str):
            raise _wrong_type(f"metadata.{key}", "a string", value)
        if len(value) > MAX_METADATA_VALUE:
            raise invalid(
                f"Invalid 'metadata.{key}': string too long. Expected a string with maximum "
                f"length {MAX_METADATA_VALUE}, but got a string with length {len(value)} instead.",
                param=f"metadata.{key}",
                code="string_above_max_length",
            )
    return dict(raw)


def _integrations(raw: Any) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise _wrong_type("integrations", "an array", raw)
    if len(raw) > 5:
        raise invalid(
            "Invalid 'integrations': at most 5 integrations are allowed.", param="integrations"
        )
    for index, item in enumerate(raw):
        if (
            not isinstance(item, dict)
            or item.get("type") != "wandb"
            or not isinstance(item.get("wandb"), dict)
        ):
            raise invalid(
                f'Invalid \'integrations[{index}]\': expected {{"type": "wandb", "wandb": {{"project": ...}}}}.',
                param=f"integrations[{index}]",
            )
        if not isinstance(item["wandb"].get("project"), str):
            raise _missing(f"integrations[{index}].wandb.project")
    return raw


def parse_job_request(body: Any) -> JobRequest:
    """Check a create-job body; raises ApiError(400) on the first problem."""
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    for key in body:
        if key not in TOP_LEVEL_KEYS:
            raise _unrecognized(key)
    model = _string(body, "model", required=True)
    training_file = _string(body, "training_file", required=True)
    validation_file = _string(body, "validation_file")
    suffix = _string(body, "suffix")
    if suffix is not None and not 1 <= len(suffix) <= MAX_SUFFIX:
        raise invalid(
            f"Invalid 'suffix': string too long. Expected a string with maximum length "
            f"{MAX_SUFFIX}, but got a string with length {len(suffix)} instead."
            if suffix
            else "Invalid 'suffix': empty string. Expected a string with minimum length 1.",
            param="suffix",
            code="string_above_max_length" if suffix else "empty_string",
        )
    seed = body.get("seed")
    if seed is not None:
        seed = _integer_in("seed", seed, 0, MAX_SEED)

    method_body = body.get("method")
    legacy = body.get("hyperparameters")
    if method_body is None:
        method = "supervised"
        hyperparameters = _hyperparameters(legacy, "hyperparameters", "supervised")
    else:
        if not isinstance(method_body, dict):
            raise _wrong_type("method", "an object", method_body)
        method = method_body.get("type")
        if method is None:
            raise _missing("method.type")
        if method not in METHODS:
            raise invalid(
                f"Invalid value: '{method}'. Supported values are: 'supervised', 'dpo', and 'reinforcement'.",
                param="method.type",
                code="invalid_value",
            )
        for key in method_body:
            if key not in ("type", method):
                raise _unrecognized(f"method.{key}")
        if method == "reinforcement":
            raise invalid(
                "Reinforcement fine-tuning is not emulated by the ftm sandbox; use 'supervised' or 'dpo'.",
                param="method.type",
                code="unsupported_method",
            )
        settings = method_body.get(method) or {}
        if not isinstance(settings, dict):
            raise _wrong_type(f"method.{method}", "an object", settings)
        for key in settings:
            if key != "hyperparameters":
                raise _unrecognized(f"method.{method}.{key}")
        raw = settings.get("hyperparameters")
        if raw is not None and legacy is not None:
            raise invalid(
                "Specify hyperparameters either in 'method' or in the deprecated top-level "
                "'hyperparameters', not both.",
                param="hyperparameters",
            )
        if raw is None and legacy is not None:
            # The deprecated top-level form still applies to the method's common settings.
            hyperparameters = _hyperparameters(legacy, "hyperparameters", method)
        else:
            hyperparameters = _hyperparameters(raw, f"method.{method}.hyperparameters", method)

    return JobRequest(
        model=model or "",
        training_file=training_file or "",
        validation_file=validation_file,
        suffix=suffix,
        seed=seed,
        metadata=_metadata(body.get("metadata")),
        integrations=_integrations(body.get("integrations")),
        method=method,
        hyperparameters=hyperparameters,
    )
