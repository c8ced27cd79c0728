"""Autopilot: move a namespace's threshold, within bounds, to keep false positives under a
target. Opt-in per namespace (``audit.autopilot.namespaces``).

Every ``interval_s`` one gateway (the holder of a short lock in the ledger, so replicas do
not fight) looks, per namespace, at the labels that arrived since its last move there (and
within ``audit.window_s``):
- with fewer than ``min_new_verdicts``, it waits;
- if their FP rate at the current threshold is over the target, it raises the threshold
  by at most ``max_step`` (towards the lowest threshold that meets the target, if one does);
- if instead the FP upper bound one small step lower (``max_step / 4``) is under the
  target, and at least ``min_band_labels`` labels lie in the band that step opens
  ([new, current)), it lowers the threshold by that small step: down slowly, up fast,
  and never down where there is no evidence;
- it never leaves [``min_threshold``, ``max_threshold``].
Each move is logged (namespace, old -> new, why, from how many labels) and counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel

from audit.errors import LedgerError
from audit.ledgers.base import Ledger
from audit.settings import AuditSettings, AutopilotSettings
from audit.tune import TuneReport, TuneRow, labels_from_verdicts, tune
from cache.errors import StoreError
from cache.periodic import Periodic
from cache.semantic import SemanticCache

log = logging.getLogger("vetcache.autopilot")

Direction = Literal["up", "down"]


class Move(BaseModel):
    """One decision to move a threshold."""

    namespace: str
    old: float
    new: float
    direction: Direction
    reason: str
    labels: int
    labels_in_band: int = 0
    """Labels between the old and the new threshold."""


def decide(
    namespace: str, current: float, report: TuneReport, settings: AutopilotSettings
) -> Move | None:
    """The move, if any, that ``report`` (built from the labels since the last move)
    calls for at threshold ``current``."""
    if report.labels < settings.min_new_verdicts:
        return None
    rows = {round(r.threshold, 4): r for r in report.rows}
    here = rows.get(round(current, 4))
    if here is not None and here.fp_rate is not None and here.fp_rate > settings.target_fp:
        goal = report.recommended if report.recommended is not None else settings.max_threshold
        new = min(current + settings.max_step, max(goal, current), settings.max_threshold)
        if new > current:
            why = f"FP rate {here.fp_rate:.3f} at {current:.3f} is over {settings.target_fp:g}"
            above = rows.get(round(new, 4))
            in_band = here.labels - (above.labels if above is not None else 0)
            return Move(namespace=namespace, old=current, new=round(new, 4), direction="up",
                        reason=why, labels=report.labels, labels_in_band=in_band)  # fmt: skip
        return None
    return _down(namespace, current, report, settings, here)


def _down(
    namespace: str,
    current: float,
    report: TuneReport,
    settings: AutopilotSettings,
    here: TuneRow | None,
) -> Move | None:
    """One small step down, if the labels in the band it opens allow it."""
    down = round(max(settings.min_threshold, current - settings.max_step / 4), 4)
    below = next((r for r in report.rows if abs(r.threshold - down) < 1e-9), None)
    if down >= current or below is None or not below.labels:
        return None
    in_band = below.labels - (here.labels if here is not None else 0)
    if below.fp_upper >= settings.target_fp or in_band < settings.min_band_labels:
        return None
    why = (
        f"FP upper bound {below.fp_upper:.3f} at {down:.3f} is under {settings.target_fp:g}, "
        f"{in_band} labels in [{down:.3f}, {current:.3f})"
    )
    return Move(namespace=namespace, old=current, new=down, direction="down", reason=why,
                labels=report.labels, labels_in_band=in_band)  # fmt: skip


class Autopilot:
    """The controller loop of one gateway."""

    def __init__(
        self,
        settings: AutopilotSettings,
        audit: AuditSettings,
        ledger: Ledger,
        cache: SemanticCache,
        owner: str,
        on_move: Callable[[Move], None] = lambda move: None,
    ) -> None:
        self.settings = settings
        self.audit = audit
        self.ledger = ledger
        self.cache = cache
        self.owner = owner
        self.on_move = on_move
        self._since: dict[str, float] = {}
        self._loop = Periodic("vetcache-autopilot", self._round, settings.interval_s)

    async def step(self, now: float | None = None) -> list[Move]:
        """Look once at every autopilot namespace; apply and return the moves."""
        now = time.time() if now is None else now
        moves = []
        for namespace in sorted(self.settings.namespaces):
            # Labels since the last move here, and at most one FP window old (so a namespace
            # that never moves does not re-read its whole history every round).
            since = max(self._since.get(namespace, 0.0), now - self.audit.window_s)
            verdicts = await self.ledger.query(namespace=namespace, since=since, limit=None)
            current = self.cache.threshold(namespace)
            labels = labels_from_verdicts(verdicts, self.audit, namespace)
            thresholds = sorted({round(current, 4), *self._grid(current)})
            report = tune(labels, {}, self.settings.target_fp, namespace=namespace,
                          thresholds=thresholds, current=current,
                          min_band_labels=self.settings.min_band_labels)  # fmt: skip
            move = decide(namespace, current, report, self.settings)
            if move is None:
                continue
            await self.cache.set_threshold(namespace, move.new)
            self._since[namespace] = now
            log.info(
                "autopilot: namespace %s threshold %.4f -> %.4f (%s; %d labels, %d in the band)",
                namespace, move.old, move.new, move.reason, move.labels, move.labels_in_band,
            )  # fmt: skip
            self.on_move(move)
            moves.append(move)
        return moves

    def _grid(self, current: float) -> list[float]:
        """Thresholds worth scoring: one small step down, and up to one step up."""
        small = self.settings.max_step / 4
        steps = int(self.settings.max_step / 0.005)
        ups = [round(current + i * 0.005, 4) for i in range(1, steps + 1)]
        return [round(current - small, 4), *ups]

    def start(self) -> None:
        self._loop.start()

    async def _round(self) -> None:
        """One round, if this gateway leads (the lock outlives three rounds)."""
        ttl = max(1, int(self.settings.interval_s * 3))
        try:
            if await self.ledger.lead("autopilot", self.owner, ttl):
                await self.step()
        except (LedgerError, StoreError) as exc:
            log.warning("autopilot: skipped a round: %s", type(exc).__name__)

    async def stop(self) -> None:
        await self._loop.stop()
