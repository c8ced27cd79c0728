"""Where a gateway's time goes during a bench cell: the CPU its threads used and the time they
waited for a core (``/proc/PID/task/*/schedstat``: Linux only), and the access log's
per-stage timings of its hits (``timings_ms``: exact_lookup, embed, vector_search, lookup).

    with Split(gateway.pid, log_path) as split:
        ...  # drive requests
    print(split.lines(requests))
"""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType

from tests.bench.race_traffic import pct


def threads(pid: int) -> dict[int, tuple[float, float]]:
    """Seconds on a CPU and seconds waiting for one, per thread of ``pid``."""
    found: dict[int, tuple[float, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            ran, waited, _ = (int(n) for n in (task / "schedstat").read_text().split())
        except (OSError, ValueError):
            continue  # the thread ended, or no schedstat on this kernel
        found[int(task.name)] = (ran / 1e9, waited / 1e9)
    return found


class Split:
    """Thread CPU and access-log stages of ``pid`` between ``__enter__`` and ``__exit__``."""

    def __init__(self, pid: int, log: Path) -> None:
        self.pid, self.log = pid, log
        self.before: dict[int, tuple[float, float]] = {}
        self.after: dict[int, tuple[float, float]] = {}
        self.offset = 0

    def __enter__(self) -> Split:
        self.before, self.offset = threads(self.pid), self.log.stat().st_size
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.after = threads(self.pid)

    def stages(self, outcome: str = "hit") -> dict[str, list[float]]:
        """Per stage, the timings of the requests with ``outcome`` logged in between."""
        with self.log.open("rb") as handle:
            handle.seek(self.offset)
            lines = handle.read().decode(errors="replace").splitlines()
        found: dict[str, list[float]] = {}
        for line in lines:
            if not line.startswith("{"):
                continue
            record = json.loads(line)
            if record.get("outcome") == outcome:
                for stage, ms in (record.get("timings_ms") or {}).items():
                    found.setdefault(stage, []).append(ms)
        return found

    def lines(self, requests: int) -> list[str]:
        """What to print: per thread (the event loop's is the process's own id), CPU and
        run-queue wait per request; then the hits' stages, p50/p99."""
        parts = []
        for tid, (ran, waited) in sorted(self.after.items()):
            ran0, waited0 = self.before.get(tid, (0.0, 0.0))
            if (ran - ran0) * 1000 / requests < 0.05:
                continue  # idle threads
            name = "loop" if tid == self.pid else f"thread {tid}"
            parts.append(f"{name} {(ran - ran0) * 1000 / requests:.2f} ms CPU "
                         f"+ {(waited - waited0) * 1000 / requests:.2f} ms waiting for a core")  # fmt: skip
        stages = self.stages()
        return [
            "    gateway per request: " + "; ".join(parts),
            "    hits' stages p50/p99 ms: "
            + ", ".join(
                f"{k} {pct(v, 0.5):.2f}/{pct(v, 0.99):.2f}" for k, v in sorted(stages.items())
            ),
        ]
