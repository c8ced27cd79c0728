"""Migration: rebuild a namespace's live entries of one embedding version in another's scopes.

``Migrator.run`` walks the source version's live entries (``Store.live_entries``), re-embeds
each cached prompt (``entry.text``) with the target embedder, and writes a copy in the target
version's scope (``cache.keys.versioned_key`` from the entry's ``base`` and ``prompt``): the
same answer (never asked again), guards (bar, quarantine), expiry; not its labels (they are
similarities under the source's vectors). The copy's id is derived from the entry's and the
target's, and ``Store.put_copy`` does not overwrite, so a run killed mid-way and started
again copies nothing twice. Progress (cursor and counts) is saved after each batch; a run
resumes from the saved cursor. An entry whose prompt the target cannot embed is counted
``failed`` and passed; a group of which none embeds stops the run (the embedder is down; a
rerun retries from the last saved page). Entries admitted before versions (no ``base``/``prompt``)
cannot be placed under another version: skipped and counted.

The target embedder is the one the gateway serves lookups with (a shared CPU), so the walk
is paced by a token bucket in entries per second, fed in small groups: the embedding
thread takes lookups first (``cache.embed_queue``), but a group it is running delays them.
``DEFAULT_RATE_PER_S`` is measured in ``tests/bench/migration.py`` (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from cache.embedder import Embedder
from cache.errors import EmbedderError
from cache.schema import CacheEntry
from cache.stores.base import Store
from cache.versions import MigrationProgress, copy_of

DEFAULT_RATE_PER_S = 25.0
"""Entries re-embedded per second by default (``tests/bench/migration.py``)."""
DEFAULT_BATCH = 64
"""Entries per page of the walk, and per saved progress."""
GROUP = 8
"""Texts sent to the embedder at once (the bucket's burst)."""

log = logging.getLogger(__name__)


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up. Hand-written: one worker paces
    itself, ten lines; a limiter library (pyrate-limiter) coordinates many callers."""

    def __init__(
        self,
        rate: float | None,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate, self.burst = rate, burst
        self._clock, self._sleep = clock, sleep
        self._tokens, self._at = float(burst), clock()

    async def take(self, n: int) -> None:
        """Wait until ``n`` tokens are there, and take them (None rate: never wait)."""
        if not self.rate:
            return
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < n:
            await self._sleep((n - self._tokens) / self.rate)
            self._tokens, self._at = float(n), self._clock()
        self._tokens -= n


class Migrator:
    """Copies a namespace's live entries from ``source``'s version to ``target``'s."""

    def __init__(
        self,
        store: Store,
        source: Embedder,
        target: Embedder,
        *,
        rate_per_s: float | None = DEFAULT_RATE_PER_S,
        batch: int = DEFAULT_BATCH,
    ) -> None:
        if source.fingerprint == target.fingerprint:
            raise ValueError("source and target are the same embedding version")
        self.store, self.source, self.target = store, source, target
        self.batch = batch
        self.bucket = TokenBucket(rate_per_s, min(GROUP, batch))

    async def run(self, namespace: str, *, stop_after: int | None = None) -> MigrationProgress:
        """Migrate ``namespace`` (resuming a saved run) until done, or until at least
        ``stop_after`` entries have been visited by this call; the progress saved. When it
        finishes, the shadow comparison restarts (``Store.reset_shadow``): lookups compared
        while the target lacked entries not copied yet say nothing of the whole version."""
        progress = await self._start(namespace)
        finished_before = progress.done
        visited = 0
        while not progress.done and (stop_after is None or visited < stop_after):
            page, cursor = await self.store.live_entries(
                namespace, self.source.fingerprint, progress.cursor, self.batch
            )
            copied, skipped, failed = await self._copy(page)
            progress = progress.model_copy(
                update={
                    "cursor": cursor,
                    "copied": progress.copied + copied,
                    "skipped": progress.skipped + skipped,
                    "failed": progress.failed + failed,
                    "done": cursor == "",
                    "updated_at": time.time(),
                }
            )
            await self.store.set_migration(progress)
            visited += len(page)
        if progress.done and not finished_before:
            await self.store.reset_shadow(namespace, self.target.fingerprint)
        return progress

    async def _start(self, namespace: str) -> MigrationProgress:
        """The saved progress of this migration, or a fresh one."""
        saved = await self.store.migration(namespace, self.target.fingerprint)
        if saved is not None and saved.source == self.source.fingerprint:
            return saved
        now = time.time()
        return MigrationProgress(
            namespace=namespace,
            source=self.source.fingerprint,
            target=self.target.fingerprint,
            started_at=now,
            updated_at=now,
        )

    async def _copy(self, page: list[tuple[CacheEntry, float]]) -> tuple[int, int, int]:
        """Copy one page: (copies written, entries skipped, entries failed)."""
        movable = [(e, expires) for e, expires in page if e.base and e.prompt]
        copied = failed = 0
        target = self.target.fingerprint
        for start in range(0, len(movable), GROUP):
            group = movable[start : start + GROUP]
            await self.bucket.take(len(group))
            vectors = await asyncio.gather(
                *(self.target.embed(e.text) for e, _ in group), return_exceptions=True
            )
            errors = [v for v in vectors if isinstance(v, BaseException)]
            unexpected = [e for e in errors if not isinstance(e, EmbedderError)]
            if unexpected or (errors and len(errors) == len(group)):
                raise (unexpected or errors)[0]  # the embedder is down: stop (see the top)
            for (entry, expires), vector in zip(group, vectors, strict=True):
                if isinstance(vector, BaseException):
                    log.warning(
                        "migration: cannot embed entry %s: %s", entry.id, type(vector).__name__
                    )
                    failed += 1
                elif await self.store.put_copy(copy_of(entry, target), vector, expires):
                    copied += 1
        return copied, len(page) - len(movable), failed
