"""Invalidation: the entries an operator deletes, and the one log line each deletion writes.

An ``Invalidation`` names entries by id, by namespace, tenant, model alias and creation time,
or all of them (only when asked for in so many words: an empty filter is refused, so a
typo never deletes a cache). The conditions given must all hold. An entry id also names the
entry's copies under other embedding versions (``CacheEntry.origin``), so a migration in
progress cannot bring it back at cutover; the id of a copy (what a namespace serves after a
cutover) names the entry it was copied from and so all of them, so a rollback cannot either.

Deletion happens in the store, with the entry's exact pointer, labels and askers, and its
place in its tenant's count; on Redis every replica reads that store and keeps no entry of
its own (a lookup reads Redis each time), so every replica stops serving the entries at once.
A request whose lookup finished before the deletion is still answered from what it read,
and an entry admitted while the deletion runs may stay. The in-process store belongs to its
one process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from cache.errors import CacheError
from cache.keys import NAMESPACE_PATTERN
from cache.stores.base import Store

log = logging.getLogger("vetcache.invalidation")

ENTRY_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
"""What an entry id is (a hex uuid, or a copy's hex digest); anything else is refused."""
MATCHED_FIELDS = ("id", "origin", "namespace", "tenant", "model", "created_at")
"""The entry fields ``Invalidation.matches`` reads."""


class Invalidation(BaseModel):
    """Which entries to delete (``POST /admin/invalidate``, ``vetcache invalidate``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    entry: str | None = Field(default=None, pattern=ENTRY_ID_PATTERN)
    """An entry id (``x-vetcache-entry``): that entry and its copies under other embedding
    versions."""
    namespace: str | None = Field(default=None, pattern=f"^{NAMESPACE_PATTERN}$")
    """Entries of this namespace."""
    tenant: str | None = Field(default=None, min_length=1, max_length=256)
    """Entries this tenant's requests produced."""
    model: str | None = Field(default=None, min_length=1, max_length=256)
    """Entries of this model alias (the alias asked for)."""
    created_before: AwareDatetime | None = None
    """Entries admitted before this time: ISO 8601 with a zone, or unix seconds."""
    everything: bool = Field(default=False, alias="all", strict=True)
    """Every entry (``"all": true``, a JSON boolean: ``"yes"`` or 1 is refused); excludes
    the other conditions."""

    @model_validator(mode="after")
    def _says_which(self) -> Invalidation:
        named = self._named()
        if self.everything and named:
            raise ValueError("'all' deletes every entry: send it without other conditions")
        if not self.everything and not named:
            raise ValueError(
                "an empty filter is refused: name entry, namespace, tenant, model or "
                "created_before, or send all: true to delete every entry"
            )
        return self

    def conditions(self) -> dict[str, Any]:
        """The conditions given, as the log line and the answers show them."""
        return {"all": True} if self.everything else self._named()

    def _named(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"everything"}, exclude_none=True)

    def matches(self, fields: Mapping[str, Any]) -> bool:
        """Whether the entry with these ``MATCHED_FIELDS`` values (``origin`` may be absent
        or empty) is one to delete."""
        if self.entry is not None and self.entry not in (fields["id"], fields.get("origin")):
            return False
        for name in ("namespace", "tenant", "model"):
            wanted = getattr(self, name)
            if wanted is not None and fields[name] != wanted:
                return False
        before = self.created_before
        return before is None or float(fields["created_at"]) < before.timestamp()


async def invalidate(store: Store, which: Invalidation, by: str) -> int:
    """Delete the entries ``which`` names from ``store`` and log it as done by ``by`` (one
    INFO line: who, the conditions, how many; never an entry's text). How many were
    deleted; ``StoreError`` when the store failed (logged as a warning, then raised)."""
    conditions = which.conditions()
    fields: dict[str, Any] = {"by": by, "invalidation": conditions}
    started = time.perf_counter()
    try:
        deleted = await store.invalidate(which)
    except CacheError as exc:
        log.warning(
            "invalidation by %s failed: %s (%s)", by, type(exc).__name__, _shown(conditions),
            extra={**fields, "error": type(exc).__name__},
        )  # fmt: skip
        raise
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    log.info(
        "invalidated %d entries by %s (%s) in %.1fms", deleted, by, _shown(conditions),
        duration_ms, extra={**fields, "deleted": deleted, "duration_ms": duration_ms},
    )  # fmt: skip
    return deleted


def _shown(conditions: Mapping[str, Any]) -> str:
    return " ".join(f"{name}={value}" for name, value in conditions.items())
