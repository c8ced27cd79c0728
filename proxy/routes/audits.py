"""Verdicts, the false-positive rate, and labels from outside the judge.

GET  /admin/verdicts?namespace=&verdict=&since=&limit=   admin key
GET  /admin/fp-rate?namespace=&window_s=                  admin key
POST /admin/verdicts/{id}/review {correct, comment}       admin key: a person's label
GET  /admin/review-queue?limit=                           admin key: recent false_positive and
                                                          uncertain labels, with any review
GET  /admin/tune?namespace=&target_fp=&hours=             admin key: vetcache tune's report
GET  /admin/hard-negatives?namespace=&limit=&format=       admin key: json, or jsonl rows
                                                          shaped like the labelled pair files
POST /v1/feedback {request_id, correct, comment}          the key that made the request: a
                                                          receipt of the label, no prompts
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from audit import Verdict
from audit.errors import LedgerError
from audit.ledgers.base import LOOKUP_HISTORY_H
from audit.schema import VerdictKind
from audit.tune import DEFAULT_MIN_BAND_LABELS
from proxy import deps
from proxy.directives import namespace_filter, namespace_or_default
from proxy.errors import GatewayError, InvalidRequest, PermissionDenied, StoreUnavailable
from proxy.openapi import json_body
from proxy.wire import json_response, read_json, validate

admin = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(deps.admin)])
public = APIRouter(tags=["feedback"])
NamespaceFilter = Annotated[str | None, Depends(namespace_filter)]
Namespace = Annotated[str, Depends(namespace_or_default)]


class Label(BaseModel):
    """A label from outside the judge."""

    correct: bool
    """Whether the cached answer served the prompt."""
    comment: str = Field(default="", max_length=1000)
    """Why (kept with the verdict)."""


class Feedback(Label):
    """``POST /v1/feedback``."""

    request_id: str = Field(min_length=1, max_length=128)
    """The ``x-request-id`` of the answer being judged."""


class Receipt(BaseModel):
    """What ``POST /v1/feedback`` answers: the label as the caller sent it, nothing of the
    pair (the cached prompt was another key's request, even within one tenant)."""

    object: Literal["feedback"] = "feedback"
    id: str
    """The label's verdict id."""
    source: Literal["feedback"] = "feedback"
    request_id: str
    """The request labelled."""
    correct: bool
    comment: str
    created_at: float


MAX_WINDOW_S = 366 * 86400
"""Longest FP-rate window a request may ask for (a year; larger numbers overflowed into a 500)."""


def _unavailable() -> GatewayError:
    return StoreUnavailable("verdict")


@admin.get("/verdicts")
async def verdicts(
    auditor: deps.AuditorDep,
    namespace: NamespaceFilter,
    verdict: VerdictKind | None = None,
    since: Annotated[float, Query(ge=0)] = 0.0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Verdicts, newest first, with their provenance."""
    try:
        found = await auditor.verdicts(
            namespace=namespace, verdict=verdict, since=since, limit=limit
        )
    except LedgerError:
        raise _unavailable() from None
    return json_response({"object": "list", "data": [v.model_dump(mode="json") for v in found]})


@admin.get("/fp-rate")
async def false_positive_rate(
    auditor: deps.AuditorDep,
    namespace: NamespaceFilter,
    window_s: Annotated[int | None, Query(ge=60, le=MAX_WINDOW_S)] = None,
) -> Response:
    """FP rate of served hits with a Wilson 95% interval, per namespace and cohort."""
    try:
        breakdown = await auditor.fp_breakdown(namespace, window_s or auditor.settings.window_s)
    except LedgerError:
        raise _unavailable() from None
    return json_response(breakdown.model_dump())


@admin.get("/tune")
async def tune_report(
    auditor: deps.AuditorDep,
    service: deps.ChatDep,
    namespace: Namespace,
    target_fp: Annotated[float, Query(gt=0, lt=1)] = 0.05,
    hours: Annotated[int, Query(ge=1, le=LOOKUP_HISTORY_H)] = 168,
    min_band_labels: Annotated[int, Query(ge=1, le=100_000)] = DEFAULT_MIN_BAND_LABELS,
) -> Response:
    """Threshold -> estimated hit rate, FP rate and its upper bound, and the lowest
    threshold whose upper bound is under ``target_fp`` with ``min_band_labels`` labels in
    the band a move down opens (what ``vetcache tune`` prints)."""
    current = service.cache.threshold(namespace) if service.cache else None
    try:
        report = await auditor.tune(
            namespace, target_fp, hours=hours, current=current, min_band_labels=min_band_labels
        )
    except LedgerError:
        raise _unavailable() from None
    return json_response(report.model_dump(mode="json"))


@admin.get("/review-queue")
async def review_queue(
    auditor: deps.AuditorDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> Response:
    """Recent judge and feedback labels a person should look at (false_positive and
    uncertain on served hits), newest first, each with the latest review of its pair."""
    try:
        rows = await auditor.review_queue(limit)
    except LedgerError:
        raise _unavailable() from None
    return json_response({"object": "list", "data": [r.model_dump(mode="json") for r in rows]})


@admin.get(
    "/hard-negatives",
    responses={200: {"content": {"application/json": {}, "application/x-ndjson": {}}}},
)
async def hard_negatives(
    auditor: deps.AuditorDep,
    namespace: NamespaceFilter,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    format: Literal["json", "jsonl"] = "json",
) -> Response:
    """Pairs labelled false hits, newest first. ``format=jsonl`` gives one labelled pair per
    line (text_a = cached prompt, text_b = new prompt, label 0, category = namespace), the
    shape of the pair files ``vetcache eval`` and ``tune --pairs`` read."""
    try:
        found = await auditor.hard_negatives(namespace=namespace, limit=limit)
    except LedgerError:
        raise _unavailable() from None
    if format == "json":
        return json_response({"object": "list", "data": [p.model_dump() for p in found]})
    rows = (
        orjson.dumps(
            {
                "id": pair.pair_id,
                "text_a": pair.cached_prompt,
                "text_b": pair.new_prompt,
                "label": 0,
                "score": pair.similarity,
                "category": pair.namespace,
            }
        )
        for pair in found
    )
    return Response(b"\n".join(rows) + b"\n" if found else b"", media_type="application/x-ndjson")


@admin.post("/verdicts/{verdict_id}/review", openapi_extra=json_body(Label))
async def review(verdict_id: str, request: Request, auditor: deps.AuditorDep) -> Response:
    """A person confirms or overturns a verdict; the review overrides the judge's label."""
    settings = deps.app_settings(request)
    label = validate(Label, await read_json(request, settings.max_body_bytes))
    try:
        base = await auditor.verdict(verdict_id)
        if base is None:
            raise GatewayError("No such verdict", status=404, code="verdict_not_found")
        verdict = await auditor.label(base, "review", label.correct, label.comment)
    except LedgerError:
        raise _unavailable() from None
    return json_response(verdict.model_dump(mode="json"))


@public.post("/v1/feedback", openapi_extra=json_body(Feedback))
async def feedback(
    request: Request, principal: deps.ClientDep, auditor: deps.AuditorDep
) -> Response:
    """The app says whether a cached answer served its request. Only the key that made the
    request may label it: the hit is looked up by tenant, key and request id, so another key
    reusing the id finds nothing of this one's."""
    settings = deps.app_settings(request)
    label = validate(Feedback, await read_json(request, settings.max_body_bytes))
    try:
        served = await auditor.served(principal.tenant, principal.key_id, label.request_id)
        if served is None:
            raise InvalidRequest(
                "No cached answer was served to that request id (or it is too old)",
                param="request_id",
                code="unknown_request",
            )
        if served.key_id != principal.key_id or served.job.tenant != principal.tenant:
            raise PermissionDenied("That request was made with another key")  # a ledger bug
        if served.job.shadow:
            raise InvalidRequest(
                "That request was answered by the upstream (shadow mode): no cached answer "
                "to label",
                param="request_id",
                code="not_served_from_cache",
            )
        base = Verdict(id="", job=served.job, verdict="uncertain", created_at=time.time())
        verdict = await auditor.label(base, "feedback", label.correct, label.comment)
    except LedgerError:
        raise _unavailable() from None
    receipt = Receipt(
        id=verdict.id,
        request_id=label.request_id,
        correct=label.correct,
        comment=label.comment,
        created_at=verdict.created_at,
    )
    return json_response(receipt.model_dump())
