"""Verdicts, the false-positive rate, and labels from outside the judge.

GET  /admin/verdicts?namespace=&verdict=&since=&limit=   admin key
GET  /admin/fp-rate?namespace=&window_s=                  admin key
POST /admin/verdicts/{id}/review {correct, comment}       admin key: a person's label
GET  /admin/review-queue?limit=                           admin key: recent false_positive and
                                                          uncertain labels, with any review
GET  /admin/tune?namespace=&target_fp=&hours=             admin key: vetcache tune's report
GET  /admin/hard-negatives?namespace=&limit=&format=       admin key: json, or jsonl rows
                                                          shaped like the labelled pair files
POST /v1/feedback {request_id, correct, comment}          the key that made the request
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from audit import Auditor, LedgerError, Verdict, cohort, fp_rate
from audit.actions import act_on
from audit.ledgers.base import LOOKUP_HISTORY_H
from audit.schema import VerdictKind
from audit.tune import report_from_ledger
from proxy import deps
from proxy.errors import GatewayError, InvalidRequest, PermissionDenied
from proxy.openapi import json_body
from proxy.wire import json_response, read_json, validate

NAMESPACE_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
"""What a namespace filter may be (as the x-vetcache-namespace header)."""
admin = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(deps.admin)])
public = APIRouter(tags=["feedback"])


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


MAX_WINDOW_S = 366 * 86400
"""Longest FP-rate window a request may ask for (a year; larger numbers overflowed into a 500)."""


def _unavailable() -> GatewayError:
    return GatewayError("The verdict store is unavailable", status=503, code="store_unavailable")


async def _label(
    auditor: Auditor, base: Verdict, source: Literal["feedback", "review"], label: Label
) -> Verdict:
    verdict = Verdict(
        id=uuid.uuid4().hex,
        source=source,
        job=base.job,
        verdict="correct" if label.correct else "false_positive",
        reason=label.comment,
        judge=source,
        created_at=time.time(),
    )
    try:
        await auditor.ledger.record(verdict)
        auditor.observer.verdict_recorded(verdict)
        await act_on(verdict, auditor.store, auditor.ledger, auditor.settings)
    except LedgerError:
        raise _unavailable() from None
    return verdict


@admin.get("/verdicts")
async def verdicts(
    auditor: deps.AuditorDep,
    namespace: Annotated[str | None, Query(pattern=NAMESPACE_PATTERN)] = None,
    verdict: VerdictKind | None = None,
    since: Annotated[float, Query(ge=0)] = 0.0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    """Verdicts, newest first, with their provenance."""
    try:
        found = await auditor.ledger.query(
            namespace=namespace, verdict=verdict, since=since, limit=limit
        )
    except LedgerError:
        raise _unavailable() from None
    return json_response({"object": "list", "data": [v.model_dump(mode="json") for v in found]})


@admin.get("/fp-rate")
async def false_positive_rate(
    auditor: deps.AuditorDep,
    namespace: Annotated[str | None, Query(pattern=NAMESPACE_PATTERN)] = None,
    window_s: Annotated[int | None, Query(ge=60, le=MAX_WINDOW_S)] = None,
) -> Response:
    """FP rate of served hits with a Wilson 95% interval, per namespace and cohort."""
    window = window_s or auditor.settings.window_s
    try:
        found = await auditor.ledger.query(
            namespace=namespace, since=time.time() - window, limit=None
        )
    except LedgerError:
        raise _unavailable() from None
    groups: dict[str, dict[str, list[Verdict]]] = defaultdict(lambda: defaultdict(list))
    for item in found:
        for dimension, value in cohort(item).items():
            groups[dimension][value].append(item)
    by_namespace: dict[str, list[Verdict]] = defaultdict(list)
    for item in found:
        by_namespace[item.job.namespace].append(item)
    body: dict[str, Any] = {
        "window_s": window,
        "overall": fp_rate(found).model_dump(),
        "namespaces": {ns: fp_rate(v).model_dump() for ns, v in sorted(by_namespace.items())},
        # Shadow mode: the FP rate the would-be hits would have had if served.
        "shadow": {
            ns: fp_rate(v, shadow=True).model_dump()
            for ns, v in sorted(by_namespace.items())
            if any(item.job.shadow for item in v)
        },
        "cohorts": {
            dimension: {value: fp_rate(v).model_dump() for value, v in sorted(values.items())}
            for dimension, values in sorted(groups.items())
        },
    }
    return json_response(body)


@admin.get("/tune")
async def tune_report(
    request: Request,
    auditor: deps.AuditorDep,
    service: deps.ChatDep,
    namespace: Annotated[str, Query(pattern=NAMESPACE_PATTERN)] = "default",
    target_fp: Annotated[float, Query(gt=0, lt=1)] = 0.05,
    hours: Annotated[int, Query(ge=1, le=LOOKUP_HISTORY_H)] = 168,
) -> Response:
    """Threshold -> estimated hit rate, FP rate and its upper bound, and the lowest
    threshold whose upper bound is under ``target_fp`` (what ``vetcache tune`` prints)."""
    current = service.cache.threshold(namespace, None, False) if service.cache else None
    try:
        report = await report_from_ledger(
            auditor.ledger, auditor.settings, namespace, target_fp, hours=hours, current=current
        )
    except LedgerError:
        raise _unavailable() from None
    return json_response(report.model_dump(mode="json"))


REVIEW_SCAN = 5000
"""Newest verdicts the review queue looks through."""


@admin.get("/review-queue")
async def review_queue(
    auditor: deps.AuditorDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> Response:
    """Recent judge and feedback labels a person should look at (false_positive and
    uncertain on served hits), newest first, each with the latest review of its pair."""
    try:
        recent = await auditor.ledger.query(limit=REVIEW_SCAN)
    except LedgerError:
        raise _unavailable() from None
    reviews: dict[str, Verdict] = {}
    for item in reversed(recent):  # oldest first: the newest review wins
        if item.source == "review":
            reviews[item.job.job_id] = item
    rows = []
    for item in recent:
        if item.source == "review" or item.job.near_miss or item.job.admission:
            continue
        if item.verdict not in ("false_positive", "uncertain"):
            continue
        review = reviews.get(item.job.job_id)
        rows.append(
            {
                "verdict": item.model_dump(mode="json"),
                "review": None if review is None else review.verdict,
            }
        )
        if len(rows) >= limit:
            break
    return json_response({"object": "list", "data": rows})


@admin.get(
    "/hard-negatives",
    responses={200: {"content": {"application/json": {}, "application/x-ndjson": {}}}},
)
async def hard_negatives(
    auditor: deps.AuditorDep,
    namespace: Annotated[str | None, Query(pattern=NAMESPACE_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    format: Literal["json", "jsonl"] = "json",
) -> Response:
    """Pairs labelled false hits, newest first. ``format=jsonl`` gives one labelled pair per
    line (text_a = cached prompt, text_b = new prompt, label 0, category = namespace), the
    shape of the pair files ``vetcache eval`` and ``tune --pairs`` read."""
    try:
        found = await auditor.ledger.hard_negatives(namespace=namespace, limit=limit)
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
        base = await auditor.ledger.get(verdict_id)
    except LedgerError:
        raise _unavailable() from None
    if base is None:
        raise GatewayError("No such verdict", status=404, code="verdict_not_found")
    verdict = await _label(auditor, base, "review", label)
    return json_response(verdict.model_dump(mode="json"))


@public.post("/v1/feedback", openapi_extra=json_body(Feedback))
async def feedback(
    request: Request, principal: deps.ClientDep, auditor: deps.AuditorDep
) -> Response:
    """The app says whether a cached answer served its request. Only the key that made the
    request may label it."""
    settings = deps.app_settings(request)
    label = validate(Feedback, await read_json(request, settings.max_body_bytes))
    try:
        served = await auditor.ledger.served(label.request_id)
    except LedgerError:
        raise _unavailable() from None
    if served is None:
        raise InvalidRequest(
            "No cached answer was served to that request id (or it is too old)",
            param="request_id",
            code="unknown_request",
        )
    if served.key_id != principal.key_id or served.job.tenant != principal.tenant:
        raise PermissionDenied("That request was made with another key")
    if served.job.shadow:
        raise InvalidRequest(
            "That request was answered by the upstream (shadow mode): no cached answer to label",
            param="request_id",
            code="not_served_from_cache",
        )
    base = Verdict(id="", job=served.job, verdict="uncertain", created_at=time.time())
    verdict = await _label(auditor, base, "feedback", label)
    return json_response(verdict.model_dump(mode="json"))
