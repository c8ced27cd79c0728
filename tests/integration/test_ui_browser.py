"""``/ui`` in headless Chromium (Debian's, driven by Playwright; no browser is downloaded):
the page shows the gateway's numbers, and overturning a verdict with a click changes the
FP rate. Screenshots go to ``$VETCACHE_TEST_ARTIFACTS`` (default ``.artifacts/``)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
import yaml

from proxy.auth import hash_key
from tests.conftest import free_port, route, stop, vetcache, wait_http

if TYPE_CHECKING:  # imported where used: a test run without Playwright still collects
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(
    os.environ.get("VETCACHE_TEST_ARTIFACTS", Path(__file__).parents[2] / ".artifacts")
)
# Without the background-networking flags Chromium keeps dialling Google's hosts, which
# this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN = {"authorization": "Bearer sk-admin"}


@pytest.fixture
def gateway(tmp_path: Path, fake_upstream: str) -> Iterator[str]:
    """A ``vetcache serve`` process on the embedded store with its in-process judge."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium for the browser test")
        pytest.skip("chromium is not installed")
    port = free_port()
    config = tmp_path / "vetcache.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "port": port,
                "auth": {"enabled": False},
                "admin_key_sha256": hash_key("sk-admin"),
                "cache": {"threshold": 0.5, "lookup_budget_ms": 5000},
                "audit": {"burn_in": 10, "sample_rate": 1.0, "near_miss_rate": 0.0},
                "model_list": [route("fake-gpt", "fake-gpt", fake_upstream)],
            }
        )
    )
    process = vetcache("serve", "--config", str(config))
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", process, timeout=120)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process)


def wait(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 20
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def serve_two_judged_hits(gateway: str) -> None:
    """A miss, then a paraphrase and a negation served from it, both judged."""
    with httpx.Client(base_url=gateway, timeout=30) as http:

        def ask(text: str) -> str:
            body = {"model": "fake-gpt", "messages": [{"role": "user", "content": text}]}
            return str(http.post("/v1/chat/completions", json=body).headers["x-vetcache"])

        def admitted() -> bool:
            return (
                'vetcache_stage_duration_seconds_count{stage="admit"} 1.0'
                in http.get("/metrics").text
            )

        def judged() -> bool:
            return len(http.get("/admin/verdicts", headers=ADMIN).json()["data"]) == 2

        assert ask("Cancel my subscription") == "miss"
        wait(admitted, "the first answer was never admitted")
        assert ask("Cancel my subscription, please") == "hit"
        assert ask("Don't cancel my subscription") == "hit"
        wait(judged, "the two hits were never judged")


def sign_in(page: Page, problems: list[str]) -> None:
    """A wrong key is refused on the page; then the admin key."""
    from playwright.sync_api import expect

    page.fill("#key", "not-the-key")
    page.click("button[type=submit]")
    expect(page.locator("#status")).to_have_text("That is not the admin key.")
    problems.clear()  # the browser logs the 401 itself

    page.fill("#key", "sk-admin")
    page.click("button[type=submit]")


def assert_the_numbers_shown(page: Page) -> Locator:
    """The summary and the review table show the two judged hits; the false hit's row."""
    from playwright.sync_api import expect

    expect(page.locator("#hit-ratio")).to_have_text("66.7%")  # 2 hits, 1 miss
    expect(page.locator("#fp-rate")).to_have_text("50.0%")  # 1 of 2 judged hits
    expect(page.locator("#requests")).to_contain_text("2 hits, 1 misses")
    expect(page.locator("#fp-interval")).to_contain_text("1 of 2 labelled hits")
    expect(page.locator("#namespaces tbody tr[data-namespace=default]")).to_contain_text("0.5")
    row = page.locator("#review tbody tr", has_text="Don't cancel my subscription")
    expect(row).to_have_count(1)
    expect(row.locator("td.false_positive")).to_have_text("false positive")
    expect(row).to_contain_text("Cancel my subscription")  # the cached prompt
    return row


def assert_overturned(gateway: str) -> None:
    """The API agrees: no false positive left, and one review that says correct."""
    with httpx.Client(base_url=gateway, timeout=30) as http:
        rate = http.get("/admin/fp-rate", headers=ADMIN).json()
        assert rate["overall"]["false_positives"] == 0 and rate["overall"]["labelled"] == 2
        reviews = [
            v for v in http.get("/admin/verdicts", headers=ADMIN).json()["data"]
            if v["source"] == "review"
        ]  # fmt: skip
        assert len(reviews) == 1 and reviews[0]["verdict"] == "correct"


def test_review_page_shows_the_numbers_and_a_click_overturns_a_verdict(gateway: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    serve_two_judged_hits(gateway)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(f"{gateway}/ui")
            sign_in(page, problems)
            row = assert_the_numbers_shown(page)
            page.screenshot(path=str(ARTIFACTS / "ui-before-review.png"), full_page=True)

            row.get_by_role("button", name="Overturn").click()
            expect(page.locator("#fp-rate")).to_have_text("0.0%")
            expect(row).to_contain_text("overturned (correct)")
            page.screenshot(path=str(ARTIFACTS / "ui-after-review.png"), full_page=True)
            assert problems == []
        finally:
            browser.close()
    assert_overturned(gateway)


def test_ui_assets_carry_a_strict_content_security_policy(gateway: str) -> None:
    with httpx.Client(base_url=gateway, timeout=10) as http:
        for path in ("/ui", "/ui/app.js", "/ui/app.css"):
            reply = http.get(path)
            assert reply.status_code == 200, path
            assert "script-src 'self'" in reply.headers["content-security-policy"]
        for other in ("/ui/metrics.py", "/ui/%2e%2e%2fpyproject.toml", "/ui/index.html"):
            assert http.get(other).status_code == 404, other  # only the three assets
        assert http.get("/admin/summary").status_code == 401
