"""Legacy text completions (``/v1/completions``) on the chat path.

Cache entries hold chat completions, so a text completion crosses into chat form and back at
this boundary: its one prompt is keyed as a one-message conversation (with a field that puts
text completions in scopes of their own: a chat prompt and a text prompt never meet), the
upstream is asked for a text completion (``TextCalls``), and its answer travels the chat path
(flights, admission, replay) as a chat completion whose choices carry their text as the
message content. ``text_completion`` and ``text_chunk`` turn it back for the client.

A request the cache cannot answer faithfully is passed through uncached (``bypass_reason``):
several prompts or token arrays, ``echo`` (the answer repeats its own prompt), ``logprobs``
(replays carry none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from proxy.answers import Mapped, UpstreamCalls
from proxy.upstream_replies import UpstreamReply, UpstreamStream

SCOPE_FIELD = "vetcache_text_completion"
"""A field of the keyed body that only text completions carry: every field but the neutral
ones is in the scope (``cache.keys``)."""
_OWN_FIELDS = frozenset({"prompt", "echo", "logprobs"})
_HEAD = ("id", "created", "model", "system_fingerprint")


def bypass_reason(body: Mapping[str, Any]) -> str | None:
    """Why the request is passed through uncached, or None when it can be cached."""
    if not isinstance(body.get("prompt"), str):
        return "prompt_not_text"
    if body.get("echo") is True:
        return "echo"
    if body.get("logprobs") is not None:
        return "logprobs"
    return None


def chat_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """The chat form of a text-completion request, for the key and the cache's rules."""
    prompt = body.get("prompt")
    params = {name: value for name, value in body.items() if name not in _OWN_FIELDS}
    content = prompt if isinstance(prompt, str) else ""
    return {**params, "messages": [{"role": "user", "content": content}], SCOPE_FIELD: True}


def _head(payload: Mapping[str, Any], kind: str) -> dict[str, Any]:
    head = {name: payload[name] for name in _HEAD if payload.get(name) is not None}
    return {**head, "object": kind}


def _with_usage(result: dict[str, Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    if payload.get("usage") is not None:
        result["usage"] = payload["usage"]
    return result


def chat_completion(text: Mapping[str, Any]) -> dict[str, Any]:
    """A text completion as the chat completion the cache holds."""
    choices = [
        {
            "index": choice.get("index", 0),
            "message": {"role": "assistant", "content": choice.get("text") or ""},
            "logprobs": choice.get("logprobs"),
            "finish_reason": choice.get("finish_reason"),
        }
        for choice in text.get("choices") or ()
    ]
    return _with_usage({**_head(text, "chat.completion"), "choices": choices}, text)


def text_completion(chat: Mapping[str, Any]) -> dict[str, Any]:
    """A chat completion (an entry, or a text completion that crossed) as a text completion."""
    choices = [
        {
            "text": (choice.get("message") or {}).get("content") or "",
            "index": choice.get("index", 0),
            "logprobs": choice.get("logprobs"),
            "finish_reason": choice.get("finish_reason"),
        }
        for choice in chat.get("choices") or ()
    ]
    return _with_usage({**_head(chat, "text_completion"), "choices": choices}, chat)


def chat_chunk(text: Mapping[str, Any]) -> dict[str, Any]:
    """A text-completion chunk as a chat-completion chunk."""
    choices = []
    for choice in text.get("choices") or ():
        piece = choice.get("text")
        choices.append(
            {
                "index": choice.get("index", 0),
                "delta": {"content": piece} if piece else {},
                "logprobs": choice.get("logprobs"),
                "finish_reason": choice.get("finish_reason"),
            }
        )
    return _with_usage({**_head(text, "chat.completion.chunk"), "choices": choices}, text)


def text_chunk(chat: Mapping[str, Any]) -> dict[str, Any]:
    """A chat-completion chunk (passed through, or replayed from an entry) as a
    text-completion chunk."""
    choices = [
        {
            "text": (choice.get("delta") or {}).get("content") or "",
            "index": choice.get("index", 0),
            "logprobs": choice.get("logprobs"),
            "finish_reason": choice.get("finish_reason"),
        }
        for choice in chat.get("choices") or ()
    ]
    return _with_usage({**_head(chat, "text_completion"), "choices": choices}, chat)


class TextCalls(UpstreamCalls):
    """The upstream calls of one text-completion request: a text completion of ``body``
    (the request as the client sent it), answered in chat form."""

    def __init__(self, calls: UpstreamCalls, body: Mapping[str, Any]) -> None:
        super().__init__(calls.upstream, calls.metrics, calls.tracing)
        self.body = body

    async def json(self, body: Mapping[str, Any]) -> UpstreamReply:
        reply = await self.upstream.text(self.body)
        return UpstreamReply(chat_completion(reply.completion), reply.answered_by)

    async def event_stream(self, body: Mapping[str, Any]) -> UpstreamStream:
        stream = await self.upstream.text_stream(self.body)
        return UpstreamStream(Mapped(stream.chunks, chat_chunk), stream.answering)
