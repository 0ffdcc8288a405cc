"""The agents part of the JSON API: list and read agents and model endpoints, start runs."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import reverse
from ninja import Router, Schema, Status

from tooltrail.api import ERRORS, ApiError, ErrorOut, json_body, require_perm
from traces.api import TraceOut
from traces.serializers import trace_payload

from .models import Agent, ModelEndpoint
from .services import EnqueueError, RunError, agent_run_start

router = Router()


class EndpointOut(Schema):
    id: int
    name: str
    kind: str
    base_url: str
    model: str
    api_key_env: str
    config: dict
    price_per_1k_prompt_tokens: float
    price_per_1k_completion_tokens: float


class AgentOut(Schema):
    slug: str
    name: str
    description: str
    endpoint: str
    toolset: str | None
    strategy: str
    system_prompt: str
    max_steps: int
    version: int | None


class EndpointPage(Schema):
    items: list[EndpointOut]
    next: str | None = None


class AgentPage(Schema):
    items: list[AgentOut]
    next: str | None = None


class RunIn(Schema):
    agent: str
    input: str


class RunOut(TraceOut):
    url: str
    steps_url: str


def endpoint_payload(endpoint: ModelEndpoint) -> dict:
    return {
        "id": endpoint.id,
        "name": endpoint.name,
        "kind": endpoint.kind,
        "base_url": endpoint.base_url,
        "model": endpoint.model,
        "api_key_env": endpoint.api_key_env,
        "config": endpoint.config,
        "price_per_1k_prompt_tokens": float(endpoint.price_per_1k_prompt_tokens),
        "price_per_1k_completion_tokens": float(endpoint.price_per_1k_completion_tokens),
    }


def agent_payload(agent: Agent) -> dict:
    latest = agent.versions.order_by("-number").values_list("number", flat=True).first()
    return {
        "slug": agent.slug,
        "name": agent.name,
        "description": agent.description,
        "endpoint": agent.endpoint.name,
        "toolset": agent.toolset.slug if agent.toolset else None,
        "strategy": agent.strategy,
        "system_prompt": agent.system_prompt,
        "max_steps": agent.max_steps,
        "version": latest,
    }


@router.get("/agents", response={200: AgentPage, **ERRORS}, tags=["agents"], summary="List agents")
def list_agents(request: HttpRequest):
    agents = Agent.objects.select_related("endpoint", "toolset")
    return {"items": [agent_payload(a) for a in agents], "next": None}


@router.get(
    "/agents/{slug:slug}",
    response={200: AgentOut, **ERRORS},
    tags=["agents"],
    summary="Read an agent",
)
def get_agent(request: HttpRequest, slug: str):
    agent = Agent.objects.select_related("endpoint", "toolset").filter(slug=slug).first()
    if agent is None:
        raise ApiError(f"no agent with slug {slug!r}", 404)
    return agent_payload(agent)


@router.get(
    "/endpoints",
    response={200: EndpointPage, **ERRORS},
    tags=["endpoints"],
    summary="List model endpoints",
)
def list_endpoints(request: HttpRequest):
    return {"items": [endpoint_payload(e) for e in ModelEndpoint.objects.all()], "next": None}


@router.get(
    "/endpoints/{int:endpoint_id}",
    response={200: EndpointOut, **ERRORS},
    tags=["endpoints"],
    summary="Read a model endpoint",
)
def get_endpoint(request: HttpRequest, endpoint_id: int):
    endpoint = ModelEndpoint.objects.filter(pk=endpoint_id).first()
    if endpoint is None:
        raise ApiError(f"no endpoint with id {endpoint_id}", 404)
    return endpoint_payload(endpoint)


@router.post(
    "/runs",
    response={201: RunOut, 400: ErrorOut, 503: ErrorOut, **ERRORS},
    tags=["runs"],
    summary="Start a run",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RunIn.model_json_schema()}},
        }
    },
)
def start_run(request: HttpRequest):
    """``{"agent": "<slug>", "input": "..."}`` → 201 and the queued trace, with the URLs
    of its page and of its steps."""
    require_perm(request, "agents.run_agent")
    # Parsed by hand (the body is documented above) so each mistake gets its own message.
    body = json_body(request)
    slug = body.get("agent")
    if not isinstance(slug, str) or not slug:
        raise ApiError('"agent" (the agent\'s slug) is required')
    agent = Agent.objects.select_related("endpoint", "toolset").filter(slug=slug).first()
    if agent is None:
        raise ApiError(f"no agent with slug {slug!r}", 404)
    if not isinstance(body.get("input"), str):
        raise ApiError('"input" must be a string')
    try:
        trace = agent_run_start(agent=agent, input=body["input"], user=request.user)
    except EnqueueError as exc:
        raise ApiError(str(exc), 503) from exc
    except RunError as exc:
        raise ApiError(str(exc)) from exc
    payload = trace_payload(trace)
    payload["url"] = request.build_absolute_uri(trace.get_absolute_url())
    payload["steps_url"] = request.build_absolute_uri(reverse("api:get_steps", args=[trace.id]))
    return Status(201, payload)
