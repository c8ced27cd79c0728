"""What a training pair is: two prompts, a label, the family it belongs to, its cohorts and
where its label came from."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict

SourceKind = Literal["file", "ledger", "review", "feedback"]
"""Where a label came from: a pair file, a judge's verdict in the ledger, a person's review,
or an app's feedback."""
Length = Literal["short", "long"]
LONG_WORDS = 40
"""A pair is ``long`` when either prompt has at least this many words."""
COHORT_FIELDS = ("product", "kind", "language", "length", "source")
"""The cohorts every pair has, in report order."""


class Provenance(BaseModel):
    """Where a pair's label came from."""

    model_config = ConfigDict(frozen=True)

    source: SourceKind
    """Kind of source."""
    ref: str
    """``FILE:LINE`` for a file row; the job id (and request id) for a ledger label."""
    judge: str = ""
    """Judge name and version (``review`` / ``feedback`` for outside labels; "" for files)."""
    embedder: str = ""
    """Fingerprint of the embedding model that scored the pair when it was served."""
    verifier: str = ""
    """Fingerprint of the verifier that scored it when it was served ("" when none did)."""
    verifier_score: float | None = None
    """The verifier's score then, when one scored it."""
    time: float = 0.0
    """Unix time of the label (0 for files)."""


class Cohorts(BaseModel):
    """The groups a pair is reported and gated in."""

    model_config = ConfigDict(frozen=True)

    product: str = "all"
    """Product line (a file's ``product`` column; a ledger label's namespace)."""
    kind: str = "all"
    """What differs between the prompts (a file's ``kind`` or category; a ledger label's
    job kind: hit, shadow, near_miss)."""
    language: str = "und"
    """Language code of the new prompt."""
    length: Length = "short"
    """``long`` when either prompt has ``LONG_WORDS`` words or more."""
    source: SourceKind = "file"
    """Kind of source (as ``Provenance.source``)."""

    def value(self, field: str) -> str:
        """The cohort named ``field`` (one of ``COHORT_FIELDS``)."""
        return str(getattr(self, field))


class TrainingPair(BaseModel):
    """(cached prompt, new prompt) and whether the cached answer serves the new prompt."""

    model_config = ConfigDict(frozen=True)

    text_a: str
    """The cached prompt."""
    text_b: str
    """The new prompt."""
    label: int
    """1: the answer written for ``text_a`` serves ``text_b``; 0: it does not."""
    family: str
    """Prompt family: pairs of one family never land in two splits."""
    cohorts: Cohorts
    """Its cohorts."""
    provenance: Provenance
    """Where its label came from."""


_SPACE = re.compile(r"\s+")
_EDGE_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$")


def normalize(text: str) -> str:
    """A prompt reduced for family matching: lower case, single spaces, no edge
    punctuation (``Reset my password?`` and ``reset my password`` are one text)."""
    return _EDGE_PUNCTUATION.sub("", _SPACE.sub(" ", text.casefold()).strip())


def length_of(text_a: str, text_b: str) -> Length:
    """``long`` when either prompt has ``LONG_WORDS`` or more words."""
    return "long" if max(len(text_a.split()), len(text_b.split())) >= LONG_WORDS else "short"
