"""Replay the fow_cache trap pairs through the gateway and count wrong hits.

For each labeled pair (``../shared/data/fow_cache/pairs.tsv``): send ``text_a`` (its answer is
admitted), then ``text_b``, each pair in a namespace of its own; a hit on ``text_b`` of a
label-0 pair is a false positive (the cached answer does not serve the new prompt). Prints
hit rate and false-positive share at the threshold in force, then, from the similarities the
gateway reported on every ``text_b``, the same numbers over a sweep of thresholds.
The pairs are not shipped with the project: without them it says so in one line and exits 0.

    .venv/bin/python tests/bench/fow_replay.py [--threshold 0.9] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.bench.shared_data import FOW_PAIRS, require
from tests.conftest import free_port, stop, vetcache, wait_http


def ask(client: httpx.Client, namespace: str, text: str, store: bool) -> httpx.Response:
    headers = {"x-vetcache-namespace": namespace}
    if not store:
        headers["cache-control"] = "no-store"
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
    response = client.post("/v1/chat/completions", json=body, headers=headers)
    response.raise_for_status()
    return response


def replay(
    client: httpx.Client, rows: list[dict[str, str]]
) -> list[tuple[dict[str, str], str, float]]:
    results = []
    for number, row in enumerate(rows):
        namespace = f"fow-{number}"
        ask(client, namespace, row["text_a"], store=True)
        for _ in range(200):  # wait for the background admission of text_a
            if ask(client, namespace, row["text_a"], store=False).headers["x-vetcache"] == "hit":
                break
            time.sleep(0.01)
        answer = ask(client, namespace, row["text_b"], store=False)
        similarity = float(answer.headers.get("x-vetcache-similarity", "nan"))
        results.append((row, answer.headers["x-vetcache"], similarity))
    return results


def report(results: list[tuple[dict[str, str], str, float]], threshold: float) -> None:
    hits = [row for row, outcome, _ in results if outcome == "hit"]
    wrong = [row for row in hits if row["label"] == "0"]
    print(f"pairs {len(results)}, threshold {threshold} (cosine similarity)")
    print(
        f"through the gateway: hit rate {len(hits) / len(results):.1%}, "
        f"false-positive share of hits {len(wrong) / max(1, len(hits)):.1%} "
        f"({len(wrong)} of {len(hits)})"
    )
    by_category: dict[str, list[int]] = {}
    for row in wrong:
        by_category.setdefault(row["category"].split("/")[0], []).append(1)
    if by_category:
        print(
            "wrong hits by category: "
            + ", ".join(f"{k} {len(v)}" for k, v in sorted(by_category.items()))
        )
    print(f"\n{'threshold':>9} {'hit rate':>9} {'FP share':>9} {'same-answer recall':>19}")
    positives = sum(1 for row, _, _ in results if row["label"] == "1")
    for step in [80, 85, *range(88, 100)]:
        cut = step / 100
        hit_rows = [row for row, _, sim in results if sim >= cut]
        false = sum(1 for row in hit_rows if row["label"] == "0")
        true = len(hit_rows) - false
        print(
            f"{cut:>9.2f} {len(hit_rows) / len(results):>9.1%} "
            f"{false / max(1, len(hit_rows)):>9.1%} {true / max(1, positives):>19.1%}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, help="override the default threshold")
    parser.add_argument("--redis-url", help="use Redis instead of the in-process store")
    args = parser.parse_args()
    with require(FOW_PAIRS).open() as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))

    upstream_port, gateway_port = free_port(), free_port()
    fake = vetcache("fake-upstream", "--port", str(upstream_port))
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "replay.yaml"
        lines = [
            "auth: {enabled: false}",
            "access_log: false",
            "model_list:",
            f"  - {{model_name: fake-gpt, model: openai/fake-gpt, api_base: 'http://127.0.0.1:{upstream_port}/v1'}}",
            "cache:",
            "  lookup_budget_ms: 5000",
        ]
        if args.threshold is not None:
            lines.append(f"  threshold: {args.threshold}")
        if args.redis_url:
            lines.append(f"redis_url: '{args.redis_url}'")
        config.write_text("\n".join(lines) + "\n")
        gateway = vetcache("serve", "--config", str(config), "--port", str(gateway_port))
        try:
            wait_http(f"http://127.0.0.1:{upstream_port}/v1/models", fake)
            wait_http(f"http://127.0.0.1:{gateway_port}/readyz", gateway, timeout=120)
            with httpx.Client(base_url=f"http://127.0.0.1:{gateway_port}", timeout=30) as client:
                results = replay(client, rows)
                in_force = float(
                    ask(client, "probe", "probe", store=False).headers["x-vetcache-threshold"]
                )
            report(results, in_force)
        finally:
            stop(gateway)
            stop(fake)


if __name__ == "__main__":
    main()
