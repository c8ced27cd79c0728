#!/usr/bin/env bash
# Runs the gateway on 127.0.0.1:8000 in front of the fake upstream on 127.0.0.1:8001,
# with deploy/config/local.yaml (auth off). No other service is needed. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/vetcache fake-upstream --port 8001 &
fake_pid=$!
trap 'kill "$fake_pid" 2>/dev/null || true' EXIT INT TERM
exec_status=0
.venv/bin/vetcache serve --config deploy/config/local.yaml || exec_status=$?
exit "$exec_status"
