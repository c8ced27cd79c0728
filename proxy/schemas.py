"""Request models for the OpenAI routes: validation only.

The gateway validates what it must understand (``model``, ``messages``, ``stream``, ``input``)
and forwards the client's body as sent, so fields it does not know reach the upstream intact.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, model_validator

from proxy.errors import InvalidRequest

MAX_MESSAGES = 4096
"""More messages than this in one request is a client bug, not a conversation."""
MAX_CONTENT_PARTS = 4096
"""Most content parts all messages of one request may hold together (OpenAI takes up to 500
images in a request)."""

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
ContentPart = dict[str, Any]


USER_PART_TYPES = (
    "text", "image_url", "input_audio", "file",  # OpenAI's
    "audio_url", "document", "guarded_text", "grounding_source", "query", "video_url",
)  # fmt: skip
"""Content part types of a user message: OpenAI's, and the other providers' that litellm
forwards (its ``ValidUserMessageContentTypes``). litellm refuses any other before calling the
upstream, raised as a connection error, so the gateway checks them itself."""


def _user_part_problem(part: ContentPart) -> str | None:
    """What is wrong with a user message's content part, if anything: an unknown ``type``,
    or one of OpenAI's types without its payload (litellm indexes it before calling, and
    reports the ``KeyError`` as a connection error)."""
    kind = part.get("type")
    if kind not in USER_PART_TYPES:
        return "needs a 'type' of " + ", ".join(USER_PART_TYPES)
    payload = part.get(kind)
    if kind == "text":
        valid = isinstance(payload, str)
    elif kind == "image_url":
        valid = isinstance(payload, str) or (
            isinstance(payload, dict) and isinstance(payload.get("url"), str)
        )
    elif kind in ("input_audio", "file"):
        valid = isinstance(payload, dict)
    else:
        valid = True  # other providers' parts: litellm passes them on
    return None if valid else f"of type '{kind}' needs its '{kind}' field"


_PRESENT: dict[str, Any] = {"not": {"type": "null"}}
_USER_CONTENT: dict[str, Any] = {
    "anyOf": [
        {"type": "string"},
        {
            "type": "array",
            "items": {
                "properties": {"type": {"enum": list(USER_PART_TYPES)}},
                "required": ["type"],
                "allOf": [
                    {
                        "if": {"properties": {"type": {"const": kind}}},
                        "then": {"properties": {kind: payload}, "required": [kind]},
                    }
                    for kind, payload in (
                        ("text", {"type": "string"}),
                        (
                            "image_url",
                            {
                                "type": "object",
                                "required": ["url"],
                                "properties": {"url": {"type": "string"}},
                            },
                        ),
                        ("input_audio", {"type": "object"}),
                        ("file", {"type": "object"}),
                    )
                ],
            },
        },
    ]
}
_MESSAGE_RULES: dict[str, Any] = {
    # What ``_content_where_required`` checks, for the OpenAPI document (documentation only).
    "anyOf": [
        {
            "properties": {
                "role": {"enum": ["system", "developer", "function"]},
                "content": _PRESENT,
            },
            "required": ["content"],
        },
        {
            "properties": {"role": {"const": "user"}, "content": _USER_CONTENT},
            "required": ["content"],
        },
        {
            "properties": {
                "role": {"const": "tool"},
                "content": _PRESENT,
                "tool_call_id": {"type": "string"},
            },
            "required": ["content", "tool_call_id"],
        },
        {
            "properties": {"role": {"const": "assistant"}, "content": _PRESENT},
            "required": ["content"],
        },
        {
            "properties": {
                "role": {"const": "assistant"},
                "tool_calls": {"type": "array", "minItems": 1},
            },
            "required": ["tool_calls"],
        },
    ]
}


class ChatMessage(BaseModel):
    """One message of a chat request; provider-specific fields are kept."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_MESSAGE_RULES)

    role: Role
    """Who wrote the message."""
    content: StrictStr | Annotated[list[ContentPart], Field(min_length=1)] | None = None
    """Text, or a list of content parts (text, image_url, input_audio...)."""
    name: StrictStr | None = None
    """Optional participant name."""
    tool_calls: list[dict[str, Any]] | None = None
    """Tool calls made by an assistant message."""
    tool_call_id: StrictStr | None = None
    """The call a tool message answers."""

    @model_validator(mode="after")
    def _content_where_required(self) -> ChatMessage:
        if self.content is None and self.role != "assistant":
            raise ValueError(f"a '{self.role}' message needs 'content'")
        if self.content is None and not self.tool_calls and self.role == "assistant":
            raise ValueError("an 'assistant' message needs 'content' or 'tool_calls'")
        if self.role == "tool" and self.tool_call_id is None:
            raise ValueError("a 'tool' message needs 'tool_call_id'")
        if self.role == "user" and isinstance(self.content, list):
            for index, part in enumerate(self.content):
                problem = _user_part_problem(part)
                if problem:
                    raise ValueError(f"content part {index} of a 'user' message {problem}")
        return self


def chat_limits(body: dict[str, Any]) -> None:
    """The chat route's counts, checked on the parsed body before the model
    (``proxy.wire.Limits``), so it never sees more than ``MAX_MESSAGES`` messages or
    ``MAX_CONTENT_PARTS`` content parts: a few operations per message, where the model
    validated all 115,000 messages of a body before its own length check refused them."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return  # the model says what is wrong
    if len(messages) > MAX_MESSAGES:
        raise InvalidRequest(
            f"Invalid 'messages': at most {MAX_MESSAGES} messages, not {len(messages)}",
            param="messages",
            code="too_many_messages",
        )
    parts = sum(
        len(content)
        for message in messages
        if isinstance(message, dict) and isinstance(content := message.get("content"), list)
    )
    if parts > MAX_CONTENT_PARTS:
        raise InvalidRequest(
            f"Invalid 'messages': at most {MAX_CONTENT_PARTS} content parts in all, not {parts}",
            param="messages",
            code="too_many_content_parts",
        )


class StreamOptions(BaseModel):
    """Options of a streamed answer."""

    model_config = ConfigDict(extra="allow")

    include_usage: StrictBool = False
    """Send a final chunk with token usage."""


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[StrictStr, Field(min_length=1)]
    """Model alias from the gateway's ``model_list``."""
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=MAX_MESSAGES)]
    """The conversation so far."""
    stream: StrictBool = False
    """Answer as server-sent events."""
    stream_options: StreamOptions | None = None
    """Only with ``stream: true``."""


class EmbeddingRequest(BaseModel):
    """``POST /v1/embeddings``."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[StrictStr, Field(min_length=1)]
    """Model alias from the gateway's ``model_list``."""
    input: (
        Annotated[StrictStr, Field(min_length=1)]
        | Annotated[list[StrictStr], Field(min_length=1, max_length=2048)]
        | Annotated[list[int], Field(min_length=1)]
        | Annotated[list[list[int]], Field(min_length=1, max_length=2048)]
    )
    """Text or token arrays to embed."""
    encoding_format: Literal["float", "base64"] | None = None
    """How vectors are returned."""
    dimensions: Annotated[int, Field(gt=0)] | None = None
    """Requested vector size, for models that support it."""


class TextCompletionRequest(BaseModel):
    """``POST /v1/completions`` (legacy text completions)."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[StrictStr, Field(min_length=1)]
    """Model alias from the gateway's ``model_list``."""
    prompt: (
        StrictStr
        | Annotated[list[StrictStr], Field(min_length=1, max_length=2048)]
        | Annotated[list[int], Field(min_length=1)]
        | Annotated[list[list[int]], Field(min_length=1, max_length=2048)]
    )
    """The prompt: text, texts, or token arrays (only one text is cached)."""
    stream: StrictBool = False
    """Answer as server-sent events."""
    stream_options: StreamOptions | None = None
    """Only with ``stream: true``."""
