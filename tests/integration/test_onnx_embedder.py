"""The ONNX Runtime backend against the torch reference, on the bundled model: vectors on a
fixed sample (the 420 prompts of tests/fixtures/prompt_pairs.tsv: questions, commands, typos,
numbers, currency and degree signs, accents, lengths from 3 to 20 words), and a gateway that
serves a paraphrase with it."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from cache import onnx_embedder
from cache.embedder import SentenceTransformerEmbedder
from cache.onnx_embedder import OnnxEmbedder
from cache.onnx_export import Precision
from proxy.app import create_app
from proxy.settings import Settings
from tests.conftest import PROMPT_PAIRS

pytestmark = pytest.mark.integration

SAMPLE_SIZE = 420


def sample() -> list[str]:
    with PROMPT_PAIRS.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [row[column] for row in rows for column in ("text_a", "text_b")]


@pytest.fixture(scope="module")
def torch_vectors() -> np.ndarray:
    reference = SentenceTransformerEmbedder()
    reference._load()
    return reference._encode(sample())


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx")


def loaded(precision: Precision, directory: Path) -> OnnxEmbedder:
    embedder = OnnxEmbedder(precision=precision, directory=directory)
    embedder._load()  # exports on first use
    return embedder


# The lowest cosine depends on the sample: int8's was 0.9910 on the 418 sts2016 question
# titles, and is 0.9872 here ("Don't hold my order, send it out right away."; short imperative
# prompts move most). So int8 is held to a floor for every text and to 0.99 for all but 1 in
# 100 of them; fp32 to 0.9999 for every text.
@pytest.mark.parametrize(
    ("precision", "floor", "typical"), [("fp32", 0.9999, 0.9999), ("int8", 0.985, 0.99)]
)
def test_vectors_match_torch_on_a_fixed_sample(
    precision: Precision, floor: float, typical: float, torch_vectors: np.ndarray, exported: Path
) -> None:
    embedder = loaded(precision, exported)
    texts = sample()
    assert len(texts) == len(set(texts)) == SAMPLE_SIZE and embedder.dimension == 384
    one_by_one = np.concatenate([embedder._encode([text]) for text in texts])
    batched = np.concatenate(
        [embedder._encode(texts[i : i + 32]) for i in range(0, SAMPLE_SIZE, 32)]
    )
    for vectors in (one_by_one, batched):  # padding in a batch must not move a vector
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        cosines = (vectors * torch_vectors).sum(axis=1)
        below = int((cosines < typical).sum())
        print(f"{precision}: lowest cosine to torch {cosines.min():.4f}, {below} below {typical}")
        assert cosines.min() > floor
        assert below <= SAMPLE_SIZE // 100
    assert embedder.fingerprint.endswith(f":onnx-{precision}")


def test_the_export_is_made_once_and_reused(exported: Path) -> None:
    loaded("int8", exported)
    [folder] = [p for p in exported.iterdir() if p.name.endswith("-int8")]
    made = (folder / "model.onnx").stat().st_mtime_ns
    loaded("int8", exported)
    assert (folder / "model.onnx").stat().st_mtime_ns == made


def test_an_export_is_published_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Workers starting together all export: each writes a private folder and renames it into
    # place. A loser keeps the winner's files; a folder an older version left half-written
    # (no META) is replaced. Nothing else is left behind.
    def fake_export(_model: str, out: Path, precision: Precision) -> None:
        (out / "model.onnx").write_text(f"mine {precision}")
        (out / onnx_embedder.META).write_text("{}")

    monkeypatch.setattr(onnx_embedder, "_export", fake_export)
    won = tmp_path / "won"
    won.mkdir()
    (won / "model.onnx").write_text("the winner's")
    (won / onnx_embedder.META).write_text("{}")
    assert onnx_embedder.export("m", won, "int8") == won
    assert (won / "model.onnx").read_text() == "the winner's"

    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / "model.onnx").write_text("half")
    onnx_embedder.export("m", stale, "int8")
    assert (stale / "model.onnx").read_text() == "mine int8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stale", "won"]


def test_a_gateway_on_the_int8_backend_serves_a_paraphrase(
    make_settings: Callable[..., Settings], exported: Path
) -> None:
    settings = make_settings(
        cache={
            "enabled": True,
            "threshold": 0.9,
            "lookup_budget_ms": 5000,
            "embedding_backend": "onnx-int8",
            "onnx_dir": str(exported),
        }
    )
    body = {"model": "fake-gpt", "messages": [{"role": "user", "content": ""}]}

    def ask(client: TestClient, text: str) -> str:
        body["messages"][0]["content"] = text  # type: ignore[index]
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 200, response.text
        return response.headers["x-vetcache"]

    with TestClient(create_app(settings)) as client:
        assert ask(client, "How do I reverse a list in Python?") == "miss"
        for _ in range(100):
            if ask(client, "How can I reverse a Python list?") == "hit":
                break
        else:
            raise AssertionError("the paraphrase was never served")
        assert ask(client, "How do I sort a list in Python?") == "miss"


def test_a_model_saved_by_this_sentence_transformers_exports(tmp_path: Path) -> None:
    """sentence-transformers 6 saves the pooling mode as ``"pooling_mode": "mean"`` (no
    ``pooling_mode_mean_tokens``): a model it saved, like ``vetcache train --embedder``'s,
    still exports, and its int8 vectors match torch's."""
    from tests.tiny_models import tiny_embedder

    folder = tiny_embedder(tmp_path / "tiny")
    texts = ["how do I reset my password", "where is my parcel", "cancel my order please"]
    reference = SentenceTransformerEmbedder(str(folder))
    reference._load()
    embedder = OnnxEmbedder(str(folder), directory=tmp_path / "onnx")
    embedder._load()
    assert embedder.fingerprint.startswith("tiny:64:")
    cosines = np.sum(embedder._encode(texts) * reference._encode(texts), axis=1)
    assert cosines.min() > 0.98
