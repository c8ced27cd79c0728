"""litellm as the gateway imports it: quiet below WARNING, each of its lines once and in the
process's own format, its secret redaction kept."""

from __future__ import annotations

import logging

import pytest

from audit.llm_client import LITELLM_LOGGERS, import_litellm


def test_litellm_logs_once_through_the_process_handler_with_redaction_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import_litellm()
    for name in LITELLM_LOGGERS:
        logger = logging.getLogger(name)
        assert logger.handlers == [], f"{name} still writes on its own handler"
        assert logger.level == logging.WARNING and logger.propagate
        assert any(type(f).__name__ == "SecretRedactionFilter" for f in logger.filters)
    secret = "sk-proj-" + "a1B2c3D4e5" * 4
    with caplog.at_level(logging.INFO):
        logging.getLogger("LiteLLM").info("routing chatter")
        logging.getLogger("LiteLLM").warning("upstream refused the key %s", secret)
    messages = [r.getMessage() for r in caplog.records if r.name == "LiteLLM"]
    assert len(messages) == 1  # the INFO line is dropped; the warning arrives once
    assert secret not in messages[0] and "upstream refused the key" in messages[0]


@pytest.mark.parametrize("name", [*LITELLM_LOGGERS, "LiteLLM Proxy.child"])
def test_litellm_records_above_debug_keep_logger_level_and_exception_type_only(
    name: str,
) -> None:
    """The process handler's filter (``proxy.logs``): litellm's errors quote what the
    upstream said, an echoed prompt or an unreadable answer."""
    from proxy.logs import _Withheld

    try:
        raise ValueError("upstream said: MY-PRIVATE-PROMPT")
    except ValueError as exc:
        record = logging.LogRecord(
            name, logging.ERROR, __file__, 1, "failed: %s", (exc,), (type(exc), exc, None)
        )
    assert _Withheld().filter(record)
    assert record.getMessage() == f"{name} ERROR (ValueError): text withheld"
    assert record.exc_info is None and record.__dict__["error_type"] == "ValueError"
    debug = logging.LogRecord(name, logging.DEBUG, __file__, 1, "prompt %s", ("kept",), None)
    assert _Withheld().filter(debug) and debug.getMessage() == "prompt kept"
    ours = logging.LogRecord("vetcache.x", logging.ERROR, __file__, 1, "kept %s", ("x",), None)
    assert _Withheld().filter(ours) and ours.getMessage() == "kept x"
