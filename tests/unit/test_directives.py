"""The cache directives a request's headers carry (``proxy.directives``): freshness
(``Cache-Control: max-age``), the TTL of what a miss admits (``s-maxage``,
``x-vetcache-ttl``), and the 400 that names a bad header."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from proxy.auth import KeyRing
from proxy.directives import MAX_SECONDS, Directives, directives
from proxy.errors import InvalidRequest
from proxy.settings import Settings

RING = KeyRing(Settings(auth={"enabled": False}))


def read(*headers: tuple[str, str]) -> Directives:
    raw = [(name.encode(), value.encode()) for name, value in headers]
    return directives(Request({"type": "http", "headers": raw}), RING)


def test_no_headers_ask_nothing_of_freshness() -> None:
    found = read()
    assert (found.lookup, found.store, found.max_age_s, found.ttl_s) == (True, True, None, None)


def test_max_age_limits_the_age_served() -> None:
    assert read(("cache-control", "max-age=300")).max_age_s == 300
    assert read(("cache-control", 'no-store, MAX-AGE="60"')).max_age_s == 60
    assert read(("cache-control", "max-age=0")).max_age_s == 0
    # Repeated, the strictest counts; in two header lines as in one.
    assert read(("cache-control", "max-age=60"), ("cache-control", "max-age=5")).max_age_s == 5
    # Beyond 2^31 s counts as 2^31 (RFC 9111 section 1.2.2), not an error.
    assert read(("cache-control", "max-age=99999999999999")).max_age_s == MAX_SECONDS


def test_max_stale_and_unknown_directives_are_ignored() -> None:
    for value in ("max-stale", "max-stale=60", "max-stale=soon", "min-fresh=5, only-if-cached"):
        assert read(("cache-control", value)) == Directives()


def test_s_maxage_and_the_ttl_header_set_the_admitted_ttl() -> None:
    assert read(("cache-control", "s-maxage=120")).ttl_s == 120
    assert read(("x-vetcache-ttl", "90")).ttl_s == 90
    # Both: the shorter.
    both = read(("cache-control", "s-maxage=120"), ("x-vetcache-ttl", "3600"))
    assert both.ttl_s == 120 and both.max_age_s is None


def test_a_ttl_of_zero_stores_nothing() -> None:
    for header in (("x-vetcache-ttl", "0"), ("cache-control", "s-maxage=0")):
        found = read(header)
        assert not found.store and found.ttl_s is None and found.lookup


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("cache-control", "max-age=soon"),
        ("cache-control", "max-age=-1"),
        ("cache-control", "max-age=1.5"),
        ("cache-control", "max-age"),
        ("cache-control", "s-maxage=1e3"),
        ("cache-control", "max-age=\u0661"),  # an Arabic-Indic one: not ASCII
        ("x-vetcache-ttl", ""),
        ("x-vetcache-ttl", "ten"),
        ("x-vetcache-ttl", "-5"),
        ("x-vetcache-ttl", "60s"),
    ],
)
def test_bad_seconds_are_a_400_naming_the_header(header: str, value: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        read((header, value))
    assert raised.value.param == header
    assert header in str(raised.value)
