"""The litellm lane: calls through a litellm ``Router`` built from the config's
``model_list`` (every deployment: the direct lane's too, for embeddings, the Responses API's
stateful requests, and as a fallback's lane).

Client bodies can never set litellm's own control parameters (keys, base URLs, retries):
known OpenAI parameters go as keyword arguments, everything else inside ``extra_body``. Every
failure becomes one of the gateway's errors (``proxy.upstream_errors``).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from proxy.errors import GatewayError, UpstreamInvalidReply
from proxy.settings import ModelRoute
from proxy.upstream_errors import INVALID_REPLY, translate
from proxy.upstream_replies import (
    OpenChunks,
    UpstreamReply,
    UpstreamStream,
    clean,
    is_event_stream,
)

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


class LitellmLane:
    """litellm's Router over every deployment of the config. One per process."""

    def __init__(
        self,
        litellm: Any,
        routes: Sequence[ModelRoute],
        fallbacks: Mapping[str, Sequence[str]],
    ) -> None:
        self._litellm = litellm
        self._router = litellm.Router(
            model_list=[_deployment(route) for route in routes],
            fallbacks=[{alias: list(chain)} for alias, chain in fallbacks.items()],
            num_retries=0,
            # A gateway in front of one deployment per alias must not refuse requests
            # because an earlier one failed: pass every failure through as it happens.
            disable_cooldowns=True,
        )

    def translate(self, exc: Exception) -> GatewayError:
        """The gateway error for an exception raised by litellm, logged."""
        return translate(exc, self._litellm.Timeout)

    async def chat(self, body: Mapping[str, Any]) -> UpstreamReply:
        """One JSON chat completion."""
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
        """A streamed chat completion, open at its first chunk (``Upstream.chat_stream``)."""
        return await self._open_stream(
            lambda: self._router.acompletion(
                model=body["model"],
                messages=body["messages"],
                stream=True,
                **split_params(body, CHAT_PARAMS),
            )
        )

    async def text(self, body: Mapping[str, Any]) -> UpstreamReply:
        """A legacy text completion (``/v1/completions``)."""
        try:
            response = await self._router.atext_completion(
                model=body["model"], prompt=body["prompt"], **_text_params(body)
            )
        except Exception as exc:  # litellm raises many types; all are translated
            raise self.translate(exc) from exc
        return UpstreamReply(clean(response.model_dump(warnings=False)), answered_by(response))

    async def text_stream(self, body: Mapping[str, Any]) -> UpstreamStream:
        """A streamed text completion, open at its first chunk."""
        params = _text_params(body)
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
        except Exception as exc:  # litellm raises many types; all are translated
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
        except Exception as exc:  # litellm raises many types; all are translated
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
        except Exception as exc:  # litellm raises many types; all are translated
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
        except Exception as exc:  # litellm raises many types; all are translated
            raise self.translate(exc) from exc
        payload = clean(response.model_dump(warnings=False))
        if as_base64:
            for item in payload.get("data", ()):
                vector = item["embedding"]
                item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector))
                item["embedding"] = item["embedding"].decode()
        return payload
