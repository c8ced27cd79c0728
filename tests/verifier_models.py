"""Tiny verifiers for the tests, built in seconds: a 2-layer, 64-wide BERT pair classifier on
the bundled model's tokenizer, trained a few dozen steps to tell a polite paraphrase (agree)
from a negation of the cached prompt (refuse), then saved as ``vetcache train`` saves one (a
CrossEncoder folder and its model card). Deterministic (seeded, one thread)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

ACTIONS = [
    "cancel my order", "refund my last payment", "delete my account", "renew my subscription",
    "ship the parcel today", "close the support ticket", "charge my card", "send the invoice",
    "book the flight", "reset my password", "upgrade my plan", "file the tax return",
    "change the delivery address", "unlock the door", "restart the server", "merge the branch",
    "approve the request", "print the report", "share the document", "archive the emails",
]  # fmt: skip
"""What the pairs are about: the test prompts (``Cancel my order``) are among them."""
CARD = {"name": "tiny-test", "threshold": 0.5, "base_model": "random 2x64 BERT"}


def pairs() -> list[tuple[str, str, float]]:
    """(cached prompt, new prompt, label): paraphrases agree, negations refuse."""
    found: list[tuple[str, str, float]] = []
    for action in ACTIONS:
        cached = action.capitalize()
        found += [
            (cached, f"{cached} please", 1.0),
            (cached, f"Please {action}", 1.0),
            (cached, f"Could you {action}?", 1.0),
            (cached, f"Don't {action}", 0.0),
            (cached, f"Do not {action}", 0.0),
            (cached, f"Please don't {action}", 0.0),
        ]
    return found


def tiny_verifier(out: Path, steps: int = 60) -> Path:
    """Train and save the tiny verifier into ``out`` (a new folder); return ``out``."""
    import torch
    from sentence_transformers import CrossEncoder
    from transformers import BertConfig, BertForSequenceClassification

    from cache.embedder import BUNDLED_MODEL, resolve_model

    torch.manual_seed(0)
    random.seed(0)
    torch.set_num_threads(1)
    bundled = Path(resolve_model(BUNDLED_MODEL))
    base = out.with_name(out.name + "-base")
    base.mkdir(parents=True)
    config = BertConfig(
        vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128, max_position_embeddings=128,
    )  # fmt: skip
    config.num_labels = 1
    BertForSequenceClassification(config).save_pretrained(base)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy(bundled / name, base / name)
    model = CrossEncoder(str(base), num_labels=1, device="cpu", max_length=128)
    _train(model, steps)
    model.save(str(out))
    (out / "vetcache-verifier.json").write_text(json.dumps(CARD))
    shutil.rmtree(base)
    return out


def _train(model: object, steps: int) -> None:
    import torch

    classifier = model.model  # type: ignore[attr-defined]
    tokenizer = model.tokenizer  # type: ignore[attr-defined]
    classifier.train()
    optimizer = torch.optim.AdamW(classifier.parameters(), lr=3e-3)
    data = pairs()
    for _ in range(steps):
        batch = random.sample(data, 16)
        encoded = tokenizer(
            [a for a, _, _ in batch], [b for _, b, _ in batch], padding=True,
            truncation=True, return_tensors="pt",
        )  # fmt: skip
        labels = torch.tensor([label for _, _, label in batch])
        logits = classifier(**encoded).logits[:, 0]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    classifier.eval()
