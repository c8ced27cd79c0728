"""The dashboard, loaded once per test module."""

from __future__ import annotations

import json

import pytest

from tests.unit.grafana.dashboard import DASHBOARD, Json


@pytest.fixture(scope="module")
def dashboard() -> Json:
    loaded: Json = json.loads(DASHBOARD.read_text())
    return loaded
