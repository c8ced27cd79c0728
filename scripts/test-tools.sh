#!/usr/bin/env bash
# Debian packages the test suite uses beyond Python: promtool (package `prometheus`) for the
# alert-rule unit tests, and Chromium for the /ui browser test (Playwright drives it; it
# never downloads a browser). Skipped when both are already there.
set -euo pipefail
if command -v promtool >/dev/null && command -v chromium >/dev/null; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends prometheus chromium
