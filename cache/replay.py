"""Chat completions <-> streamed chunks.

``assemble`` folds a streamed answer back into one ``chat.completion`` object (to admit a
streamed miss); ``replay`` cuts a cached completion into OpenAI chunks (to serve a hit to a
client that asked for ``stream: true``): role first, content in pieces, tool calls kept,
finish_reason last, usage last when asked for. A refusal and a legacy ``function_call`` are
kept both ways (streamed as ``delta.refusal`` and ``delta.function_call`` pieces).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

CHUNK_CHARS = 24
"""Characters of content per replayed chunk."""


def _merge_tool_calls(into: list[dict[str, Any]], calls: Iterable[dict[str, Any]]) -> None:
    for call in calls:
        index = call.get("index", len(into))
        while len(into) <= index:
            into.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        target = into[index]
        if call.get("id"):
            target["id"] = call["id"]
        if call.get("type"):
            target["type"] = call["type"]
        function = call.get("function") or {}
        target["function"]["name"] += function.get("name") or ""
        target["function"]["arguments"] += function.get("arguments") or ""


def _merge_function_call(state: dict[str, Any], call: Any) -> None:
    if not isinstance(call, dict):
        return
    merged = state.setdefault("function_call", {"name": "", "arguments": ""})
    merged["name"] += call.get("name") or ""
    merged["arguments"] += call.get("arguments") or ""


def _fold(state: dict[str, Any], choice: dict[str, Any]) -> None:
    """Add one chunk's piece of a choice to what was assembled of it so far."""
    delta = choice.get("delta") or {}
    state["role"] = delta.get("role") or state["role"]
    for field in ("content", "refusal"):
        if delta.get(field) is not None:
            state[field] = (state.get(field) or "") + delta[field]
    _merge_tool_calls(state["tool_calls"], delta.get("tool_calls") or ())
    _merge_function_call(state, delta.get("function_call"))
    state["finish_reason"] = choice.get("finish_reason") or state["finish_reason"]


def assemble(chunks: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The completion a sequence of chunks spells, or None if it never finished."""
    head: dict[str, Any] | None = None
    choices: dict[int, dict[str, Any]] = {}
    usage = None
    for chunk in chunks:
        head = head or chunk
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices", ()):
            state = choices.setdefault(
                choice.get("index", 0),
                {"role": "assistant", "content": None, "tool_calls": [], "finish_reason": None},
            )
            _fold(state, choice)
    if head is None or not choices or any(c["finish_reason"] is None for c in choices.values()):
        return None
    completion: dict[str, Any] = {
        "id": head.get("id"),
        "object": "chat.completion",
        "created": head.get("created"),
        "model": head.get("model"),
        "choices": [],
    }
    if head.get("system_fingerprint"):
        completion["system_fingerprint"] = head["system_fingerprint"]
    for index in sorted(choices):
        state = choices[index]
        message: dict[str, Any] = {"role": state["role"], "content": state["content"]}
        if state["tool_calls"]:
            message["tool_calls"] = state["tool_calls"]
        for field in ("refusal", "function_call"):
            if state.get(field) is not None:
                message[field] = state[field]
        completion["choices"].append(
            {
                "index": index,
                "message": message,
                "logprobs": None,
                "finish_reason": state["finish_reason"],
            }
        )
    if usage is not None:
        completion["usage"] = usage
    return completion


def replay(completion: dict[str, Any], *, include_usage: bool = False) -> Iterator[dict[str, Any]]:
    """OpenAI chunks that spell ``completion``."""
    base = {
        "id": completion.get("id"),
        "object": "chat.completion.chunk",
        "created": completion.get("created"),
        "model": completion.get("model"),
    }
    if completion.get("system_fingerprint"):
        base["system_fingerprint"] = completion["system_fingerprint"]

    def chunk(index: int, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            **base,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            ],
        }

    for choice in completion.get("choices", ()):
        index = choice.get("index", 0)
        message = choice.get("message") or {}
        content = message.get("content")
        yield chunk(
            index,
            {"role": message.get("role", "assistant"), "content": "" if content else content},
            None,
        )
        content = content or ""
        for start in range(0, len(content), CHUNK_CHARS):
            yield chunk(index, {"content": content[start : start + CHUNK_CHARS]}, None)
        for position, call in enumerate(message.get("tool_calls") or ()):
            yield chunk(index, {"tool_calls": [{"index": position, **call}]}, None)
        for field in ("refusal", "function_call"):
            if message.get(field) is not None:
                yield chunk(index, {field: message[field]}, None)
        yield chunk(index, {}, choice.get("finish_reason") or "stop")
    if include_usage and completion.get("usage") is not None:
        yield {**base, "choices": [], "usage": completion["usage"]}
