#!/usr/bin/env bash
# Runs the gateway on 127.0.0.1:8000 in front of the fake upstream on 127.0.0.1:8001,
# with deploy/config/local.yaml (auth off; admin key local-admin). No other service is
# needed. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/vetcache fake-upstream --port 8001 &
fake_pid=$!
trap 'kill "$fake_pid" 2>/dev/null || true' EXIT INT TERM
sleep 1
if ! kill -0 "$fake_pid" 2>/dev/null; then
  echo "run-local: the fake upstream could not start (is 127.0.0.1:8001 in use?)" >&2
  exit 1
fi
echo "run-local: gateway on http://127.0.0.1:8000 (OpenAPI at /docs); the page at" \
  "http://127.0.0.1:8000/ui takes the local admin key: local-admin" >&2
.venv/bin/vetcache serve --config deploy/config/local.yaml
