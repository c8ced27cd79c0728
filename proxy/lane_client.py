"""The direct lane: chat (and legacy text) calls to deployments that speak OpenAI's wire
format, without litellm on the request path (``proxy.lane_routes`` says which deployments).

One pooled aiohttp session per process (opened in the lifespan). Legacy text completions
take this lane too: litellm's OpenAI text-completion handler builds a new HTTP client for
every call and never closes it (one leaked connector per request, seen as unclosed-connector
warnings), where this lane pools its connections. The client's body goes
upstream as sent, with ``model`` rewritten to the deployment's model name; no client header
is forwarded. The lane owns what litellm's Router did for these deployments: a weighted
choice among an alias's deployments, timeouts, retries with backoff (never once a stream's
first chunk is out), the alias's fallback chain and an optional cooldown
(``proxy.lane_policy``), and the same errors as the litellm lane (``proxy.lane_errors``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, Protocol, TypeVar

import aiohttp
import orjson
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from proxy.errors import GatewayError
from proxy.lane_errors import (
    LaneFailure,
    invalid_reply,
    logged,
    status_failure,
    transport_failure,
)
from proxy.lane_policy import Deployment, choose, retry_delay
from proxy.lane_stream import events, first_chunk, rest
from proxy.upstream_replies import OpenChunks, UpstreamReply, UpstreamStream

R = TypeVar("R", UpstreamReply, UpstreamStream)
Body = Mapping[str, Any]
Attempt = Callable[[Deployment, str, Body], Awaitable[R]]

CHAT = "/chat/completions"
TEXT = "/completions"
"""The endpoints under a deployment's base URL."""


class LitellmCalls(Protocol):
    """The litellm lane's calls, for a fallback alias that is on it."""

    async def chat(self, body: Body) -> UpstreamReply: ...
    async def chat_stream(self, body: Body) -> UpstreamStream: ...
    async def text(self, body: Body) -> UpstreamReply: ...
    async def text_stream(self, body: Body) -> UpstreamStream: ...


CONNECTIONS = 1024
"""Connections the session keeps open at most, across all deployments."""
READ_BUFFER = 2**20
"""Bytes read at once; a stream's event line may be twice this long."""


class DirectLane:
    """The direct lane's client for every deployment it takes. One per process."""

    def __init__(
        self,
        deployments: Mapping[str, list[Deployment]],
        fallbacks: Mapping[str, tuple[str, ...]],
        on_litellm: LitellmCalls,
    ) -> None:
        """``deployments`` by alias; ``on_litellm`` answers a fallback alias on litellm."""
        self._deployments = dict(deployments)
        self._fallbacks = dict(fallbacks)
        self._litellm = on_litellm
        self._session: aiohttp.ClientSession | None = None

    def serves(self, alias: str) -> bool:
        """Whether ``alias``'s deployments are on this lane."""
        return alias in self._deployments

    async def open(self) -> None:
        """Open the pooled session (in the running loop)."""
        if self._session is not None:
            return
        # The proxy environment (HTTP(S)_PROXY, NO_PROXY), which litellm's httpx honours
        # too, is read here once per deployment: aiohttp's ``trust_env`` would read it, and
        # ~/.netrc, in a worker thread on every call (half the lane's CPU, measured).
        for deployments in self._deployments.values():
            for deployment in deployments:
                deployment.proxy, deployment.proxy_auth = _env_proxy(deployment.base)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=CONNECTIONS, ttl_dns_cache=300),
            read_bufsize=READ_BUFFER,
            skip_auto_headers=("User-Agent",),
        )

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def chat(self, body: Body) -> UpstreamReply:
        """One JSON chat completion from ``body["model"]``'s alias or its fallbacks."""
        return await self._chain(body, partial(self._json, CHAT), self._litellm.chat)

    async def chat_stream(self, body: Body) -> UpstreamStream:
        """A streamed chat completion, its first chunk read (retries and fallbacks happen
        before it; never after)."""
        return await self._chain(body, partial(self._stream, CHAT), self._litellm.chat_stream)

    async def text(self, body: Body) -> UpstreamReply:
        """One legacy text completion (``/completions``), as ``chat``."""
        return await self._chain(body, partial(self._json, TEXT), self._litellm.text)

    async def text_stream(self, body: Body) -> UpstreamStream:
        """A streamed text completion, as ``chat_stream``."""
        return await self._chain(body, partial(self._stream, TEXT), self._litellm.text_stream)

    async def _chain(
        self, body: Body, attempt: Attempt[R], on_litellm: Callable[[Body], Awaitable[R]]
    ) -> R:
        """The alias's answer, else its fallbacks' in order; when all fail, the alias's own
        error (as litellm's Router), logged once."""
        alias: str = body["model"]
        failure: LaneFailure | None = None
        for name in (alias, *self._fallbacks.get(alias, ())):
            try:
                if name not in self._deployments:
                    return await on_litellm({**body, "model": name})  # litellm logged it
                return await self._retried(name, body, attempt)
            except LaneFailure as exc:
                if failure is None:
                    failure = exc
                if not exc.falls_back:
                    break
            except GatewayError as exc:
                if failure is None:
                    failure = LaneFailure(exc, type(exc).__name__, retryable=False)
        assert failure is not None
        raise logged(failure) from None

    async def _retried(self, alias: str, body: Body, attempt: Attempt[R]) -> R:
        """One deployment's answer, retried as its route says on failures worth it."""
        deployments = self._deployments[alias]
        tries = 0
        while True:
            deployment = choose(deployments)
            try:
                return await attempt(deployment, alias, body)
            except LaneFailure as failure:
                if not failure.retryable:
                    raise
                deployment.failed()
                if tries >= deployment.route.num_retries:
                    raise
                tries += 1
                await asyncio.sleep(retry_delay(tries, failure.retry_after))

    def _post(
        self, endpoint: str, deployment: Deployment, body: Body, timeout: aiohttp.ClientTimeout
    ) -> Any:
        if self._session is None:
            raise RuntimeError("the direct lane is not open (Upstream.open())")
        return self._session.post(
            deployment.base + endpoint,
            data=orjson.dumps({**body, "model": deployment.model}),
            headers=deployment.headers,
            timeout=timeout,
            proxy=deployment.proxy,
            proxy_auth=deployment.proxy_auth,
        )

    async def _json(
        self, endpoint: str, deployment: Deployment, alias: str, body: Body
    ) -> UpstreamReply:
        try:
            async with self._post(endpoint, deployment, body, deployment.json_timeout) as response:
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_failure(exc) from exc
        if response.status >= 400:
            raise status_failure(response.status, raw, response.headers)
        return UpstreamReply(_completion(raw), alias)

    async def _stream(
        self, endpoint: str, deployment: Deployment, alias: str, body: Body
    ) -> UpstreamStream:
        try:
            response = await self._post(endpoint, deployment, body, deployment.stream_timeout)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise transport_failure(exc) from exc
        if response.status >= 400 or response.content_type != "text/event-stream":
            await _refuse(response)
        stream = events(response.content)
        first = await first_chunk(response, stream)

        async def release() -> None:
            response.close()

        return UpstreamStream(OpenChunks(rest(response, first, stream), release), lambda: alias)


def _env_proxy(url: str) -> tuple[str | None, aiohttp.BasicAuth | None]:
    """The proxy the environment names for ``url`` (aiohttp's own rules), if any."""
    try:
        proxy, auth = get_env_proxy_for_url(URL(url))
    except LookupError:
        return None, None
    return str(proxy), auth


async def _refuse(response: aiohttp.ClientResponse) -> None:
    """Raise the failure for a stream the upstream answered with an error status or with
    something that is no event stream (an HTML page)."""
    try:
        raw = await response.read() if response.status >= 400 else b""
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise transport_failure(exc) from exc
    finally:
        response.close()
    if response.status >= 400:
        raise status_failure(response.status, raw, response.headers)
    raise invalid_reply(f"content type {response.content_type}")


def _completion(raw: bytes) -> dict[str, Any]:
    """The chat completion in a 200's body; a ``LaneFailure`` when it is none (an HTML
    page, JSON without ``choices``)."""
    try:
        completion = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid_reply("body is not JSON") from None
    if not isinstance(completion, dict) or not isinstance(completion.get("choices"), list):
        raise invalid_reply("body has no choices")
    return completion
