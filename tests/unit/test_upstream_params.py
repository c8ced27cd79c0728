"""What a client may send never becomes one of litellm's own control parameters."""

from __future__ import annotations

from proxy.litellm_lane import CHAT_PARAMS, split_params


def test_openai_params_pass_as_kwargs_and_unknown_ones_in_extra_body() -> None:
    body = {
        "model": "m",
        "messages": [],
        "stream": True,
        "temperature": 0.2,
        "tools": [{"type": "function"}],
        "vendor_knob": 7,
    }
    kwargs = split_params(body, CHAT_PARAMS)
    assert kwargs == {
        "temperature": 0.2,
        "tools": [{"type": "function"}],
        "extra_body": {"vendor_knob": 7},
    }


def test_litellm_control_params_from_clients_are_only_extra_body() -> None:
    hostile = {
        "api_key": "sk-stolen",
        "api_base": "http://attacker.invalid",
        "base_url": "http://attacker.invalid",
        "num_retries": 50,
        "mock_response": "pwned",
        "metadata": {"x": 1},
        "custom_llm_provider": "anthropic",
    }
    kwargs = split_params({"model": "m", "messages": [], **hostile}, CHAT_PARAMS)
    assert set(kwargs) == {"extra_body"}
    assert kwargs["extra_body"] == hostile
