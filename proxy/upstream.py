"""Upstream calls, on two lanes: deployments that speak OpenAI's wire format through the
gateway's own direct client (``proxy.lane_client``; ``proxy.lane_routes`` decides which),
the others through a litellm ``Router`` built from the config's ``model_list``
(``proxy.litellm_lane``).

Every upstream failure becomes one of the gateway's errors, logged as one line
(``proxy.upstream_errors``; ``proxy.lane_errors`` on the direct lane). Streams are always
asked for usage, whatever the client asked (the chat path removes it for a client that did
not ask), so every entry carries its usage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, Literal

from audit.llm_client import close_litellm_clients, import_litellm
from proxy.errors import GatewayError, ModelNotFound
from proxy.lane_client import DirectLane
from proxy.lane_policy import Deployment
from proxy.lane_routes import direct_deployment
from proxy.litellm_lane import LitellmLane
from proxy.settings import ModelRoute, Settings
from proxy.upstream_replies import UpstreamReply, UpstreamStream

__all__ = ["Upstream", "UpstreamReply", "UpstreamStream"]


class Upstream:
    """The gateway's client of the real models. One per process, opened in the lifespan."""

    def __init__(self, settings: Settings) -> None:
        self._litellm = import_litellm()
        self.ordered_aliases = settings.aliases
        self.aliases = frozenset(settings.aliases)
        self._routes: dict[str, ModelRoute] = {}
        for route in settings.model_list:
            self._routes.setdefault(route.model_name, route)
        self._prices: dict[str, tuple[float, float]] = {}
        fallbacks: dict[str, list[str]] = {}
        for route in settings.model_list:
            for alias in route.fallbacks:
                chain = fallbacks.setdefault(route.model_name, [])
                if alias not in chain:
                    chain.append(alias)
        self._lane = LitellmLane(self._litellm, settings.model_list, fallbacks)
        self._direct = DirectLane(
            _direct_deployments(settings.model_list, self._litellm),
            {alias: tuple(chain) for alias, chain in fallbacks.items()},
            self._lane,
        )

    async def open(self) -> None:
        """Open the direct lane's pooled HTTP session (it needs the running loop)."""
        await self._direct.open()

    def lane(self, alias: str) -> Literal["direct", "litellm"]:
        """Which lane calls ``alias``'s deployments (``ModelRoute.wire``)."""
        return "direct" if self._direct.serves(alias) else "litellm"

    def cost(self, alias: str, prompt_tokens: int, completion_tokens: int) -> float:
        """USD the alias's first deployment charges for these tokens, from litellm's price
        map (or ``input_cost_per_token`` / ``output_cost_per_token`` in the route's
        params); 0 for a model litellm does not price. Prices are looked up once per alias
        (litellm's lookup costs ~0.4 ms)."""
        prices = self._prices.get(alias)
        if prices is None:
            prices = self._prices[alias] = self._price(alias)
        return prompt_tokens * prices[0] + completion_tokens * prices[1]

    def _price(self, alias: str) -> tuple[float, float]:
        route = self._routes.get(alias)
        if route is None:
            return 0.0, 0.0
        custom = {
            name: float(route.params[name])
            for name in ("input_cost_per_token", "output_cost_per_token")
            if isinstance(route.params.get(name), int | float)
        }
        try:
            prompt, completion = self._litellm.cost_per_token(
                model=route.model,
                prompt_tokens=1_000_000,
                completion_tokens=1_000_000,
                custom_cost_per_token=custom or None,
            )
        except Exception:  # noqa: BLE001 - litellm raises several kinds for unpriced models
            return 0.0, 0.0
        return float(prompt) / 1_000_000, float(completion) / 1_000_000

    def check_model(self, alias: str) -> None:
        """Raise ``ModelNotFound``, naming the configured aliases, unless ``alias`` is one."""
        if alias not in self.aliases:
            raise ModelNotFound(
                f"The model '{alias}' does not exist; {_served(self.ordered_aliases)}",
                param="model",
            )

    async def chat(self, body: Mapping[str, Any]) -> UpstreamReply:
        """One chat completion, as the OpenAI JSON object, and who answered it."""
        if self._direct.serves(body["model"]):
            return await self._direct.chat(body)
        return await self._lane.chat(body)

    async def chat_stream(self, body: Mapping[str, Any]) -> UpstreamStream:
        """A streamed chat completion. The first chunk is fetched before returning, so an
        upstream that fails at the start raises here, while the client can still get a
        proper error status instead of a broken event stream.

        The upstream is always asked for usage (``stream_options.include_usage``), whatever
        the client asked: the chunks end with the usage chunk (``choices: []``), which the
        chat path removes for a client that did not ask.
        """
        body = {**body, "stream": True, "stream_options": _with_usage(body)}
        if self._direct.serves(body["model"]):
            return await self._direct.chat_stream(body)
        return await self._lane.chat_stream(body)

    async def text(self, body: Mapping[str, Any]) -> UpstreamReply:
        """A legacy text completion (``/v1/completions``), on the alias's lane."""
        if self._direct.serves(body["model"]):
            return await self._direct.text(body)
        return await self._lane.text(body)

    async def text_stream(self, body: Mapping[str, Any]) -> UpstreamStream:
        """A streamed text completion, open at its first chunk and always asked for usage,
        as ``chat_stream``."""
        body = {**body, "stream": True, "stream_options": _with_usage(body)}
        if self._direct.serves(body["model"]):
            return await self._direct.text_stream(body)
        return await self._lane.text_stream(body)

    async def responses(self, body: Mapping[str, Any]) -> Any:
        """A Responses API call as sent, through litellm on every lane
        (``LitellmLane.responses``)."""
        return await self._lane.responses(body)

    async def embeddings(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """An embeddings call, passed through litellm on every lane."""
        return await self._lane.embeddings(body)

    def translate(self, exc: Exception) -> GatewayError:
        """The gateway error for an exception raised by litellm, logged (see the module)."""
        return self._lane.translate(exc)

    async def aclose(self) -> None:
        """Release the HTTP clients litellm opened for this process.

        litellm caches them process-wide; closing without dropping them from the cache would
        hand closed clients to the next ``Upstream`` in this process (tests build many).
        """
        await self._direct.aclose()
        await close_litellm_clients()


def _with_usage(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body's ``stream_options`` asking for usage."""
    options = body.get("stream_options")
    return {**(options if isinstance(options, dict) else {}), "include_usage": True}


def _direct_deployments(
    routes: Sequence[ModelRoute], litellm: ModuleType
) -> dict[str, list[Deployment]]:
    """The direct lane's deployments by alias: an alias whose deployments all take the
    direct lane (``proxy.lane_routes``); one with any on litellm stays there whole."""
    by_alias: dict[str, list[Deployment | None]] = {}
    for route in routes:
        by_alias.setdefault(route.model_name, []).append(direct_deployment(route, litellm))
    return {
        alias: [d for d in found if d is not None]
        for alias, found in by_alias.items()
        if all(d is not None for d in found)
    }


SHOWN_ALIASES = 20
"""Aliases named in a model-not-found error, at most."""


def _served(aliases: tuple[str, ...]) -> str:
    """What a model-not-found error says is served instead."""
    if not aliases:
        return "no model aliases are configured (model_list)"
    shown = ", ".join(aliases[:SHOWN_ALIASES])
    more = f" and {len(aliases) - SHOWN_ALIASES} more" if len(aliases) > SHOWN_ALIASES else ""
    return f"this gateway serves: {shown}{more} (GET /v1/models lists them)"
