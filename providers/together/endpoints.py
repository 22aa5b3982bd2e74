"""Together's dedicated endpoints, the only place a LoRA fine-tune answers from.

Together names an endpoint itself when it creates one, and chat reaches the model through
that name. The spec's ``/v1/endpoints`` routes are called through the SDK client's generic
``get``/``post``/``patch`` (SDK 3.x's ``client.endpoints`` speaks a /v2 API the vendored
spec lacks). Each function is one request; the provider adds retries, create-once and the
wait.
"""

from __future__ import annotations

from typing import Any

from providers.types import Deployment, HardwareOption

ENDPOINTS_PATH = "/v1/endpoints"
HARDWARE_PATH = "/v1/hardware"
READY_STATE = "STARTED"
STOPPED_STATE = "STOPPED"
GONE_STATE = "Deleted"
"""What `status` reports for an endpoint Together no longer has."""
FAILED_STATES = ("ERROR", "FAILED")


def as_deployment(raw: dict[str, Any]) -> Deployment:
    """An endpoint in the contract's words: STARTED is ready, ERROR/FAILED failed, other
    states (PENDING, STARTING, STOPPED) kept as Together words them."""
    state = str(raw.get("state") or "UNKNOWN").upper()
    if state == READY_STATE:
        state = "Succeeded"
    elif state in FAILED_STATES:
        state = "Failed"
    return Deployment(
        name=str(raw["name"]),
        model=str(raw["model"]),
        state=state,
        remote_id=str(raw["id"]) if raw.get("id") else None,
        hardware=raw.get("hardware"),
    )


def _unless_gone(request: Any) -> Any:
    """The answer of ``request()``, or None when Together has no such endpoint (404)."""
    import together

    try:
        return request()
    except together.NotFoundError:
        return None


def find_for_model(client: Any, model: str) -> dict[str, Any] | None:
    """The account's dedicated endpoint serving ``model`` (the oldest, if several), or None."""
    listed = client.get(ENDPOINTS_PATH, cast_to=object, options={"params": {"type": "dedicated"}})
    for raw in (listed or {}).get("data") or []:
        if raw.get("model") == model and raw.get("type", "dedicated") == "dedicated":
            return raw
    return None


def retrieve(client: Any, endpoint_id: str) -> dict[str, Any]:
    return client.get(f"{ENDPOINTS_PATH}/{endpoint_id}", cast_to=object)


def retrieve_if_any(client: Any, endpoint_id: str) -> dict[str, Any] | None:
    """The endpoint, or None when Together has no such endpoint."""
    return _unless_gone(lambda: retrieve(client, endpoint_id))


def create(
    client: Any, model: str, hardware: str, min_replicas: int = 1, max_replicas: int = 1
) -> dict[str, Any]:
    """An endpoint billed per replica-minute: ``min_replicas`` run while it is started."""
    body = {
        "model": model,
        "hardware": hardware,
        "display_name": model.split("/")[-1],
        "autoscaling": {"min_replicas": min_replicas, "max_replicas": max_replicas},
        "state": READY_STATE,
    }
    return client.post(ENDPOINTS_PATH, body=body, cast_to=object)


def stop(client: Any, endpoint_id: str) -> dict[str, Any] | None:
    """Stop it (billing stops); None when Together has no such endpoint."""
    return _unless_gone(
        lambda: client.patch(
            f"{ENDPOINTS_PATH}/{endpoint_id}", body={"state": STOPPED_STATE}, cast_to=object
        )
    )


def delete(client: Any, endpoint_id: str) -> None:
    """Delete it; one already gone is not an error."""
    from types import NoneType

    _unless_gone(lambda: client.delete(f"{ENDPOINTS_PATH}/{endpoint_id}", cast_to=NoneType))


def hardware(client: Any, model: str) -> list[dict[str, Any]]:
    """``GET /hardware?model=``: the configurations ``model`` can be deployed on, each
    with ``pricing.cents_per_minute`` (per replica) and its availability."""
    listed = client.get(HARDWARE_PATH, cast_to=object, options={"params": {"model": model}})
    return list((listed or {}).get("data") or [])


def start(client: Any, endpoint_id: str) -> dict[str, Any]:
    """Start a STOPPED endpoint again (it passes through PENDING and STARTING)."""
    return client.patch(
        f"{ENDPOINTS_PATH}/{endpoint_id}", body={"state": READY_STATE}, cast_to=object
    )


def hardware_option(raw: dict[str, Any]) -> HardwareOption:
    """One ``HardwareWithStatus`` in the contract's words: its price per replica-hour."""
    cents = (raw.get("pricing") or {}).get("cents_per_minute")
    specs = raw.get("specs") or {}
    description = (
        f"{specs.get('gpu_count', '?')}x {specs.get('gpu_type', '?')} "
        f"({specs.get('gpu_memory', '?')} GB, {specs.get('gpu_link', '?')})"
        if specs
        else str(raw["id"])
    )
    status = (raw.get("availability") or {}).get("status")
    return HardwareOption(
        id=str(raw["id"]),
        description=description,
        usd_per_hour=None if cents is None else float(cents) * 60 / 100,
        available=status in (None, "available"),
    )
