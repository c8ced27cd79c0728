"""Hand-made hostile headers: control characters, very long values and non-ASCII bytes in
the directive, admin-key, authorization and request-id headers; and what the server itself
(a real ``vetcache serve``) refuses before the app sees a request: heads over
``max_header_bytes``, NUL bytes."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from tests.conftest import free_port, route, stop, vetcache, wait_http
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
@pytest.mark.parametrize(
    "header", ["x-vetcache-namespace", "x-vetcache-threshold", "x-vetcache-ttl"]
)
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


@pytest.mark.parametrize(
    "value", ["1e3", "-1", "0x10", "1_000", "6\u0660", "60s", "", '"60', "1.5", "inf"]
)
def test_cache_control_seconds_are_plain_digits_only(client: TestClient, value: str) -> None:
    for directive in ("max-age", "s-maxage"):
        raw = f"no-store, {directive}={value}".encode()  # non-ASCII digits as UTF-8 bytes
        headers: dict[str, Any] = {**JSON, "cache-control": raw}
        response = client.post("/v1/chat/completions", headers=headers, json=GOOD)
        assert assert_openai_error(response, 400)["param"] == "cache-control", value
    assert_still_serving(client)


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


HEAD_CAP = 16 * 1024
"""max_header_bytes of the served gateway below."""


@pytest.fixture(scope="module")
def served(fake_upstream: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``vetcache serve`` process (auth and the cache off: only the server matters here)."""
    config = Path(tmp_path_factory.mktemp("headers")) / "gateway.yaml"
    values = {
        "auth": {"enabled": False},
        "access_log": False,
        "cache": {"enabled": False},
        "max_header_bytes": HEAD_CAP,
        "model_list": [route("fake-gpt", "fake-gpt", fake_upstream)],
    }
    config.write_text(yaml.safe_dump(values))
    port = free_port()
    process = vetcache("serve", "--config", str(config), "--port", str(port))
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def raw_exchange(url: str, head: bytes) -> bytes:
    """Send ``head`` (a request, body included if any) on a new connection; what came back
    before the server closed it (empty if it reset the connection under a client still
    sending)."""
    host, port = url.removeprefix("http://").split(":")
    received = b""
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        try:
            sock.sendall(head)
            while chunk := sock.recv(65536):
                received += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
    return received


def head_with(value: bytes) -> bytes:
    start = b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
    return start + b"x-big: " + value + b"\r\n\r\n"


@pytest.mark.parametrize("size", [1 << 20, 40 << 20], ids=["1 MB", "40 MB"])
def test_a_request_head_over_the_cap_is_refused_by_the_server(served: str, size: int) -> None:
    """uvicorn's h11 stops buffering a head once more than ``max_header_bytes`` of it came
    without its end: a plain-text 400 (or a reset, if the client is still sending), never
    the app's answer; afterwards the gateway serves."""
    reply = raw_exchange(served, head_with(b"a" * size))
    assert not reply.startswith(b"HTTP/1.1 200"), reply[:200]
    if reply:
        assert reply.startswith(b"HTTP/1.1 400"), reply[:200]
        assert b"content-type: text/plain" in reply.lower()
    assert httpx.get(f"{served}/healthz").status_code == 200


def test_a_request_head_under_the_cap_is_served(served: str) -> None:
    reply = raw_exchange(served, head_with(b"a" * (HEAD_CAP - 1024)))
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]


@pytest.mark.parametrize(
    ("label", "line"),
    [("NUL", b"x-a: a\x00b"), ("CR in a value", b"x-a: a\rb"), ("no colon", b"x-a")],
)
def test_a_malformed_header_line_gets_the_servers_plain_400(
    served: str, label: str, line: bytes
) -> None:
    """As documented in api.md: the server refuses it before the app sees the request, so
    the answer is uvicorn's plain text, not OpenAI's JSON."""
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n" + line + b"\r\n\r\n"
    reply = raw_exchange(served, head)
    assert reply.startswith(b"HTTP/1.1 400"), (label, reply[:200])
    assert b"content-type: text/plain" in reply.lower(), label
    assert reply.endswith(b"Invalid HTTP request received."), label


def test_a_folded_header_line_is_unfolded(served: str) -> None:
    """An obsolete folded line (a continuation starting with a space) is joined to the
    header before it, so the app sees one value and answers it itself: here an OpenAI 400
    for a namespace with a space in it."""
    body = b'{"model":"fake-gpt","messages":[{"role":"user","content":"hi"}]}'
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n"
        b"content-type: application/json\r\ncontent-length: " + str(len(body)).encode()
        + b"\r\nx-vetcache-namespace: shop\r\n  folded\r\n\r\n" + body
    )  # fmt: skip
    reply = raw_exchange(served, head)
    assert reply.startswith(b"HTTP/1.1 400"), reply[:300]
    assert b'"param":"x-vetcache-namespace"' in reply, reply[-300:]
