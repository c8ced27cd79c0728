"""Request models for the OpenAI routes: validation only.

The gateway validates what it must understand (``model``, ``messages``, ``stream``, ``input``)
and forwards the client's body as sent, so fields it does not know reach the upstream intact.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, model_validator

MAX_MESSAGES = 4096
"""More messages than this in one request is a client bug, not a conversation."""

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
ContentPart = dict[str, Any]


class ChatMessage(BaseModel):
    """One message of a chat request; provider-specific fields are kept."""

    model_config = ConfigDict(extra="allow")

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
        return self


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
