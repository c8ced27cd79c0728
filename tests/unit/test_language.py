"""Languages: detection on short prompts, the check that keeps semantic hits to the languages
the embedder reads, and the FP-rate cohorts with bounded metric labels."""

from __future__ import annotations

import math
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from audit.schema import AuditJob, Verdict
from audit.stats import cohort, fp_breakdown
from cache import CacheEntry, CacheKey, Candidate, Outcome
from cache.checks import default_checks
from cache.embedder import HashEmbedder
from cache.language import LABELS, LANGUAGES, OTHER, UNDETERMINED, detect, label
from cache.language_check import LanguageCheck
from cache.policy import ServingPolicy
from cache.semantic import SemanticCache
from cache.settings import CacheSettings
from cache.stores.memory import MemoryStore
from proxy.metrics import Metrics

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "languages.tsv"
ROWS = [line.split("\t", 1) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line]
ENGLISH = [
    "How do I reset my password?",
    "Convert 100 USD to GBP",
    "Can I get the NHS flu jab for free?",
    "How do I install Python on macOS?",
    "What is the capital of Australia?",
    "Summarize this document in three sentences.",
    "Explain recursion",  # too few words to tell: undetermined, never refused
    "ok",
    "2+2?",
]
EMBEDDER = HashEmbedder()


@pytest.mark.parametrize(("language", "text"), ROWS)
def test_short_prompts_in_other_languages_are_detected(language: str, text: str) -> None:
    assert detect(text) == language


@pytest.mark.parametrize("text", ENGLISH)
def test_english_prompts_are_never_read_as_another_language(text: str) -> None:
    """Read as anything but English, an English prompt would lose its semantic hits."""
    assert detect(text) in ("en", UNDETERMINED)


def test_metric_labels_are_a_small_fixed_set() -> None:
    assert {label(code) for code in LANGUAGES} == LABELS | {OTHER}
    assert label(UNDETERMINED) == UNDETERMINED
    assert len(LABELS) <= 12


def key(text: str) -> CacheKey:
    return CacheKey(
        base="b",
        prompt="p",
        embedder=EMBEDDER.fingerprint,
        scope="s",
        exact="x2",
        text=text,
        tenant="t",
        namespace="ns",
        model="m",
    )


def candidate(text: str, similarity: float, *, exact: bool = False) -> Candidate:
    entry = CacheEntry(
        id="e1", scope="s", exact="x1", namespace="ns", tenant="t", model="m", text=text,
        response="{}", embedder=EMBEDDER.fingerprint, created_at=time.time(),
    )  # fmt: skip
    return Candidate(entry=entry, similarity=similarity, exact=exact)


ENGLISH_CACHED = "How do I cancel my subscription?"
FRENCH = "Comment annuler mon abonnement ?"


async def test_a_prompt_in_a_language_the_embedder_does_not_read_is_refused_semantically() -> None:
    policy = ServingPolicy(CacheSettings(), EMBEDDER, default_checks(CacheSettings()))
    for cached, new in ((ENGLISH_CACHED, FRENCH), (FRENCH, ENGLISH_CACHED)):
        decision = await policy.decide(key(new), candidate(cached, 0.97), 0.9)
        assert (decision.outcome, decision.refused) == (Outcome.MISS, "language")
    exact = await policy.decide(key(FRENCH), candidate(FRENCH, 1.0, exact=True), 0.9)
    assert (exact.outcome, exact.refused) == (Outcome.HIT, None)
    english = await policy.decide(key("How can I cancel my subscription?"),
                                  candidate(ENGLISH_CACHED, 0.97), 0.9)  # fmt: skip
    assert (english.outcome, english.refused) == (Outcome.HIT, None)


async def test_the_languages_are_a_setting_and_empty_means_all() -> None:
    assert any(isinstance(c, LanguageCheck) for c in default_checks(CacheSettings()))
    assert default_checks(CacheSettings(embedder_languages=())) == []
    french = ServingPolicy(CacheSettings(), EMBEDDER, [LanguageCheck(["en", "fr"])])
    decision = await french.decide(key(FRENCH), candidate("Comment résilier mon abonnement ?",
                                                          0.97), 0.9)  # fmt: skip
    assert decision.outcome == Outcome.HIT
    with pytest.raises(ValidationError, match="unknown language codes"):
        CacheSettings(embedder_languages=("english",))


ANSWER = {"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}


async def test_the_cache_builds_the_check_by_default_and_loads_it_at_open() -> None:
    cache = SemanticCache(CacheSettings(threshold=-1.0), MemoryStore(), HashEmbedder())
    await cache.open()
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": ENGLISH_CACHED}]}
    await cache.admit(cache.key(body, "t", "ns"), None, ANSWER)
    body["messages"][0]["content"] = FRENCH
    lookup = await cache.lookup(cache.key(body, "t", "ns"), -1.0)
    assert (lookup.outcome, lookup.refused) == (Outcome.MISS, "language")
    await cache.close()


def verdict(new_prompt: str, similarity: float, kind: str = "correct", **job: Any) -> Verdict:
    the_job = AuditJob(
        job_id=uuid.uuid4().hex, request_id="r", entry_id="e", new_prompt=new_prompt,
        cached_prompt="c", cached_answer="a", similarity=similarity, threshold=0.9,
        namespace=job.pop("namespace", "ns"), model="m", scope="s", **job,
    )  # fmt: skip
    return Verdict(id=the_job.job_id, job=the_job, verdict=kind, judge="llm/1:openai/gpt-4o",
                   created_at=time.time())  # fmt: skip


def test_a_verdicts_cohorts_name_its_language_and_judge_kind() -> None:
    found = cohort(verdict(FRENCH, 0.93))
    assert found["language"] == "fr" and found["judge"] == "llm"
    assert found["similarity"] == "0.90-0.95" and found["length"] == "short"
    assert cohort(verdict("Hvordan nulstiller jeg min adgangskode?", 0.93))["language"] == OTHER


def scrape(registry: CollectorRegistry) -> dict[tuple[str, ...], float]:
    return {
        (s.name, *s.labels.values()): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name.startswith(("vetcache_cohort_", "vetcache_shadow_false"))
    }


def test_cohort_gauges_stay_bounded_and_go_nan_when_their_labels_leave() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.namespace("ns", "t")
    texts = [text for _, text in ROWS] + [f"Question number {i} about a thing" * (i % 9 + 1)
                                          for i in range(200)]  # fmt: skip
    verdicts = [
        verdict(text, i / len(texts), "false_positive" if i % 3 else "correct", shadow=i % 5 == 0)
        for i, text in enumerate(texts)
    ]
    metrics.cohorts.set(fp_breakdown(verdicts, 3600))
    first = scrape(registry)
    languages = {k[2] for k in first if k[1] == "language"}
    assert "fr" in languages and languages <= LABELS | {OTHER, UNDETERMINED}
    assert {k[2] for k in first if k[1] == "length"} <= {"short", "medium", "long"}
    assert len({k[2] for k in first if k[1] == "similarity"}) <= 21
    assert first[("vetcache_shadow_false_positive_labelled", "ns")] > 0
    assert len(first) <= 3 * (14 + 3 + 21 + 6 + 1) + 2
    # Every French verdict leaves the window: its rate is NaN with 0 labels, not the last value.
    metrics.cohorts.set(fp_breakdown([v for v in verdicts if detect(v.job.new_prompt) != "fr"],
                                     3600))  # fmt: skip
    after = scrape(registry)
    assert math.isnan(after[("vetcache_cohort_false_positive_rate", "language", "fr")])
    assert after[("vetcache_cohort_false_positive_labelled", "language", "fr")] == 0
