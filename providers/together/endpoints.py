"""Together's dedicated endpoints, the only place a LoRA fine-tune answers from.

Together names an endpoint itself when it creates one, and chat reaches the model through
that name. The spec's ``/v1/endpoints`` routes are called through the SDK client's generic
``get``/``post``/``patch`` (SDK 3.x's ``client.endpoints`` speaks a /v2 API the vendored
spec lacks). Each function is one request; the provider adds retries, create-once and the
wait.
"""

from __future__ import annotations

from typing import Any

from providers.types import Deployment

ENDPOINTS_PATH = "/v1/endpoints"
READY_STATE = "STARTED"
FAILED_STATES = ("ERROR", "FAILED")
MAX_REPLICAS = 1
"""One replica, never more: an endpoint bills per replica-minute, and ftm's evaluations
need no autoscaling."""


def as_deployment(raw: dict[str, Any]) -> Deployment:
    """An endpoint in the contract's words: STARTED is ready, ERROR/FAILED failed, other
    states (PENDING, STARTING, STOPPED) kept as Together words them."""
    state = str(raw.get("state") or "UNKNOWN").upper()
    if state == READY_STATE:
        state = "Succeeded"
    elif state in FAILED_STATES:
        state = "Failed"
    return Deployment(name=str(raw["name"]), model=str(raw["model"]), state=state)


def find_for_model(client: Any, model: str) -> dict[str, Any] | None:
    """The account's dedicated endpoint serving ``model`` (the oldest, if several), or None."""
    listed = client.get(ENDPOINTS_PATH, cast_to=object, options={"params": {"type": "dedicated"}})
    for raw in (listed or {}).get("data") or []:
        if raw.get("model") == model and raw.get("type", "dedicated") == "dedicated":
            return raw
    return None


def retrieve(client: Any, endpoint_id: str) -> dict[str, Any]:
    return client.get(f"{ENDPOINTS_PATH}/{endpoint_id}", cast_to=object)


def create(client: Any, model: str, hardware: str) -> dict[str, Any]:
    body = {
        "model": model,
        "hardware": hardware,
        "display_name": model.split("/")[-1],
        "autoscaling": {"min_replicas": 1, "max_replicas": MAX_REPLICAS},
        "state": READY_STATE,
    }
    return client.post(ENDPOINTS_PATH, body=body, cast_to=object)


def start(client: Any, endpoint_id: str) -> dict[str, Any]:
    """Start a STOPPED endpoint again (it passes through PENDING and STARTING)."""
    return client.patch(
        f"{ENDPOINTS_PATH}/{endpoint_id}", body={"state": READY_STATE}, cast_to=object
    )
