"""What the cache did for one request, and the ``x-vetcache-*`` headers that say so.

The report is built once, from the lookup as the serving policy decided it, and travels on
the request's state (``proxy.routes.chat`` puts it there): the headers, the metrics, the
access log and the trace all read the same report.
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from cache import Lookup, Outcome

STATE = "cache_report"
"""Attribute of ``request.state`` (``scope["state"]``) that holds the report."""


class CacheReport(BaseModel):
    """What the cache did for one request."""

    outcome: Outcome
    """hit, miss, bypass, fail_open; error once the request failed."""
    similarity: float | None = None
    """The nearest candidate's similarity (the served entry's on a hit)."""
    threshold: float | None = None
    """Threshold in force."""
    entry_id: str | None = None
    """Entry served on a hit; in shadow mode, the entry that would have answered."""
    age_s: int | None = None
    """Seconds since the served entry was admitted."""
    shadow_hit: bool = False
    """Shadow mode: an entry would have answered (``entry_id``); the upstream did."""
    refused: str | None = None
    """Why the serving policy refused the nearest candidate (``cache.Refusal`` or a
    check's name)."""
    bypass: str | None = None
    """Why a cacheable-looking request was not cacheable (``NotCacheable.reason``)."""
    verifier_score: float | None = None
    """The learned verifier's score of the candidate served, would-be served or refused
    (``Lookup.verifier_score``)."""
    embedder: str | None = None
    """Fingerprint of the embedding version the lookup searched under (the trace's
    ``vetcache.embedder``)."""


BYPASS = CacheReport(outcome=Outcome.BYPASS)


def report(lookup: Lookup | None, bypass: str | None = None) -> CacheReport:
    """The report of a lookup (None: the cache was not asked, for ``bypass`` if given)."""
    if lookup is None:
        return BYPASS if bypass is None else CacheReport(outcome=Outcome.BYPASS, bypass=bypass)
    shown = lookup.hit or lookup.shadow_hit
    age = None
    if lookup.hit is not None:
        age = max(0, int(time.time() - lookup.hit.entry.created_at))
    return CacheReport(
        outcome=lookup.outcome,
        similarity=lookup.best_similarity,
        threshold=lookup.threshold,
        entry_id=shown.entry.id if shown is not None else None,
        age_s=age,
        shadow_hit=lookup.shadow,
        refused=lookup.refused,
        verifier_score=lookup.verifier_score,
        embedder=lookup.embedder or None,
    )


def headers(report: CacheReport) -> dict[str, str]:
    """``x-vetcache: hit|miss|bypass|fail_open`` and the numbers and reasons behind it."""
    found: dict[str, str] = {"x-vetcache": report.outcome.value}
    if report.similarity is not None:
        found["x-vetcache-similarity"] = f"{report.similarity:.4f}"
    if report.threshold is not None:
        found["x-vetcache-threshold"] = f"{report.threshold:.4f}"
    if report.entry_id is not None:
        found["x-vetcache-entry"] = report.entry_id
    if report.age_s is not None:
        found["x-vetcache-age"] = str(report.age_s)
    if report.shadow_hit:
        found["x-vetcache-shadow"] = "hit"  # served upstream; the entry would have answered
    if report.refused is not None:
        found["x-vetcache-refused"] = report.refused
    if report.bypass is not None:
        found["x-vetcache-bypass"] = report.bypass
    if report.verifier_score is not None:
        found["x-vetcache-verifier"] = f"{report.verifier_score:.4f}"
    return found
