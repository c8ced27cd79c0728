"""Every vector search a Redis server ran, read from its MONITOR stream: the scope each
searched and the query vector it searched with. A test's witness that the gateway never
compared a vector of one embedding version with another's entries.

redis-py's ``Monitor.next_command`` joins a command's arguments into one string, losing the
binary vector; the raw MONITOR line is parsed here instead (Redis writes each argument
quoted, escaped as ``sdscatrepr`` does: ``\\\\ \\" \\n \\r \\t \\a \\b \\xHH``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import redis

_ESCAPES = {"\\": b"\\", '"': b'"', "n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b"}
_SCOPE = re.compile(r"@scope:\{([0-9a-f]+)\}")
Vector = npt.NDArray[np.float32]


def parse_arguments(line: str) -> list[bytes]:
    """The quoted arguments of one MONITOR line, unescaped to bytes."""
    args: list[bytes] = []
    i = line.find('"')
    while 0 <= i < len(line):
        out, i = bytearray(), i + 1
        while line[i] != '"':
            if line[i] == "\\":
                if line[i + 1] == "x":
                    out.append(int(line[i + 2 : i + 4], 16))
                    i += 4
                    continue
                out += _ESCAPES[line[i + 1]]
                i += 2
                continue
            out += line[i].encode("latin-1")
            i += 1
        args.append(bytes(out))
        i = line.find('"', i + 1)
    return args


class SearchLog:
    """``with SearchLog(url) as log:`` records (scope, query vector) of each FT.SEARCH."""

    def __init__(self, url: str) -> None:
        self._client: Any = redis.Redis.from_url(url)
        self.searches: list[tuple[str, Vector]] = []
        self._monitor: Any = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._stopping = threading.Event()

    def __enter__(self) -> SearchLog:
        self._monitor = self._client.monitor().__enter__()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stopping.set()
        self._client.ping()  # wakes the reader with one more line
        self._thread.join(timeout=10)
        self._monitor.__exit__(kind, exc, tb)
        self._client.close()

    def _read(self) -> None:
        connection = self._monitor.connection
        while not self._stopping.is_set():
            raw = connection.read_response()
            if not isinstance(raw, bytes) or b'"FT.SEARCH"' not in raw:
                continue
            args = parse_arguments(raw.decode("latin-1"))
            scope = _SCOPE.search(args[2].decode())
            blob = args[args.index(b"q") + 1]
            if scope is not None:
                self.searches.append((scope.group(1), np.frombuffer(blob, dtype=np.float32)))

    def check(self, scopes: Mapping[str, str], version_of: Callable[[Vector], str | None]) -> int:
        """Assert that each search in one of ``scopes`` (scope -> the embedder of its
        entries) ran with a query vector ``version_of`` attributes to that embedder; how
        many were checked."""
        checked = 0
        for scope, vector in self.searches:
            if scope not in scopes:
                continue
            made_by = version_of(vector)
            assert made_by == scopes[scope], f"a {made_by} vector searched a {scopes[scope]} scope"
            checked += 1
        return checked
