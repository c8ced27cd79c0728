"""Which lane each deployment takes, decided once at config load (``ModelRoute.wire``).

The direct lane (``proxy.lane_client``) takes a deployment that speaks OpenAI's wire
format: ``wire: openai``, or ``wire: auto`` when all of these hold:

- litellm's provider resolution (``litellm.get_llm_provider``) names a provider in
  ``OPENAI_FORMAT`` (``openai/`` with any ``api_base``: vLLM, Ollama's ``/v1``, LM Studio...);
- the route's ``params`` hold only what the direct lane sends itself (``DIRECT_PARAMS``);
- the route gives its key (``api_key_env``) or its ``api_base``: a key litellm would find in
  its own environment variables keeps the route on litellm.

Everything else (Azure, whose URLs and ``api-key`` header need translating; Anthropic,
Bedrock, Vertex...; ``ollama_chat/``, Ollama's native API) stays on litellm's Router.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any

import aiohttp

from proxy.lane_policy import Deployment
from proxy.settings import ModelRoute

log = logging.getLogger("vetcache.upstream")

OPENAI_FORMAT = frozenset(
    {
        "openai", "custom_openai", "hosted_vllm", "together_ai", "groq", "deepseek",
        "fireworks_ai", "xai",
    }
)  # fmt: skip
"""litellm providers whose chat API is OpenAI's wire format at their base URL."""
DIRECT_PARAMS = frozenset(
    {"organization", "extra_headers", "input_cost_per_token", "output_cost_per_token"}
)
"""Route params the direct lane honours (the prices are read by ``Upstream.cost``)."""
OPENAI_BASE = "https://api.openai.com/v1"
PLACEHOLDER_KEY = "no-key"
"""The key sent to a self-hosted server configured without one (as on the litellm lane)."""


def direct_deployment(route: ModelRoute, litellm: ModuleType) -> Deployment | None:
    """The route as a direct-lane deployment, or None when it stays on litellm."""
    if route.wire == "litellm":
        return None
    api_base = str(route.api_base).rstrip("/") if route.api_base is not None else None
    try:
        model, provider, _key, default_base = litellm.get_llm_provider(
            route.model, api_base=api_base
        )
    except Exception:  # noqa: BLE001 - litellm raises several kinds for models it cannot place
        model, provider, default_base = route.model.split("/", 1)[1], None, None
    if route.wire == "auto" and not _speaks_openai(route, provider):
        return None
    base = api_base or default_base or (OPENAI_BASE if provider == "openai" else None)
    if base is None:
        log.warning("model_list: %s has no api_base; it stays on litellm", route.model_name)
        return None
    return Deployment(
        route=route,
        base=str(base).rstrip("/"),
        model=str(model),
        headers=_headers(route),
        json_timeout=aiohttp.ClientTimeout(total=route.timeout, sock_connect=route.connect_timeout),
        stream_timeout=aiohttp.ClientTimeout(
            total=None,
            sock_connect=route.connect_timeout,
            sock_read=route.stream_idle_timeout or route.timeout,
        ),
    )


def _speaks_openai(route: ModelRoute, provider: str | None) -> bool:
    return (
        provider in OPENAI_FORMAT
        and set(route.params) <= DIRECT_PARAMS
        and (route.api_key is not None or route.api_base is not None)
    )


def _headers(route: ModelRoute) -> dict[str, str]:
    """The headers of every call to the route: its key, its organization, its own extras.
    Nothing of the client's request is forwarded."""
    key = route.api_key.get_secret_value() if route.api_key is not None else PLACEHOLDER_KEY
    headers: dict[str, str] = {
        "Authorization": f"Bearer {key}",
        "Content-Type": "application/json",
    }
    organization: Any = route.params.get("organization")
    if isinstance(organization, str):
        headers["OpenAI-Organization"] = organization
    extra: Any = route.params.get("extra_headers")
    if isinstance(extra, dict):
        headers.update({str(name): str(value) for name, value in extra.items()})
    return headers
