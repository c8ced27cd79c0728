"""Hand-made hostile headers: control characters, very long values and non-ASCII bytes in
the directive, admin-key, authorization and request-id headers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.integration.hostile.rig import (
    ADMIN_KEY,
    CLIENT_KEY,
    GOOD,
    JSON,
    assert_openai_error,
    assert_still_serving,
)

pytestmark = pytest.mark.integration


HEADER_VALUES: list[tuple[str, bytes]] = [
    ("CRLF then a header", b"shop\r\nx-vetcache-admin-key: " + ADMIN_KEY.encode()),
    ("trailing LF", b"shop\n"),
    ("lone CR", b"shop\rx"),
    ("NUL", b"shop\x00"),
    ("100k characters", b"7" * 100_000),
    ("UTF-8", "caf\u00e9".encode()),
    ("latin-1", b"caf\xe9"),
    ("Arabic-Indic digits", "\u0660.\u0669".encode()),
    ("empty", b""),
]


@pytest.mark.parametrize(("label", "value"), HEADER_VALUES, ids=[v[0] for v in HEADER_VALUES])
@pytest.mark.parametrize("header", ["x-vetcache-namespace", "x-vetcache-threshold"])
def test_hostile_directive_headers_are_refused(
    client: TestClient, header: str, label: str, value: bytes
) -> None:
    headers: dict[str, Any] = {**JSON, header: value}
    response = client.post("/v1/chat/completions", headers=headers, json=GOOD)
    assert assert_openai_error(response, 400)["param"] == header, label
    assert_still_serving(client)


@pytest.mark.parametrize(
    "value", ["1e-1", "nan", "-inf", "0_9", " 0.9", "0.9 ", "0x1p-1", "+.", "1" * 30]
)
def test_threshold_header_takes_plain_decimals_only(client: TestClient, value: str) -> None:
    headers = {**JSON, "x-vetcache-threshold": value}
    response = client.post("/v1/chat/completions", headers=headers, json=GOOD)
    assert assert_openai_error(response, 400)["param"] == "x-vetcache-threshold"


@pytest.mark.parametrize("value", ["0.99", "1", "1.", ".999", "+0.97", "-0.5"])
def test_threshold_header_accepts_decimals(client: TestClient, value: str) -> None:
    headers = {**JSON, "x-vetcache-threshold": value}
    response = client.post("/v1/chat/completions", headers=headers, json=GOOD)
    assert response.status_code == 200, response.text
    expected = max(0.95, float(value))  # without the admin key it can only raise
    assert float(response.headers["x-vetcache-threshold"]) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    [
        ADMIN_KEY.encode() + b"\r\n",
        ADMIN_KEY.encode() + b"\x00",
        b"\r\n" + ADMIN_KEY.encode(),
        ADMIN_KEY.encode() * 10_000,
        "sk-hostile-\u00e4dmin".encode(),
        b"sk-hostile-\xe4dmin",
    ],
    ids=["trailing CRLF", "NUL", "leading CRLF", "repeated 10k times", "UTF-8", "latin-1"],
)
def test_a_mangled_admin_key_header_never_loosens(client: TestClient, value: bytes) -> None:
    """Not the admin key: the request is served, but its threshold may only raise."""
    headers: dict[str, Any] = {**JSON, "x-vetcache-threshold": "-1", "x-vetcache-admin-key": value}
    response = client.post("/v1/chat/completions", headers=headers, json=GOOD)
    assert response.status_code == 200, response.text
    assert response.headers["x-vetcache-threshold"] == "0.9500"
    loosened = client.post(
        "/v1/chat/completions",
        headers={**JSON, "x-vetcache-threshold": "-1", "x-vetcache-admin-key": ADMIN_KEY},
        json=GOOD,
    )
    assert loosened.headers["x-vetcache-threshold"] == "-1.0000"  # the real key does


@pytest.mark.parametrize(
    "value",
    [
        f"Bearer {CLIENT_KEY}\r\nx-vetcache-admin-key: {ADMIN_KEY}".encode(),
        f"Bearer {CLIENT_KEY}\x00".encode(),
        b"Bearer " + b"k" * 100_000,
        "Bearer sk-hostile-t\u00e9nant".encode(),
        b"Bearer sk-hostile-t\xe9nant",
        b"\r\n",
    ],
    ids=["CRLF then a header", "NUL", "100k characters", "UTF-8", "latin-1", "only CRLF"],
)
def test_hostile_authorization_headers_get_401(client: TestClient, value: bytes) -> None:
    headers: dict[str, Any] = {"content-type": "application/json", "authorization": value}
    response = client.post("/v1/chat/completions", headers=headers, json=GOOD)
    assert_openai_error(response, 401)
    assert_still_serving(client)


@pytest.mark.parametrize(
    "value",
    [b"abc\n", b"abc\r\nset-cookie: a=b", b"abc\x00", b"a" * 129, "\u00e9t\u00e9".encode(), b""],
    ids=["trailing LF", "CRLF then a header", "NUL", "129 characters", "UTF-8", "empty"],
)
def test_a_hostile_request_id_is_replaced_not_echoed(client: TestClient, value: bytes) -> None:
    headers: dict[str, Any] = {**JSON, "x-request-id": value}
    response = client.post("/v1/chat/completions", headers=headers, json=GOOD)
    assert response.status_code == 200, response.text
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
