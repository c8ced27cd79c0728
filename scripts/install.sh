#!/usr/bin/env bash
# Sets up .venv with everything vetcache needs (about 5 minutes and 2.4 GB the first time).
# torch comes first and pinned to the CPU wheel: a bare `torch` requirement (pulled in by
# sentence-transformers) would otherwise download a multi-GB CUDA build. Each step says what
# it does and how long it took; pip's own lines are kept quiet.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
started=$SECONDS
step() { echo "vetcache install [$1/4] $2" >&2; }
done_step() { echo "vetcache install       done ($((SECONDS - started)) s so far)" >&2; }

step 1 "virtual environment .venv ($PYTHON)"
if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
.venv/bin/python -m pip install --quiet --upgrade pip
done_step
step 2 "torch 2.13.0, CPU build (the largest download; ~1-2 min)"
.venv/bin/python -m pip install --quiet "torch==2.13.0"
done_step
step 3 "vetcache and its dependencies, with the dev tools (~2-3 min)"
.venv/bin/python -m pip install --quiet -e ".[dev]"
done_step
# Export the default embedder to ONNX now (~10-35 s once) rather than in the first start.
step 4 "the embedding model, exported to ONNX once (~10-35 s)"
.venv/bin/vetcache prepare-embedder
done_step
echo "vetcache: installed into .venv ($(.venv/bin/vetcache version)) in $((SECONDS - started)) s" >&2
