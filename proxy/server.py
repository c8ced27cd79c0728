"""How the gateway is served: the options every way of running it (``vetcache serve``, one
worker or several, and ``vetcache demo``) hands uvicorn."""

from __future__ import annotations

from typing import Any

from proxy.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options that bound what one connection can make the server do.

    h11, not httptools (which uvicorn[standard] picks by default): httptools has no limit on
    the request head, and a 30 MB header took it over a second of the event loop to gather
    (every other request waited); h11 refuses a head over ``h11_max_incomplete_event_size``
    as it arrives. Measured here, h11 costs about 0.15 ms more per request.
    """
    return {
        "http": "h11",
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_s,
        "access_log": False,  # the gateway writes its own access line, with the request id
        "log_config": None,  # the gateway's logging (proxy.logs) stays in place
    }
