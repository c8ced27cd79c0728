"""Embedding versions: which one serves a namespace, which one it migrates to, and how far.

A version of the embedding model is its fingerprint (``Embedder.fingerprint``). Each version
has scopes of its own (``cache.keys.versioned_key``), so a vector of one version is never
compared with another's. A namespace without a ``VersionState`` serves the primary embedder.
The store keeps the states (``Store.versions``, changed only by compare-and-set) and each
migration's progress (``MigrationProgress``, ``cache.migration``).
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field

from cache.keys import versioned_key
from cache.schema import CacheEntry


def version_id(fingerprint: str) -> str:
    """A short id of a version for key names: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:12]


class VersionState(BaseModel):
    """Which embedding version serves a namespace, and which it is migrating to."""

    model_config = ConfigDict(frozen=True)

    serving: str
    """Fingerprint of the version that serves the namespace."""
    target: str | None = None
    """Fingerprint of the version being migrated to (its copies are built, it runs in
    shadow); None when no migration runs."""
    previous: str | None = None
    """Fingerprint served before the last cutover (the rollback target)."""
    previous_until: float | None = None
    """Unix time the previous version's entries are kept until."""
    changed_at: float
    """Unix time of the last change."""
    gate_passed: bool | None = None
    """The margin gate's verdict on ``target`` (``vetcache rollout gate``); None: not run."""
    gate_summary: str = ""
    """What the gate measured, one line."""


class MigrationProgress(BaseModel):
    """How far the migration of a namespace from ``source`` to ``target`` has come; saved
    after each batch, so a run that died resumes from ``cursor``."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    """The namespace migrated."""
    source: str
    """Fingerprint of the version whose entries are copied."""
    target: str
    """Fingerprint of the version the copies are made for."""
    cursor: str = ""
    """Where the walk of the source's live entries continues (``Store.live_entries``); ""
    before the first batch, and once done."""
    copied: int = Field(default=0, ge=0)
    """Copies written (a copy that already existed, from a run that died, is not counted)."""
    skipped: int = Field(default=0, ge=0)
    """Entries that cannot be copied: admitted before versions (no ``base``/``prompt``)."""
    failed: int = Field(default=0, ge=0)
    """Entries whose prompt the target embedder could not embed."""
    done: bool = False
    """Every live entry of the source has been visited."""
    started_at: float
    """Unix time the migration started."""
    updated_at: float
    """Unix time of the last saved batch."""


def copy_id(entry_id: str, target: str) -> str:
    """The id of entry ``entry_id``'s copy under the version ``target`` (``copy_of``)."""
    return hashlib.sha256(f"{entry_id}\0{target}".encode()).hexdigest()[:32]


def copy_of(entry: CacheEntry, target: str) -> CacheEntry:
    """``entry`` as an entry of the version ``target``: its own scope and exact key
    (``cache.keys.versioned_key`` of the entry's ``base`` and ``prompt``), an id that
    follows from the entry's and the target's (a resumed migration, or an admission written
    under both versions, writes it once), ``origin`` naming the entry. The answer, guards
    and times are the entry's; its labels are not (their vectors are the other version's),
    nor is it pending (only released entries are copied)."""
    scope, exact = versioned_key(entry.base, entry.prompt, target)
    return entry.model_copy(
        update={
            "id": copy_id(entry.id, target),
            "scope": scope,
            "exact": exact,
            "embedder": target,
            "origin": entry.id,
            "labelled": False,
            "pending": False,
        }
    )
