"""The serving policy: the one place that decides whether a lookup's candidate is served,
would be served (shadow mode), or refused, and why.

In order: an entry embedded by another model is never compared (``embedder``); a candidate
under the threshold in force is a plain miss; an entry older than the request's
``Cache-Control: max-age`` is refused (``stale``); an audit's quarantine (``quarantined``) or
nearest labelled neighbour judged false (``neighbourhood``: ``cache.neighbourhood``) or raised
bar (``entry_bar``; a bar at 1.0 closes the entry, exact repeats included) refuses it, exact
or not; an answer a fallback model gave refuses it unless ``admit_fallbacks``
(``fallback``); a semantic candidate is refused when the embedder does not see all of either
prompt (``unseen``: ``cache.blind_spots``); then each plugged-in ``Check`` may refuse a semantic
(not exact) candidate under its own name (``language``, ``contrast``, and last the learned
``verifier``, whose score the decision carries); a namespace in shadow mode answers from the
upstream what would have been served. Nothing after the policy changes its decision.

A search returns up to ``cache.search_k`` candidates: ``choose`` decides each, most similar
first, and takes the first it would serve, so a refused entry does not hide a second-best one
that serves; the refused ones it passed are kept (``PassedOver``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from cache.embedder import Embedder
from cache.neighbourhood import nearest_is_false
from cache.observe import NULL_OBSERVER, Observer
from cache.schema import CacheKey, Candidate, Outcome, PassedOver, Refusal
from cache.settings import CacheSettings


class Assessment(BaseModel):
    """A check's word on one candidate, with the score behind it when a model gave one."""

    model_config = ConfigDict(frozen=True)

    refused: bool
    """The candidate must not be served."""
    score: float | None = None
    """The model's score (0-1) when one scored the pair (the verifier)."""
    scorer: str = ""
    """Fingerprint of the model asked ("" for rules): kept with the decision and the audit."""


AGREE = Assessment(refused=False)
REFUSE = Assessment(refused=True)


class Check(ABC):
    """A rule that may refuse a semantic candidate (the language check, the contrast guard,
    the learned verifier). Cheap enough for the hit path: it runs on every would-be semantic
    hit. A rule says yes or no (``refuses``); a model also says how sure (``assess``)."""

    name: str
    """The refusal reason it reports (``x-vetcache-refused``, ``vetcache_refused_total``)."""
    observer: Observer = NULL_OBSERVER
    """Where it reports what it spends (set by the policy when it opens)."""

    async def open(self) -> None:  # noqa: B027 (most checks have nothing to load)
        """Load what the check needs before the first request (a model, a table)."""

    async def close(self) -> None:  # noqa: B027 (most checks hold nothing)
        """Release what ``open`` took (threads)."""

    @abstractmethod
    async def refuses(self, cached_prompt: str, new_prompt: str, similarity: float) -> bool:
        """Whether the answer cached for ``cached_prompt`` must not serve ``new_prompt``."""

    async def assess(self, cached_prompt: str, new_prompt: str, similarity: float) -> Assessment:
        """``refuses`` with the score behind it (none, for a rule)."""
        return REFUSE if await self.refuses(cached_prompt, new_prompt, similarity) else AGREE


class Decision(BaseModel):
    """The policy's word on one candidate."""

    model_config = ConfigDict(frozen=True)

    outcome: Literal[Outcome.HIT, Outcome.MISS]
    """Serve the candidate, or ask the upstream."""
    shadow: bool = False
    """Shadow mode: it would have been served."""
    refused: str | None = None
    """Why it is not served although it cleared the threshold (or was another model's)."""
    verifier: str = ""
    """Fingerprint of the verifier that scored the candidate ("" when none did)."""
    verifier_score: float | None = None
    """The verifier's score (0-1); None when it did not score (not in its band, timed out)."""


MISS = Decision(outcome=Outcome.MISS)


class Choice(BaseModel):
    """The policy's word on a lookup's candidates (``ServingPolicy.choose``)."""

    model_config = ConfigDict(frozen=True)

    candidate: Candidate | None
    """The candidate served or would-be served; on a miss, the nearest (if any)."""
    decision: Decision
    """The decision on ``candidate``."""
    passed_over: tuple[PassedOver, ...] = ()
    """Refused candidates more similar than ``candidate``'s, most similar first."""


class ServingPolicy:
    """Served, would-serve or refused-with-reason, for one lookup's candidate."""

    def __init__(
        self, settings: CacheSettings, embedder: Embedder, checks: Sequence[Check] = ()
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.checks = tuple(checks)

    async def open(self, observer: Observer = NULL_OBSERVER) -> None:
        """Open every check (at start, before the first request), reporting to ``observer``."""
        for check in self.checks:
            check.observer = observer
            await check.open()

    async def close(self) -> None:
        for check in self.checks:
            await check.close()

    async def choose(
        self,
        key: CacheKey,
        candidates: Sequence[Candidate],
        threshold: float,
        earlier: Choice | None = None,
        fresh_since: float | None = None,
    ) -> Choice:
        """The most similar of ``candidates`` (most similar first) the policy would serve, or
        would serve in shadow mode; else a miss on the nearest, refused for the nearest's
        reason. Candidates under the threshold end the search: the rest are further still.
        ``earlier``: the choice among the first of them, whose refusals stand (a check is not
        asked twice about one candidate). ``fresh_since``: entries admitted before this unix
        time are stale (``Cache-Control: max-age``)."""
        before = {p.candidate.entry.id: p for p in earlier.passed_over} if earlier else {}
        passed: list[PassedOver] = []
        nearest = MISS
        for candidate in candidates:
            refused = before.get(candidate.entry.id)
            if refused is None:
                decision = await self.decide(key, candidate, threshold, fresh_since)
            elif earlier is not None and refused is earlier.passed_over[0]:
                decision = earlier.decision  # the nearest's, with its score
            else:
                decision = Decision(outcome=Outcome.MISS, refused=refused.reason)
            if decision.refused is None:
                if decision.outcome == Outcome.HIT or decision.shadow:
                    return Choice(candidate=candidate, decision=decision, passed_over=tuple(passed))
                break
            if not passed:
                nearest = decision  # the miss reports the nearest's refusal and its score
            passed.append(refused or PassedOver(candidate=candidate, reason=decision.refused))
        return Choice(
            candidate=candidates[0] if candidates else None,
            decision=nearest,
            passed_over=tuple(passed),
        )

    async def decide(
        self,
        key: CacheKey,
        candidate: Candidate | None,
        threshold: float,
        fresh_since: float | None = None,
    ) -> Decision:
        """The decision for one ``candidate`` of ``key``'s lookup (None: there was none);
        an entry admitted before ``fresh_since`` (unix time) is stale."""
        if candidate is None:
            return MISS
        entry = candidate.entry
        if entry.embedder != key.embedder:
            return Decision(outcome=Outcome.MISS, refused=Refusal.EMBEDDER)
        if candidate.similarity < threshold:
            return MISS
        if fresh_since is not None and entry.created_at < fresh_since:
            return Decision(outcome=Outcome.MISS, refused=Refusal.STALE)
        audited = (
            self._audited(candidate) or self._fallback(candidate) or self._unseen(key, candidate)
        )
        if audited is not None:
            return Decision(outcome=Outcome.MISS, refused=audited)
        refused, scored = await self._checked(key, candidate)
        shadow = refused is None and self.settings.is_shadow(key.namespace)
        return Decision(
            outcome=Outcome.HIT if refused is None and not shadow else Outcome.MISS,
            shadow=shadow,
            refused=refused,
            verifier=scored.scorer,
            verifier_score=scored.score,
        )

    @staticmethod
    def _audited(candidate: Candidate) -> Refusal | None:
        """What audits did to the entry: quarantined it, labelled a false hit whose prompt is
        the request's nearest labelled neighbour, or raised its own bar (set only by false
        labels that kept no vector: ``audit.actions``)."""
        entry = candidate.entry
        if entry.quarantined:
            return Refusal.QUARANTINED
        if entry.labelled and nearest_is_false(candidate.similarity, candidate.neighbours):
            return Refusal.NEIGHBOURHOOD
        bar = entry.min_similarity
        # A bar at 1.0 was raised by a false hit at (or within the margin of) 1.0: no
        # similarity clears it, an exact repeat's 1.0 included (audit.actions caps bars at 1.0).
        if bar is not None and (candidate.similarity < bar or bar >= 1.0):
            return Refusal.ENTRY_BAR
        return None

    def _fallback(self, candidate: Candidate) -> Refusal | None:
        """An answer another alias gave, served only when ``admit_fallbacks``."""
        entry = candidate.entry
        if entry.answered_by in (None, entry.model) or self.settings.admit_fallbacks:
            return None
        return Refusal.FALLBACK

    def _unseen(self, key: CacheKey, candidate: Candidate) -> Refusal | None:
        """A semantic candidate whose similarity does not compare the prompts whole."""
        if candidate.exact:
            return None
        if self.embedder.unseen(key.text) or self.embedder.unseen(candidate.entry.text):
            return Refusal.UNSEEN
        return None

    async def _checked(self, key: CacheKey, candidate: Candidate) -> tuple[str | None, Assessment]:
        """The first check that refuses a semantic candidate (an exact repeat asks the very
        same thing: no check applies), and the last assessment a model scored."""
        scored = AGREE
        if candidate.exact:
            return None, scored
        for check in self.checks:
            assessment = await check.assess(candidate.entry.text, key.text, candidate.similarity)
            if assessment.scorer:
                scored = assessment
            if assessment.refused:
                return check.name, scored
        return None, scored
