"""Namespace labels are shared out per tenant (the namespace header is client-controlled)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from proxy.metrics import OTHER, Metrics


def test_each_tenant_gets_its_share_whoever_comes_first() -> None:
    metrics = Metrics(CollectorRegistry(), max_namespaces=4, tenants=2)
    assert [metrics.namespace(f"junk-{i}", "b") for i in range(3)] == ["junk-0", "junk-1", OTHER]
    assert metrics.namespace("real", "a") == "real"  # b's junk took only b's half
    assert metrics.namespace("junk-0", "a") == "junk-0"  # a known namespace is anyone's


def test_shared_state_gauges_label_no_new_namespace() -> None:
    """Entry counts and FP rates come from the store and the ledger, where any tenant's
    namespaces are: they must not take labels the tenants' shares are for."""
    metrics = Metrics(CollectorRegistry(), max_namespaces=2, tenants=1)
    metrics.set_entries({f"stored-{i}": 1 for i in range(5)})
    assert metrics.namespace("live", "a") == "live"
    metrics.set_thresholds(0.9, {"tuned": 0.95})  # an operator's namespace: always labelled
    assert metrics.namespace("tuned") == "tuned"
