"""``vetcache fake-upstream --embeddings model`` serves the bundled model's vectors: the same
as the project's embedder gives for the same text (another gateway embedding through it runs
the model vetcache runs)."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from cache.embedder import SentenceTransformerEmbedder
from cache.onnx_embedder import OnnxEmbedder
from cache.settings import EmbeddingBackend
from tests.conftest import free_port, stop, vetcache, wait_http

pytestmark = pytest.mark.integration

TEXTS = [
    "How do I reverse a list in Python?",
    "what is the capital of australia",
    "Explain the difference between TCP and UDP.",
    "Is ibuprofen safe to take with alcohol?",
]


@pytest.mark.parametrize("backend", ["torch", "onnx-int8"])
def test_model_vectors_equal_the_project_embedder(
    backend: EmbeddingBackend, tmp_path: Path
) -> None:
    port = free_port()
    process = vetcache(
        "fake-upstream", "--port", str(port), "--latency-ms", "500", "--embeddings", "model",
        "--embedding-backend", backend, "--onnx-dir", str(tmp_path),
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models", process, timeout=180)
        response = httpx.post(
            f"http://127.0.0.1:{port}/v1/embeddings",
            json={"model": "minilm", "input": TEXTS},
            timeout=30,
        )
        response.raise_for_status()
        served = np.array([item["embedding"] for item in response.json()["data"]])
    finally:
        stop(process)
    reference = (
        SentenceTransformerEmbedder()
        if backend == "torch"
        else OnnxEmbedder(precision="int8", directory=tmp_path)  # reuses the server's export
    )
    reference._load()
    expected = reference._encode(TEXTS)
    assert served.shape == (len(TEXTS), 384)
    cosines = (served * expected).sum(axis=1)
    assert cosines.min() > 0.999
