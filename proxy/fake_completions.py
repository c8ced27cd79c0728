"""The fake upstream's ``/v1/completions`` (legacy text completions), JSON and SSE.

Each prompt (a string, or each string of an array) gets ``make_answer`` of it as a one-message
conversation, so a prompt sent as a text completion and as a chat message get the same text.
``max_tokens`` truncates by words (``finish_reason: "length"``); ``echo`` puts the prompt in
front; ``logprobs`` answers a placeholder logprobs object; the fault models of
``proxy.fake_upstream`` (``error-<status>``, ``sleep-<ms>``...) answer as they do for chat.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from proxy.fake_replies import count_tokens, error_reply, json_reply, make_answer

if TYPE_CHECKING:
    from proxy.fake_upstream import FakeUpstream


def _choice(index: int, prompt: str, body: dict[str, Any]) -> dict[str, Any]:
    words = make_answer(body["model"], [{"role": "user", "content": prompt}]).split(" ")
    finish = "stop"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and 0 < max_tokens < len(words):
        words, finish = words[:max_tokens], "length"
    text = " ".join(words)
    logprobs = None
    if body.get("logprobs") is not None:
        logprobs = {"tokens": words, "token_logprobs": [-0.5] * len(words),
                    "top_logprobs": None, "text_offset": list(range(len(words)))}  # fmt: skip
    if body.get("echo") is True:
        text = prompt + text
    return {"text": text, "index": index, "logprobs": logprobs, "finish_reason": finish}


def _prompts(raw: Any) -> list[str]:
    """Each prompt's text: a string, strings, a token array, token arrays (tokens as words)."""
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list) or not raw:
        return []
    if all(isinstance(token, int) for token in raw):
        return [" ".join(map(str, raw))]
    texts = []
    for prompt in raw:
        if isinstance(prompt, str):
            texts.append(prompt)
        elif isinstance(prompt, list) and all(isinstance(token, int) for token in prompt):
            texts.append(" ".join(map(str, prompt)))
        else:
            return []
    return texts


async def completions(fake: FakeUpstream, request: Request) -> Response:
    """``POST /v1/completions``."""
    body = await fake.read_body(request)
    if isinstance(body, Response):
        return body
    texts = _prompts(body.get("prompt"))
    if not texts:
        return error_reply(400, "'prompt' must be text, texts, or token arrays")
    model: str = body["model"]
    await fake.wait(model)
    fault = fake.fault(model, make_answer(model, [{"role": "user", "content": texts[0]}]))
    if fault is not None:
        return fault
    choices = [_choice(i, text, body) for i, text in enumerate(texts)]
    prompt_tokens = sum(count_tokens(text) for text in texts)
    completion_tokens = sum(count_tokens(c["text"]) for c in choices)
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}  # fmt: skip
    head = {
        "id": "cmpl-fake" + hashlib.sha256(orjson.dumps(choices)).hexdigest()[:20],
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
    }
    if body.get("stream") is True:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        events = _events(head, choices, usage if include_usage else None)
        return StreamingResponse(fake.counted(model, events), media_type="text/event-stream")
    return json_reply({**head, "choices": choices, "usage": usage})


async def _events(
    head: dict[str, Any], choices: list[dict[str, Any]], usage: dict[str, int] | None
) -> AsyncIterator[bytes]:
    def event(payload: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    for choice in choices:
        words = choice["text"].split(" ")
        for i, word in enumerate(words):
            text = word if i == 0 else " " + word
            part = {"text": text, "index": choice["index"], "logprobs": None,
                    "finish_reason": None}  # fmt: skip
            yield event({**head, "choices": [part]})
        end = {"text": "", "index": choice["index"], "logprobs": None,
               "finish_reason": choice["finish_reason"]}  # fmt: skip
        yield event({**head, "choices": [end]})
    if usage is not None:
        yield event({**head, "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"
