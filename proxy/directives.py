"""What a client asks of the cache, in its request headers, and the one rule for namespaces
wherever the API takes one (header, path, query)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel
from starlette.requests import Request

from cache.keys import NAMESPACE_PATTERN, is_namespace
from proxy.auth import KeyRing
from proxy.errors import InvalidRequest

DECIMAL = re.compile(r"[+-]?(?:[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})")
"""A plain decimal number as ``x-vetcache-threshold`` takes it: no exponent, ``nan``, ``inf``,
underscores, non-ASCII digits or whitespace, all of which ``float()`` would accept."""
SECONDS = re.compile(r"[0-9]{1,30}")
"""Delta-seconds (RFC 9111 section 1.2.2): ASCII digits only, as ``max-age``, ``s-maxage``
and ``x-vetcache-ttl`` take them."""
MAX_SECONDS = 2**31
"""A larger delta-seconds counts as this (RFC 9111 section 1.2.2)."""
NAMESPACE_SCHEMA = {"type": "string", "pattern": f"^{NAMESPACE_PATTERN}$"}
"""A namespace, for the OpenAPI document."""
DIRECTIVE_HEADERS: list[dict[str, Any]] = [
    {
        "name": "x-vetcache-namespace",
        "in": "header",
        "description": "Cache namespace (default ``default``)",
        "schema": NAMESPACE_SCHEMA,
    },
    {
        "name": "x-vetcache-threshold",
        "in": "header",
        "description": "Minimum similarity for a hit on this request, a plain decimal from "
        "-1 to 1 (only raises the namespace's, unless ``x-vetcache-admin-key`` is the admin key)",
        "schema": {"type": "string", "pattern": f"^{DECIMAL.pattern}$"},
    },
    {
        "name": "x-vetcache-admin-key",
        "in": "header",
        "description": "The admin key, to let ``x-vetcache-threshold`` loosen the threshold",
        "schema": {"type": "string"},
    },
    {
        "name": "cache-control",
        "in": "header",
        "description": "``no-cache``: skip the lookup; ``no-store``: do not admit the answer; "
        "``max-age=N``: serve only an entry admitted at most N s ago; ``s-maxage=N``: the "
        "entry a miss admits lives N s (at most ``cache.max_ttl_s``; 0: not stored); "
        "``max-stale`` and other directives are ignored",
        "schema": {"type": "string"},
    },
    {
        "name": "x-vetcache-ttl",
        "in": "header",
        "description": "Seconds the entry a miss admits lives, as ``s-maxage`` (at most "
        "``cache.max_ttl_s``; 0: not stored)",
        "schema": {"type": "string", "pattern": f"^{SECONDS.pattern}$"},
    },
]
"""The headers ``directives`` reads, for the OpenAPI document."""


class Directives(BaseModel):
    """What the client asked of the cache, from its request headers."""

    namespace: str = "default"
    """``x-vetcache-namespace``."""
    lookup: bool = True
    """False with ``Cache-Control: no-cache``: go upstream, still store."""
    store: bool = True
    """False with ``Cache-Control: no-store``: do not store the answer."""
    threshold: float | None = None
    """``x-vetcache-threshold``: raises the threshold for this request."""
    may_loosen: bool = False
    """The admin key came along, so the threshold may also be lowered."""
    max_age_s: int | None = None
    """``Cache-Control: max-age``: serve only entries admitted at most this many seconds
    ago."""
    ttl_s: int | None = None
    """``x-vetcache-ttl`` or ``Cache-Control: s-maxage`` (the shorter, when both came): the
    TTL of the entry a miss admits, before ``cache.max_ttl_s`` bounds it."""


def checked_namespace(value: str, param: str) -> str:
    """``value`` if it is a namespace, else a 400 naming ``param`` (one error body for the
    header, the admin path and the query filters)."""
    if not is_namespace(value):
        raise InvalidRequest(
            f"{param} must be 1-64 characters of letters, digits and ._-",
            param=param,
            code="invalid_namespace",
        )
    return value


async def namespace_filter(
    namespace: Annotated[
        str | None, Query(description="Only this namespace", json_schema_extra=NAMESPACE_SCHEMA)
    ] = None,
) -> str | None:
    """The ``namespace`` query filter, if given (dependency)."""
    return None if namespace is None else checked_namespace(namespace, "namespace")


async def namespace_or_default(
    namespace: Annotated[
        str, Query(description="The namespace", json_schema_extra=NAMESPACE_SCHEMA)
    ] = "default",
) -> str:
    """The ``namespace`` query parameter, ``default`` when absent (dependency)."""
    return checked_namespace(namespace, "namespace")


def seconds(value: str, param: str) -> int:
    """``value`` as delta-seconds (optionally quoted), else a 400 naming ``param``."""
    text = value.strip()
    if len(text) > 1 and text[0] == text[-1] == '"':
        text = text[1:-1]
    if not SECONDS.fullmatch(text):
        raise InvalidRequest(
            f"{param} must be a whole number of seconds", param=param, code="invalid_seconds"
        )
    return min(int(text), MAX_SECONDS)


def cache_control(value: str) -> tuple[set[str], dict[str, int]]:
    """The ``Cache-Control`` directives a request may send, as (names, seconds by name for
    ``max-age`` and ``s-maxage``; the smallest when one is repeated). ``max-stale``,
    ``min-fresh``, ``only-if-cached`` and unknown directives are ignored (RFC 9111 section
    5.2: a cache ignores what it does not implement)."""
    names: set[str] = set()
    timed: dict[str, int] = {}
    for part in value.split(","):
        name, _, raw = part.partition("=")
        name = name.strip().lower()
        names.add(name)
        if name in ("max-age", "s-maxage"):
            found = seconds(raw, "cache-control")
            timed[name] = min(found, timed.get(name, found))
    return names, timed


def _ttl(headers: Mapping[str, str], timed: Mapping[str, int]) -> int | None:
    """The TTL the request asks for: ``x-vetcache-ttl`` or ``s-maxage``, the shorter."""
    asked = [timed["s-maxage"]] if "s-maxage" in timed else []
    raw = headers.get("x-vetcache-ttl")
    if raw is not None:
        asked.append(seconds(raw, "x-vetcache-ttl"))
    return min(asked) if asked else None


def directives(request: Request, keyring: KeyRing) -> Directives:
    """The cache directives in the request's headers (400 naming the header if invalid)."""
    headers = request.headers
    names, timed = cache_control(",".join(headers.getlist("cache-control")))
    ttl = _ttl(headers, timed)
    namespace = checked_namespace(
        headers.get("x-vetcache-namespace", "default"), "x-vetcache-namespace"
    )
    threshold = None
    raw = headers.get("x-vetcache-threshold")
    if raw is not None:
        threshold = float(raw) if DECIMAL.fullmatch(raw) else math.nan
        if not -1.0 <= threshold <= 1.0:
            raise InvalidRequest(
                "x-vetcache-threshold must be a decimal similarity between -1 and 1",
                param="x-vetcache-threshold",
            )
    admin_key = headers.get("x-vetcache-admin-key")
    may_loosen = admin_key is not None and keyring.is_admin_key(admin_key)
    return Directives(
        namespace=namespace,
        lookup="no-cache" not in names,
        store="no-store" not in names and ttl != 0,  # a TTL of 0: keep it for no time
        threshold=threshold,
        may_loosen=may_loosen,
        max_age_s=timed.get("max-age"),
        ttl_s=ttl or None,
    )
