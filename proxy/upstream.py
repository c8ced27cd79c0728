"""Upstream calls, on two lanes: deployments that speak OpenAI's wire format through the
gateway's own direct client (``proxy.lane_client``; ``proxy.lane_routes`` decides which),
the others through a litellm ``Router`` built from the config's ``model_list``.

litellm speaks to every provider; this module keeps the gateway's contract around it:
client bodies can never set litellm's own control parameters (keys, base URLs, retries),
and every upstream failure becomes one of the gateway's errors, logged as one line
(``proxy.upstream_errors``; ``proxy.lane_errors`` on the direct lane).
"""

from __future__ import annotations

import base64
import logging
import struct
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, Literal

from audit.llm_client import close_litellm_clients, import_litellm
from proxy.errors import (
    GatewayError,
    ModelNotFound,
    UpstreamInvalidReply,
)
from proxy.lane_client import DirectLane
from proxy.lane_policy import Deployment
from proxy.lane_routes import direct_deployment
from proxy.settings import ModelRoute, Settings
from proxy.upstream_errors import INVALID_REPLY, translate
from proxy.upstream_replies import (
    OpenChunks,
    UpstreamReply,
    UpstreamStream,
    clean,
    is_event_stream,
)

__all__ = ["Upstream", "UpstreamReply", "UpstreamStream", "answered_by", "split_params"]

log = logging.getLogger("vetcache.upstream")

# OpenAI chat-completion parameters handed to litellm as keyword arguments. Anything else
# a client sends goes to the provider inside ``extra_body``, so no client field can ever
# reach litellm as one of its own control kwargs (api_key, api_base, num_retries...).
CHAT_PARAMS = frozenset(
    {
        "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
        "max_completion_tokens", "max_tokens", "modalities", "n", "parallel_tool_calls",
        "prediction", "presence_penalty", "reasoning_effort", "response_format", "seed",
        "service_tier", "stop", "stream_options", "temperature", "tool_choice", "tools",
        "top_logprobs", "top_p", "user", "web_search_options",
    }
)  # fmt: skip
EMBEDDING_PARAMS = frozenset({"dimensions", "encoding_format", "user"})
TEXT_PARAMS = frozenset(
    {
        "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs", "max_tokens", "n",
        "presence_penalty", "seed", "stop", "stream_options", "suffix", "temperature", "top_p",
        "user",
    }
)  # fmt: skip
"""The legacy text-completion parameters handed to litellm (the rest as ``extra_body``)."""
RESPONSES_PARAMS = frozenset(
    {
        "background", "conversation", "include", "instructions", "max_output_tokens",
        "max_tool_calls", "parallel_tool_calls", "previous_response_id", "prompt_cache_key",
        "reasoning", "safety_identifier", "service_tier", "store", "stream_options",
        "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation",
        "user",
    }
)  # fmt: skip
"""OpenAI Responses API parameters handed to litellm's ``aresponses`` as keyword arguments;
the rest go in ``extra_body``, as for chat, ``metadata`` and ``prompt`` too: litellm reads
kwargs of those names as its own (its call metadata, its prompt management)."""

# A self-hosted OpenAI-compatible server usually wants no key, but the OpenAI client
# library refuses to start without one.
_PLACEHOLDER_KEY = "no-key"


def _deployment(route: ModelRoute) -> dict[str, Any]:
    params: dict[str, Any] = {
        **route.params,
        "model": route.model,
        "timeout": route.timeout,
        "stream_timeout": route.timeout,
        "num_retries": route.num_retries,
        "max_retries": 0,  # the Router retries; the provider SDK must not retry again
    }
    if route.weight != 1.0:
        params["weight"] = route.weight
    if route.api_base is not None:
        params["api_base"] = str(route.api_base).rstrip("/")
    if route.api_key is not None:
        params["api_key"] = route.api_key.get_secret_value()
    elif route.api_base is not None:
        params["api_key"] = _PLACEHOLDER_KEY
    return {"model_name": route.model_name, "litellm_params": params}


def split_params(body: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """litellm kwargs for ``body``: known OpenAI params as-is, the rest in ``extra_body``."""
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in body.items():
        if name in known:
            kwargs[name] = value
        elif name not in ("model", "messages", "input", "stream"):
            extra[name] = value
    if extra:
        kwargs["extra_body"] = extra
    return kwargs


def _text_params(body: Mapping[str, Any]) -> dict[str, Any]:
    """``split_params`` of a text-completion body (its ``prompt`` is an argument of its own)."""
    return split_params({k: v for k, v in body.items() if k != "prompt"}, TEXT_PARAMS)


def answered_by(response: Any) -> str | None:
    """The alias (the Router's model group) whose deployment answered ``response``: the alias
    asked for, or the fallback it failed over to. litellm's Router reports it as the
    ``x-litellm-model-group`` entry of the response's (or stream's) hidden headers."""
    hidden = getattr(response, "_hidden_params", None) or {}
    group = (hidden.get("additional_headers") or {}).get("x-litellm-model-group")
    return group if isinstance(group, str) else None


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
        self._router = self._litellm.Router(
            model_list=[_deployment(route) for route in settings.model_list],
            fallbacks=[{alias: chain} for alias, chain in fallbacks.items()],
            num_retries=0,
            # A gateway in front of one deployment per alias must not refuse requests
            # because an earlier one failed: pass every failure through as it happens.
            disable_cooldowns=True,
        )
        self._direct = DirectLane(
            _direct_deployments(settings.model_list, self._litellm),
            {alias: tuple(chain) for alias, chain in fallbacks.items()},
            self._litellm_chat,
            self._litellm_stream,
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
        return await self._litellm_chat(body)

    async def _litellm_chat(self, body: Mapping[str, Any]) -> UpstreamReply:
        try:
            response = await self._router.acompletion(
                model=body["model"],
                messages=body["messages"],
                **split_params(body, CHAT_PARAMS),
            )
        except Exception as exc:  # litellm raises many types; all are translated here
            raise self.translate(exc) from exc
        return UpstreamReply(clean(response.model_dump(warnings=False)), answered_by(response))

    async def chat_stream(self, body: Mapping[str, Any]) -> UpstreamStream:
        """A streamed chat completion. The first chunk is fetched before returning, so an
        upstream that fails at the start raises here, while the client can still get a
        proper error status instead of a broken event stream.

        The upstream is always asked for usage (``stream_options.include_usage``), whatever
        the client asked: the chunks end with the usage chunk (``choices: []``), which the
        chat path removes for a client that did not ask.
        """
        options = body.get("stream_options")
        body = {
            **body,
            "stream": True,
            "stream_options": {**(options if isinstance(options, dict) else {}),
                               "include_usage": True},
        }  # fmt: skip
        if self._direct.serves(body["model"]):
            return await self._direct.chat_stream(body)
        return await self._litellm_stream(body)

    async def _litellm_stream(self, body: Mapping[str, Any]) -> UpstreamStream:
        return await self._open_stream(
            lambda: self._router.acompletion(
                model=body["model"],
                messages=body["messages"],
                stream=True,
                **split_params(body, CHAT_PARAMS),
            )
        )

    async def text(self, body: Mapping[str, Any]) -> UpstreamReply:
        """A legacy text completion (``/v1/completions``), through litellm on every lane."""
        try:
            response = await self._router.atext_completion(
                model=body["model"], prompt=body["prompt"], **_text_params(body)
            )
        except Exception as exc:  # translated, see chat()
            raise self.translate(exc) from exc
        return UpstreamReply(clean(response.model_dump(warnings=False)), answered_by(response))

    async def text_stream(self, body: Mapping[str, Any]) -> UpstreamStream:
        """A streamed text completion, opened at its first chunk and always asked for usage,
        as ``chat_stream``."""
        params = _text_params(body)
        params["stream_options"] = {**(params.get("stream_options") or {}), "include_usage": True}
        return await self._open_stream(
            lambda: self._router.atext_completion(
                model=body["model"], prompt=body["prompt"], stream=True, **params
            )
        )

    async def _open_stream(self, call: Callable[[], Awaitable[Any]]) -> UpstreamStream:
        """A litellm stream, open at its first chunk (see ``chat_stream``)."""
        stream = None
        try:
            stream = await call()
            if not is_event_stream(stream):
                raise UpstreamInvalidReply(INVALID_REPLY)
            iterator = stream.__aiter__()
            first = await iterator.__anext__()
        except StopAsyncIteration:
            first, iterator = None, None
        except Exception as exc:  # translated, see chat()
            raise self.translate(exc) from exc
        assert stream is not None  # the call returned, or it raised above
        return UpstreamStream(
            OpenChunks(self._chunks(first, iterator), stream.aclose), lambda: answered_by(stream)
        )

    async def _chunks(self, first: Any, iterator: Any) -> AsyncGenerator[dict[str, Any], None]:
        if first is None:
            return
        yield clean(first.model_dump(warnings=False))
        try:
            async for chunk in iterator:
                yield clean(chunk.model_dump(warnings=False))
        except Exception as exc:  # translated, see chat()
            raise self.translate(exc) from exc

    async def responses(self, body: Mapping[str, Any]) -> Any:
        """A Responses API call through litellm's Router, as sent (the requests that depend
        on the upstream's stored state): litellm's response, or for ``stream: true`` its
        event stream (whose failures ``translate`` makes gateway errors)."""
        try:
            return await self._router.aresponses(
                model=body["model"],
                input=body["input"],
                stream=body.get("stream") is True,
                **split_params(body, RESPONSES_PARAMS),
            )
        except Exception as exc:  # translated, see chat()
            raise self.translate(exc) from exc

    async def embeddings(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """An embeddings call, passed through.

        ``encoding_format: base64`` (the official client's default) is done here: litellm
        mis-parses base64 answers from OpenAI-compatible servers, so the gateway asks the
        upstream for floats and packs them as little-endian float32, as OpenAI does.
        """
        params = split_params(body, EMBEDDING_PARAMS)
        as_base64 = params.pop("encoding_format", None) == "base64"
        try:
            response = await self._router.aembedding(
                model=body["model"], input=body["input"], **params
            )
        except Exception as exc:  # translated, see chat()
            raise self.translate(exc) from exc
        payload = clean(response.model_dump(warnings=False))
        if as_base64:
            for item in payload.get("data", ()):
                vector = item["embedding"]
                item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector))
                item["embedding"] = item["embedding"].decode()
        return payload

    def translate(self, exc: Exception) -> GatewayError:
        """The gateway error for an exception raised by litellm, logged (see the module)."""
        return translate(exc, self._litellm.Timeout)

    async def aclose(self) -> None:
        """Release the HTTP clients litellm opened for this process.

        litellm caches them process-wide; closing without dropping them from the cache would
        hand closed clients to the next ``Upstream`` in this process (tests build many).
        """
        await self._direct.aclose()
        await close_litellm_clients()


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
