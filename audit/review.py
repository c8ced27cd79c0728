"""The review queue: recent judge and feedback labels a person should look at
(``false_positive`` and ``uncertain`` on served hits), each with the latest review of its
pair, for ``/admin/review-queue`` and the page at ``/ui``."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from audit.schema import Verdict, VerdictKind


class ReviewRow(BaseModel):
    """One label to look at."""

    verdict: Verdict
    """The judge's (or the app's) label, with its provenance."""
    review: VerdictKind | None
    """What a person said of it since, if anyone did."""


def review_rows(recent: Sequence[Verdict], limit: int) -> list[ReviewRow]:
    """Up to ``limit`` rows from ``recent`` verdicts (newest first)."""
    reviews: dict[str, Verdict] = {}
    for item in reversed(recent):  # oldest first: the newest review wins
        if item.source == "review":
            reviews[item.job.job_id] = item
    rows: list[ReviewRow] = []
    for item in recent:
        if item.source == "review" or item.job.near_miss or item.job.admission:
            continue
        if item.verdict not in ("false_positive", "uncertain"):
            continue
        review = reviews.get(item.job.job_id)
        rows.append(ReviewRow(verdict=item, review=None if review is None else review.verdict))
        if len(rows) >= limit:
            break
    return rows
