"""Write deploy/k8s/monitoring/prometheusrule.yaml from deploy/prometheus/rules/*.yml.

The Prometheus operator takes rules as a PrometheusRule object; this one carries the groups
of the rule files unchanged, so a cluster with the operator alerts like a Prometheus that
loads the files. Run it after changing a rule file:

    python scripts/sync-prometheusrule.py           # rewrite the PrometheusRule
    python scripts/sync-prometheusrule.py --check   # exit 1 if it is stale (CI, tests)

tests/unit/deploy/test_prometheus_rule.py runs the same check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RULES_DIR = Path("deploy/prometheus/rules")
TARGET = Path("deploy/k8s/monitoring/prometheusrule.yaml")
COMMAND = "python scripts/sync-prometheusrule.py"
NAMESPACE = "vetcache"

HEADER = f"""\
# GENERATED from {RULES_DIR}/*.yml: do not edit. Change the rule files, then
# run `{COMMAND}` (its `--check`, and the tests, fail while
# the two differ). The operator loads these groups like Prometheus loads the files.
"""


def rule_groups(root: Path) -> list[dict[str, Any]]:
    """The groups of the rule files, in file order."""
    groups: list[dict[str, Any]] = []
    for path in sorted((root / RULES_DIR).glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        groups += document["groups"]
    return groups


def manifest(root: Path) -> dict[str, Any]:
    """The PrometheusRule object."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "vetcache",
            "namespace": NAMESPACE,
            "labels": {"app.kubernetes.io/name": "vetcache"},
        },
        "spec": {"groups": rule_groups(root)},
    }


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as ``|`` blocks, like the rule files."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def render(root: Path) -> str:
    """The text of the PrometheusRule file, header included."""
    body = yaml.dump(manifest(root), Dumper=_BlockDumper, sort_keys=False, width=4096)
    return HEADER + body


def stale(root: Path) -> str | None:
    """Why the committed file is not what the rule files make, or None when it is."""
    path = root / TARGET
    if not path.is_file():
        return f"{TARGET} is missing: run `{COMMAND}`"
    if path.read_text(encoding="utf-8") != render(root):
        return f"{TARGET} is not what the rule files make: run `{COMMAND}`"
    return None


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the file is stale"
    )
    args = parser.parse_args(argv)
    if args.check:
        problem = stale(root)
        print(problem or f"{TARGET} is up to date", file=sys.stderr if problem else sys.stdout)
        return 1 if problem else 0
    (root / TARGET).write_text(render(root), encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
