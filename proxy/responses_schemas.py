"""The request model of ``POST /v1/responses`` (OpenAI's Responses API): validation only.

The gateway checks what it must understand to decide between the cache and the upstream's
own Responses API (``model``, ``input``, ``stream`` and the fields that reference server-side
state); the rest is checked where it is translated (``proxy.responses_wire``), and fields it
does not know are kept.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

from proxy.errors import InvalidRequest
from proxy.schemas import MAX_MESSAGES

InputItem = dict[str, Any]


def responses_limits(body: dict[str, Any]) -> None:
    """The route's counts, checked on the parsed body before the model
    (``proxy.wire.Limits``): at most ``MAX_MESSAGES`` input items, as the chat route's
    messages."""
    items = body.get("input")
    if isinstance(items, list) and len(items) > MAX_MESSAGES:
        raise InvalidRequest(
            f"Invalid 'input': at most {MAX_MESSAGES} items, not {len(items)}",
            param="input",
            code="too_many_messages",
        )


class ResponsesRequest(BaseModel):
    """``POST /v1/responses``."""

    model_config = ConfigDict(extra="allow")

    model: Annotated[StrictStr, Field(min_length=1)]
    """Model alias from the gateway's ``model_list``."""
    input: StrictStr | list[InputItem]
    """Text, or input items (messages, function calls and their outputs...)."""
    instructions: StrictStr | None = None
    """A system (developer) message put before the input."""
    stream: StrictBool = False
    """Answer as the Responses API's server-sent events."""
    store: StrictBool | None = None
    """``true``: the upstream stores the response (passed through, not cached)."""
    background: StrictBool | None = None
    """``true``: run in the upstream's background (passed through, not cached)."""
    previous_response_id: Annotated[StrictStr, Field(min_length=1)] | None = None
    """Continue a response the upstream stored (passed through, not cached)."""
    conversation: StrictStr | dict[str, Any] | None = None
    """A conversation the upstream stores (passed through, not cached)."""
    tools: list[dict[str, Any]] | None = None
    """Tools the model may call."""

    @field_validator("input", mode="before")
    @classmethod
    def _some_input(cls, value: Any) -> Any:
        if not isinstance(value, str | list) or not value:
            raise ValueError("must be a non-empty string or a non-empty array of input items")
        if isinstance(value, list) and not all(isinstance(item, dict) for item in value):
            raise ValueError("every input item must be an object")
        return value

    @property
    def stateful(self) -> bool:
        """Whether the request reads or writes the upstream's stored state, so that only the
        upstream's own Responses API can answer it."""
        return (
            self.previous_response_id is not None
            or self.conversation is not None
            or self.background is True
            or self.store is True
        )
