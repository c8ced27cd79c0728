"""The judge interface."""

from __future__ import annotations

from abc import ABC, abstractmethod

from audit.schema import AuditJob, Judgement, VerdictKind

# Score cut-offs shared by judges that produce a score: at or above SERVES the cached answer
# serves the new prompt; below FAILS it does not; in between the judge is unsure.
SERVES = 0.7
FAILS = 0.3


def verdict_for(score: float) -> VerdictKind:
    """The verdict a 0-1 serve score stands for."""
    if score >= SERVES:
        return "correct"
    if score < FAILS:
        return "false_positive"
    return "uncertain"


class Judge(ABC):
    """Decides whether a cached answer serves a new prompt."""

    name: str
    """Name and version, stored on every verdict."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what the judge holds (HTTP clients)."""

    @abstractmethod
    async def judge(self, job: AuditJob) -> Judgement:
        """A judgement for ``job``. Failures are ``error`` judgements, never exceptions."""
