"""Which answers become entries (``cache.admission``): complete answers that say something,
from the alias asked for."""

from __future__ import annotations

from typing import Any

import pytest

from cache.admission import admissible
from cache.replay import assemble, replay
from cache.settings import CacheSettings

BODY = {"model": "alias", "messages": [{"role": "user", "content": "Capital of France?"}]}


def answer(finish: str | None = "stop", **message: Any) -> dict[str, Any]:
    return {
        "id": "c1",
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris.", **message},
                "finish_reason": finish,
            }
        ],
    }


CALL = {"name": "lookup", "arguments": "{}"}
TOOL_CALL = {"id": "t1", "type": "function", "function": CALL}


@pytest.mark.parametrize(
    ("completion", "ok"),
    [
        pytest.param(answer(), True, id="plain"),
        pytest.param(answer(None), False, id="finish-null"),
        pytest.param(answer("length"), False, id="length"),
        pytest.param(answer("content_filter"), False, id="content-filter"),
        pytest.param(answer(content=""), False, id="empty"),
        pytest.param(answer(content=" \n "), False, id="blank"),
        pytest.param(answer(content=None), False, id="no-content"),
        pytest.param(answer(content=None, refusal="I can't help with that."), False, id="refusal"),
        pytest.param(answer(refusal="I can't."), False, id="refusal-with-content"),
        pytest.param(answer(content=None, function_call=CALL), False, id="function-call-stop"),
        pytest.param(
            answer("function_call", content=None, function_call=CALL), False, id="function-call"
        ),
        pytest.param(
            answer("tool_calls", content=None, tool_calls=[TOOL_CALL]), False, id="tool-calls"
        ),
        pytest.param({"choices": []}, False, id="no-choice"),
        pytest.param(
            {"choices": [{"finish_reason": "stop", "message": "x"}]}, False, id="malformed"
        ),
    ],
)
def test_only_complete_answers_that_say_something_are_admitted(
    completion: dict[str, Any], ok: bool
) -> None:
    assert admissible(CacheSettings(), BODY, completion) is ok


def test_settings_allow_refusals_and_calls_but_never_empty_answers() -> None:
    allowing = CacheSettings(admit_refusals=True, admit_tool_calls=True)
    assert admissible(allowing, BODY, answer(content=None, refusal="I can't."))
    assert admissible(allowing, BODY, answer("function_call", content=None, function_call=CALL))
    assert admissible(allowing, BODY, answer("tool_calls", content=None, tool_calls=[TOOL_CALL]))
    assert not admissible(allowing, BODY, answer(content=""))
    assert not admissible(allowing, BODY, answer("length", content=None, function_call=CALL))


def test_a_fallback_models_answer_is_not_admitted_unless_allowed() -> None:
    assert admissible(CacheSettings(), BODY, answer(), answered_by="alias")
    assert admissible(CacheSettings(), BODY, answer(), answered_by=None)  # not reported
    assert not admissible(CacheSettings(), BODY, answer(), answered_by="backup")
    assert admissible(CacheSettings(admit_fallbacks=True), BODY, answer(), answered_by="backup")


@pytest.mark.parametrize(
    "message",
    [
        {"content": None, "refusal": "I can't help with that."},
        {"content": None, "function_call": CALL},
    ],
)
def test_streams_keep_refusals_and_function_calls(message: dict[str, Any]) -> None:
    """A streamed refusal or legacy call assembles into what admission can tell apart."""
    completion = answer(**message)
    again = assemble(list(replay(completion)))
    assert again is not None
    assert again["choices"][0]["message"] == completion["choices"][0]["message"] | {
        "role": "assistant"
    }
    assert not admissible(CacheSettings(), BODY, again)
