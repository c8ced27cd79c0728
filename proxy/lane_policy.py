"""The direct lane's routing policy: which of an alias's deployments takes a call (weighted,
skipping those cooling down) and how long to wait before a retry.

Hand-written rather than ``tenacity``/``backoff``: the policy is three small functions, the
retry loop has to stop at the first chunk of a stream and hand each failure to the
fallback chain, which both libraries' decorators would have to be bent around, and a call
here costs a few microseconds on the request path.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

from proxy.settings import ModelRoute

INITIAL_DELAY_S = 0.25
"""The first retry's backoff, before jitter; doubled for each later one."""
MAX_DELAY_S = 8.0
"""The longest backoff, before jitter."""
RETRY_AFTER_CAP_S = 30.0
"""The longest ``Retry-After`` honoured; an upstream asking for more gets this."""


@dataclass
class Deployment:
    """One deployment on the direct lane: where it is, how it is called, and its cooldown."""

    route: ModelRoute
    """Its configuration."""
    base: str
    """The base URL (``.../v1``): chat completions are ``<base>/chat/completions``."""
    model: str
    """The model name the upstream knows (the route's model without the provider prefix)."""
    headers: dict[str, str]
    """The headers every call sends (Authorization, the route's own)."""
    json_timeout: aiohttp.ClientTimeout
    """A JSON call's: ``timeout`` in all, ``connect_timeout`` to connect."""
    stream_timeout: aiohttp.ClientTimeout
    """A stream's: ``connect_timeout`` to connect, ``stream_idle_timeout`` between reads."""
    proxy: str | None = None
    """The HTTP proxy its calls go through (``HTTPS_PROXY``/``NO_PROXY``: read once, when
    the lane opens)."""
    proxy_auth: aiohttp.BasicAuth | None = None
    """The proxy's credentials, when its URL or ``~/.netrc`` gives them."""
    cooling_until: float = field(default=0.0)
    """``time.monotonic()`` until which it is skipped (see ``ModelRoute.cooldown_s``)."""

    def failed(self, now: float | None = None) -> None:
        """Start its cooldown, if it has one, after a failure worth retrying."""
        if self.route.cooldown_s > 0:
            self.cooling_until = (time.monotonic() if now is None else now) + self.route.cooldown_s


def choose(
    deployments: Sequence[Deployment],
    rng: random.Random | None = None,
    now: float | None = None,
) -> Deployment:
    """One of an alias's deployments, by weight, among those not cooling down (all of them
    when every one is: the lane never refuses a call on its own)."""
    if len(deployments) == 1:
        return deployments[0]
    moment = time.monotonic() if now is None else now
    ready = [d for d in deployments if d.cooling_until <= moment] or list(deployments)
    if len(ready) == 1:
        return ready[0]
    draw = (rng or _RNG).random() * sum(d.route.weight for d in ready)
    for deployment in ready:
        draw -= deployment.route.weight
        if draw < 0:
            return deployment
    return ready[-1]


def retry_delay(
    attempt: int, retry_after: float | None, jitter: Callable[[], float] | None = None
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first): exponential
    backoff, half of it jittered, or the upstream's ``Retry-After`` when it asked for longer
    (capped at ``RETRY_AFTER_CAP_S``)."""
    backoff = min(MAX_DELAY_S, INITIAL_DELAY_S * 2.0 ** (attempt - 1))
    delay = backoff * (0.5 + 0.5 * (jitter or _RNG.random)())
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP_S))
    return delay


_RNG = random.Random()  # noqa: S311 - load spreading, not security
