"""An entry's labelled neighbourhood: the prompts audits judged against it, kept with their
vectors, so a new candidate is decided by its nearest labelled neighbour instead of by one
bar per entry.

A similarity to the entry alone has no direction: a paraphrase at 0.928 and a trap at 0.94
look alike. So a label keeps the request's vector, and a new request is compared to each
label. The entry's own prompt counts as a correct label at the candidate's similarity; the
new request is refused (``neighbourhood``) when its nearest labelled neighbour is false (a
tie goes to false). A label without a vector stands for the entry's own prompt (a false
exact repeat): it ties with the entry itself, so it closes the entry, as a bar at 1.0 did.

Vectors travel (audit jobs) and are kept (stores) as base64 of float16: half the bytes of
float32, and cosine stays within ~1e-3 of float32's on unit vectors.
"""

from __future__ import annotations

import base64

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from cache.embedder import Vector

LABELS_KEPT = 16
"""Labels kept per entry; over it the oldest correct one goes first (the false ones are
what guard the entry)."""


class Label(BaseModel):
    """One verdict on a prompt served (or served in shadow) from an entry."""

    model_config = ConfigDict(frozen=True)

    id: str
    """The audit job's id: a later label of the same job replaces it."""
    correct: bool
    """The verdict: the entry's answer was right for that prompt (else a false hit)."""
    similarity: float = Field(ge=-1.0, le=1.0)
    """The prompt's similarity to the entry."""
    vector: str | None = None
    """The prompt's vector (``pack``); None for the entry's own prompt (an exact repeat)."""
    created_at: float = 0.0
    """Unix time of the verdict."""


def pack(vector: Vector) -> str:
    """A vector as base64 of float16."""
    return base64.b64encode(np.asarray(vector, dtype=np.float16).tobytes()).decode("ascii")


def unpack(packed: str) -> Vector:
    """``pack`` read back, L2-normalized float32 (float16 rounding undone)."""
    vector = np.frombuffer(base64.b64decode(packed), dtype=np.float16).astype(np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm else vector


def trim(labels: dict[str, Label]) -> None:
    """Drop labels over ``LABELS_KEPT``: the oldest correct one first, then the oldest."""
    while len(labels) > LABELS_KEPT:
        pool = [x for x in labels.values() if x.correct] or list(labels.values())
        del labels[min(pool, key=lambda x: x.created_at).id]


def neighbours(
    labels: list[Label], request: Vector | None, similarity: float
) -> tuple[tuple[float, bool], ...]:
    """(similarity of the request to the label, correct) for each label. ``request`` None:
    an exact repeat, whose vector is the entry's, so its similarity to a label is the
    label's own to the entry. ``similarity``: the request's to the entry."""
    found = []
    for label in labels:
        if label.vector is None:
            near = similarity
        elif request is None:
            near = label.similarity
        else:
            near = float(np.dot(unpack(label.vector), request))
        found.append((near, label.correct))
    return tuple(found)


def nearest_is_false(similarity: float, found: tuple[tuple[float, bool], ...]) -> bool:
    """Whether the nearest labelled neighbour is false, the entry itself counting as a
    correct one at ``similarity`` (a tie goes to false)."""
    nearest = max([(similarity, True), *found], key=lambda x: (x[0], not x[1]))
    return not nearest[1]
