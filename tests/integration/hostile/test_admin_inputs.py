"""Hostile values in admin paths and queries: namespaces checked whole, windows bounded."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from proxy.routes.audits import MAX_WINDOW_S
from tests.integration.hostile.rig import ADMIN, assert_openai_error

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("namespace", ["shop%0A", "shop%0D%0Ax", "shop%00", "a" * 65, "caf%C3%A9"])
def test_admin_threshold_namespaces_are_checked_whole(client: TestClient, namespace: str) -> None:
    response = client.put(
        f"/admin/thresholds/{namespace}",
        headers={"content-type": "application/json", **ADMIN},
        json={"threshold": 0.9},
    )
    assert assert_openai_error(response, 400)["code"] == "invalid_namespace"
    thresholds = client.get("/admin/thresholds", headers=ADMIN).json()
    assert thresholds["namespaces"] == {}


@pytest.mark.parametrize("threshold", [True, False, "0.9", [0.9], {"value": 0.9}])
def test_admin_threshold_must_be_a_number(client: TestClient, threshold: object) -> None:
    """``true`` was taken as 1.0 (pydantic's lax float): a switch flipped by mistake would
    stop every hit in the namespace."""
    response = client.put(
        "/admin/thresholds/typed",
        headers={"content-type": "application/json", **ADMIN},
        json={"threshold": threshold},
    )
    assert assert_openai_error(response, 400)["param"] == "threshold"
    assert "typed" not in client.get("/admin/thresholds", headers=ADMIN).json()["namespaces"]
    for number in (1, 0.9, None):
        ok = client.put(
            "/admin/thresholds/typed",
            headers={"content-type": "application/json", **ADMIN},
            json={"threshold": number},
        )
        assert ok.status_code == 200 and ok.json()["threshold"] == number


@pytest.mark.parametrize("window_s", [10**20, 10**400, MAX_WINDOW_S + 1])
def test_fp_rate_window_is_bounded(client: TestClient, window_s: int) -> None:
    """A window past 64 bits was a 500 (found by hand after schemathesis' fuzzing of
    /admin/fp-rate, which draws small integers)."""
    response = client.get(f"/admin/fp-rate?window_s={window_s}", headers=ADMIN)
    assert assert_openai_error(response, 400)["param"] == "window_s"
    assert client.get(f"/admin/fp-rate?window_s={MAX_WINDOW_S}", headers=ADMIN).status_code == 200
