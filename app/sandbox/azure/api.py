"""The Azure face of the emulator: the OpenAI emulator's handlers under Azure's URL shape.

Data plane (``https://RESOURCE.openai.azure.com`` in real life)::

    /openai/files..., /openai/fine_tuning/jobs..., /openai/models...   ?api-version=V
    /openai/deployments/{name}/chat/completions                        ?api-version=V

Every data-plane request needs ``api-version`` (without it Azure answers 404 "Resource
not found"; an unknown one, 400) and the resource's key in the ``api-key`` header (else
401 "Access denied..."), in Azure's error shape. A chat names a deployment, not a model:
one ftm created (ready once the sandbox clock has moved `ready_after_s` past its creation)
or, standing in for the user's own deployments of base models, a base model's name.

Control plane (``https://management.azure.com`` in real life), bearer token and its own
api-version::

    PUT/GET/DELETE /subscriptions/{s}/resourceGroups/{g}/providers/
                   Microsoft.CognitiveServices/accounts/{a}/deployments/{name}
    GET            .../deployments

The same fault plan applies (operations ``deployments.put``... besides the OpenAI ones).
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from app.sandbox import api
from app.sandbox.api import ConnectionDropper, Handler, Sandbox, _json_body, _operation
from app.sandbox.azure import errors
from app.sandbox.azure.deployments import Deployments
from app.sandbox.catalog import resolve_base_model
from app.sandbox.errors import ApiError

SUPPORTED_API_VERSIONS = frozenset(
    {
        "2024-05-01-preview",
        "2024-08-01-preview",
        "2024-10-01-preview",
        "2024-10-21",
        "2025-01-01-preview",
        "2025-02-01-preview",
        "2025-03-01-preview",
        "2025-04-01-preview",
    }
)
"""Data-plane versions that have fine-tuning (a sample of Azure's list)."""
MANAGEMENT_API_VERSIONS = frozenset({"2023-05-01", "2024-10-01", "2025-06-01"})
ACCOUNT_PATH = (
    "/subscriptions/{subscription}/resourceGroups/{group}/providers/"
    "Microsoft.CognitiveServices/accounts/{account}/deployments"
)


class AzureSandbox(Sandbox):
    """The OpenAI sandbox plus the resource's deployments and its credentials."""

    def __init__(
        self,
        state: Any,
        deployments: Deployments,
        api_key: str,
        management_token: str,
        faults: Any = None,
    ) -> None:
        super().__init__(state, faults)
        self.deployments = deployments
        self.api_key = api_key
        self.management_token = management_token


def _data_plane_check(sandbox: AzureSandbox):
    def check(request: Request) -> None:
        version = request.query_params.get("api-version")
        if not version:
            raise errors.resource_not_found()
        if version not in SUPPORTED_API_VERSIONS:
            raise errors.version_not_supported()
        if request.headers.get("api-key", "") != sandbox.api_key:
            raise errors.access_denied()

    return check


def _control_plane_check(sandbox: AzureSandbox):
    def check(request: Request) -> None:
        header = request.headers.get("authorization")
        scheme, _, token = (header or "").partition(" ")
        if header is None:
            raise errors.management_unauthorized(missing=True)
        if scheme.lower() != "bearer" or token.strip() != sandbox.management_token:
            raise errors.management_unauthorized(missing=False)
        version = request.query_params.get("api-version")
        if not version:
            raise errors.missing_management_version()
        if version not in MANAGEMENT_API_VERSIONS:
            raise errors.AzureApiError(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{version}' is invalid. The supported versions are "
                f"'{', '.join(sorted(MANAGEMENT_API_VERSIONS))}'.",
            )

    return check


# ----------------------------------------------------------------------- data plane


async def deployment_chat(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    """A chat through a deployment: the body's ``model`` is whatever the deployment
    serves (Azure ignores the one the client sends)."""
    assert isinstance(sandbox, AzureSandbox)
    name = request.path_params["deployment"]
    model = sandbox.deployments.ready_model(name)
    if model is None and sandbox.deployments.get(name) is None and resolve_base_model(name):
        model = name  # the user's own deployment of a base model, named like it
    if model is None:
        raise errors.deployment_not_found()
    body = await _json_body(request)
    if isinstance(body, dict):
        body = {**body, "model": model}
    return await api.answer_chat(sandbox, body)


async def create_job(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    """OpenAI's create, after Azure's own per-model training cutoff (the Azure provider's
    declared lifecycle: the emulator and ftm agree on the dates)."""
    from providers.azure.lifecycle import load_lifecycle

    body = await _json_body(request)  # parsed once: the OpenAI handler reads the cache
    model = body.get("model") if isinstance(body, dict) else None
    if isinstance(model, str):
        declared = load_lifecycle()
        base = declared.base_model(model)
        last = declared.training_until.get(base)
        if last is not None and sandbox.state.clock.today() > last:
            raise errors.AzureApiError(
                400,
                "BadRequest",
                f"The base model {base} no longer accepts new fine-tuning jobs: training on "
                f"it ended on {last.isoformat()}.",
            )
    return await api.create_job(sandbox, request)


def data_routes() -> list[tuple[str, str, str, Handler]]:
    """The OpenAI emulator's routes under ``/openai`` (its handlers; create behind Azure's
    per-model cutoff), chat replaced by the deployment route."""
    own: dict[str, Handler] = {"jobs.create": create_job}
    routes = [
        (method, "/openai/" + path.removeprefix("/v1/"), name, own.get(name, handler))
        for method, path, name, handler in api.ROUTE_TABLE
        if name != "chat.completions"
    ]
    routes.append(
        (
            "POST",
            "/openai/deployments/{deployment}/chat/completions",
            "chat.completions",
            deployment_chat,
        )
    )
    return routes


# -------------------------------------------------------------------- control plane


def _resource_path(request: Request) -> str:
    return request.url.path


async def put_deployment(sandbox: Sandbox, request: Request) -> Response:
    assert isinstance(sandbox, AzureSandbox)
    body = await _json_body(request)
    props = (body or {}).get("properties") if isinstance(body, dict) else None
    model = ((props or {}).get("model") or {}).get("name")
    if not isinstance(model, str) or not model:
        raise errors.AzureApiError(
            400,
            "InvalidResourceProperties",
            "The deployment's properties.model.name is required.",
        )
    try:
        sandbox.state.chat_model(model)  # a base model, or a fine-tuned one that exists
    except ApiError:
        raise errors.not_deployable(model) from None
    sku = (body.get("sku") or {}) if isinstance(body, dict) else {}
    record, created = sandbox.deployments.put(
        request.path_params["name"],
        model,
        str(sku.get("name") or "standard"),
        int(sku.get("capacity") or 1),
    )
    return JSONResponse(
        sandbox.deployments.resource(record, _resource_path(request)),
        status_code=201 if created else 200,
    )


async def get_deployment(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    assert isinstance(sandbox, AzureSandbox)
    name = request.path_params["name"]
    record = sandbox.deployments.get(name)
    if record is None:
        raise errors.AzureApiError(
            404, "DeploymentNotFound", f"Deployment '{name}' could not be found."
        )
    return sandbox.deployments.resource(record, _resource_path(request))


async def delete_deployment(sandbox: Sandbox, request: Request) -> Response:
    assert isinstance(sandbox, AzureSandbox)
    gone = sandbox.deployments.delete(request.path_params["name"])
    return Response(status_code=200 if gone else 204)


async def list_deployments(sandbox: Sandbox, request: Request) -> dict[str, Any]:
    assert isinstance(sandbox, AzureSandbox)
    path = _resource_path(request)
    return {
        "value": [
            sandbox.deployments.resource(r, f"{path}/{r.name}")
            for r in list(sandbox.deployments.records.values())
        ]
    }


CONTROL_ROUTES: list[tuple[str, str, str, Handler]] = [
    ("PUT", ACCOUNT_PATH + "/{name}", "deployments.put", put_deployment),  # type: ignore[list-item]
    ("GET", ACCOUNT_PATH + "/{name}", "deployments.get", get_deployment),
    ("DELETE", ACCOUNT_PATH + "/{name}", "deployments.delete", delete_deployment),  # type: ignore[list-item]
    ("GET", ACCOUNT_PATH, "deployments.list", list_deployments),
]


async def _http_error(request: Request, exc: Exception) -> Response:
    error = errors.resource_not_found()
    if getattr(exc, "status_code", 404) == 405:
        error = errors.AzureApiError(
            405, "MethodNotAllowed", f"Method {request.method} is not allowed here."
        )
    return JSONResponse(error.body(), status_code=error.status)


def create_app(sandbox: AzureSandbox) -> ASGIApp:
    """The ASGI app serving ``sandbox`` in Azure's shape."""
    data_check, control_check = _data_plane_check(sandbox), _control_plane_check(sandbox)
    routes = [
        Route(path, _operation(sandbox, name, handler, data_check), methods=[method], name=name)
        for method, path, name, handler in data_routes()
    ] + [
        Route(path, _operation(sandbox, name, handler, control_check), methods=[method])
        for method, path, name, handler in CONTROL_ROUTES
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    return ConnectionDropper(app)
