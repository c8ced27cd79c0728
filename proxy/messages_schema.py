"""The request model of ``POST /v1/messages`` (Anthropic's Messages API): validation only.

The gateway validates what it must understand to translate the request to a chat completion
(``proxy.messages_wire``): the model, ``max_tokens``, the messages and their content blocks,
the system prompt, tools and ``tool_choice``, ``stop_sequences``, ``stream``. Other fields
are kept and passed on as the translation does (litellm's adapter copies them as they are).
Its counts are the chat route's (``proxy.schemas.chat_limits``: the same field names).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    model_validator,
)

from proxy.schemas import MAX_MESSAGES

Block = dict[str, Any]

_REQUIRED_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "text": {"text": str},
    "image": {"source": dict},
    "document": {"source": dict},
    "tool_use": {"id": str, "name": str, "input": dict},
    "tool_result": {"tool_use_id": str},
    "thinking": {"thinking": str},
    "redacted_thinking": {"data": str},
}
"""The fields each content block type the translation reads must carry, and their types."""


def block_problem(block: Block) -> str | None:
    """What is wrong with a content block, if anything: no ``type``, or a known type
    without the fields the translation reads. Other types are passed on as they are."""
    kind = block.get("type")
    if not isinstance(kind, str):
        return "needs a 'type'"
    for field, expected in _REQUIRED_FIELDS.get(kind, {}).items():
        if not isinstance(block.get(field), expected):
            return f"of type '{kind}' needs its '{field}' field"
    return None


def _check_blocks(blocks: list[Block], where: str) -> None:
    for index, block in enumerate(blocks):
        problem = block_problem(block)
        if problem:
            raise ValueError(f"content block {index} of {where} {problem}")


class Message(BaseModel):
    """One turn of the conversation."""

    model_config = ConfigDict(extra="allow")

    role: Literal["user", "assistant"]
    """Who wrote the turn (the system prompt is the request's ``system``)."""
    content: StrictStr | Annotated[list[Block], Field(min_length=1)]
    """Text, or content blocks (text, image, document, tool_use, tool_result...)."""

    @model_validator(mode="after")
    def _blocks_have_their_fields(self) -> Message:
        if isinstance(self.content, list):
            _check_blocks(self.content, f"a '{self.role}' message")
        return self


class TextBlock(BaseModel):
    """A text block of the system prompt."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    """Always ``text``."""
    text: StrictStr
    """The text."""


class Tool(BaseModel):
    """A tool the model may call: a client tool (``input_schema``) or a typed server tool."""

    model_config = ConfigDict(extra="allow")

    name: Annotated[StrictStr, Field(min_length=1)]
    """The tool's name, as the model calls it."""
    input_schema: dict[str, Any] | None = None
    """The JSON schema of its input (client tools)."""


class ToolChoice(BaseModel):
    """How the model is to use the tools."""

    model_config = ConfigDict(extra="allow")

    type: Literal["auto", "any", "tool", "none"]
    """``auto``, ``any`` (some tool), ``tool`` (the one named), ``none``."""
    name: StrictStr | None = None
    """The tool, with ``type: tool``."""

    @model_validator(mode="after")
    def _named_when_one_tool(self) -> ToolChoice:
        if self.type == "tool" and not self.name:
            raise ValueError("a 'tool' tool_choice needs the tool's 'name'")
        return self


class MessagesRequest(BaseModel):
    """``POST /v1/messages``."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[StrictStr, Field(min_length=1)]
    """Model alias from the gateway's ``model_list``."""
    max_tokens: Annotated[StrictInt, Field(ge=1)]
    """The most tokens the answer may have (required, as Anthropic requires it)."""
    messages: Annotated[list[Message], Field(min_length=1, max_length=MAX_MESSAGES)]
    """The conversation so far."""
    system: StrictStr | list[TextBlock] | None = None
    """The system prompt: text or text blocks (part of the cache scope)."""
    stream: StrictBool = False
    """Answer as Anthropic's server-sent events."""
    tools: list[Tool] | None = None
    """Tools the model may call (part of the cache scope)."""
    tool_choice: ToolChoice | None = None
    """How the model is to use the tools."""
    stop_sequences: list[StrictStr] | None = None
    """Texts that end the answer where they appear."""
    temperature: Annotated[float, Field(ge=0)] | None = None
    """Sampling temperature."""
    metadata: dict[str, Any] | None = None
    """``user_id`` is passed on as chat's ``user``."""
