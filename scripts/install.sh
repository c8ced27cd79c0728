#!/usr/bin/env bash
# Sets up .venv with everything vetcache needs. torch comes first and pinned to the CPU
# wheel: a bare `torch` requirement (pulled in by sentence-transformers) would otherwise
# download a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[dev]"
# Export the default embedder to ONNX now (~15 s once) rather than in the first start.
.venv/bin/vetcache prepare-embedder
echo "vetcache: installed into .venv ($(.venv/bin/vetcache version))"
