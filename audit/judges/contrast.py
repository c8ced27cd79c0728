"""The ``contrast`` judge: offline rules on top of similarity (see ``cache.contrast``)."""

from __future__ import annotations

from audit.judges.base import Judge
from audit.schema import AuditJob, Judgement
from cache.contrast import contrasts


class ContrastJudge(Judge):
    """False positive when the prompts disagree on negation, numbers, entities or scope;
    otherwise the similarity decides between correct and uncertain. Two identical prompts
    (an exact repeat, an admission audit) have nothing to contrast: ``correct``, whatever
    the rules would say, so an exact repeat is never judged wrong against itself."""

    name = "contrast/2"
    # 2: prompts never contrast with themselves, numbers on word boundaries, fewer false
    # vetoes (issue 18); verdicts of version 1 stay told apart in the ledger.

    def __init__(self, confident_similarity: float = 0.85) -> None:
        self.confident_similarity = confident_similarity

    async def judge(self, job: AuditJob) -> Judgement:
        return self.decide(job.cached_prompt, job.new_prompt, job.similarity)

    def decide(self, cached_prompt: str, new_prompt: str, similarity: float) -> Judgement:
        """The judgement for a prompt pair (synchronous: usable on the request path)."""
        if cached_prompt == new_prompt:
            return Judgement(
                verdict="correct", score=1.0, reason="the same prompt", judge=self.name
            )
        found = contrasts(cached_prompt, new_prompt)
        if found:
            reason = "; ".join(f"{c.check}: {c.evidence}" for c in found)
            return Judgement(verdict="false_positive", score=0.05, reason=reason, judge=self.name)
        score = max(0.0, min(1.0, similarity))
        if similarity >= self.confident_similarity:
            return Judgement(
                verdict="correct", score=score, reason="no contrast found", judge=self.name
            )
        return Judgement(
            verdict="uncertain",
            score=score,
            reason="no contrast found, similarity low",
            judge=self.name,
        )
