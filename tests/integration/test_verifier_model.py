"""The verifier's model on ONNX Runtime (``cache.verifier_model``) against its torch reference,
``CrossEncoder.predict``: on the 210 fixture pairs (pairs past the model's window score 0:
the verifier vouches only for what it read), with a tiny verifier trained just enough that its scores spread over
0.2-0.8 (a saturated model would hide differences)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from cache.errors import VerifierError
from cache.onnx_export import Precision
from cache.verifier_model import CARD, load_scorer
from tests.conftest import PROMPT_PAIRS
from tests.verifier_models import tiny_verifier

pytestmark = pytest.mark.integration


def sample() -> list[tuple[str, str]]:
    with PROMPT_PAIRS.open(newline="", encoding="utf-8") as handle:
        return [(r["text_a"], r["text_b"]) for r in csv.DictReader(handle, delimiter="\t")]


def too_long() -> list[tuple[str, str]]:
    """Past the tiny model's 128 tokens."""
    return [(a * 12, b * 9) for a, b in sample()[:20]]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_verifier(tmp_path_factory.mktemp("verifier") / "tiny", steps=20)


@pytest.fixture(scope="module")
def reference(model: Path) -> np.ndarray:
    from sentence_transformers import CrossEncoder

    scores = CrossEncoder(str(model), device="cpu").predict(sample(), show_progress_bar=False)
    assert float(np.std(scores)) > 0.1  # spread out: the comparison means something
    return np.asarray(scores, dtype=np.float64)


@pytest.mark.parametrize(
    ("precision", "worst", "typical"), [("fp32", 1e-5, 1e-5), ("int8", 0.03, 0.01)]
)
def test_scores_match_the_cross_encoder(
    precision: Precision, worst: float, typical: float, model: Path, reference: np.ndarray,
    tmp_path: Path,
) -> None:  # fmt: skip
    scorer = load_scorer(model, precision, tmp_path)
    scores = np.array(scorer.scores(sample()))
    gap = np.abs(scores - reference)
    assert gap.max() <= worst and np.percentile(gap, 99) <= typical
    one = scorer.scores([sample()[0]])
    assert one[0] == pytest.approx(scores[0], abs=1e-6 if precision == "int8" else 1e-5)
    assert scorer.fingerprint.startswith("verifier:tiny-test:")
    assert scorer.fingerprint.endswith(f":onnx-{precision}")
    assert scorer.threshold == 0.5 and scorer.card["base_model"] == "random 2x64 BERT"
    # torch would score the cut pairs; the hit path refuses what it could not read whole.
    assert scorer.scores(too_long()) == [0.0] * 20
    assert scorer.scores([(sample()[0][0] * 12, sample()[0][1])]) == [0.0]


def test_the_export_is_made_once_and_reused(model: Path, tmp_path: Path) -> None:
    load_scorer(model, "int8", tmp_path)
    [folder] = [p for p in tmp_path.iterdir() if p.name.startswith("verifier-")]
    made = (folder / "model.onnx").stat().st_mtime_ns
    again = load_scorer(model, "int8", tmp_path)
    assert (folder / "model.onnx").stat().st_mtime_ns == made
    assert again.scores([]) == []


@pytest.mark.parametrize(
    ("card", "error"),
    [
        (None, "has no vetcache-verifier.json"),
        ({"name": "x"}, "operating point"),
        ({"name": "x", "threshold": 1.5}, "operating point"),
        ({"threshold": 0.5}, "names no model"),
        ("not json", "vetcache-verifier.json"),
    ],
)
def test_a_folder_that_is_not_a_verifier_says_why(card: object, error: str, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    if card is not None:
        text = card if isinstance(card, str) else json.dumps(card)
        (folder / CARD).write_text(text)
    with pytest.raises(VerifierError, match=error):
        load_scorer(folder, "int8", tmp_path / "onnx")
    with pytest.raises(VerifierError, match="is not a folder"):
        load_scorer(tmp_path / "absent", "int8", tmp_path / "onnx")
