"""litellm, imported once with the settings a gateway wants. Shared by the gateway's
upstream calls and the ``llm`` judge."""

from __future__ import annotations

import logging
import os
from types import ModuleType


def import_litellm() -> ModuleType:
    """litellm, offline-safe and quiet.

    litellm fetches its model price map from the internet at import unless told not to; the
    bundled copy is what a gateway wants (deterministic, offline): litellm reads that switch
    only from the environment, so it is set there (unless the user set it) before the first
    import.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    for name in LITELLM_LOGGERS:
        _one_handler(logging.getLogger(name))
    return litellm


LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")


def _one_handler(logger: logging.Logger) -> None:
    """litellm logs request kwargs (prompts included) at debug and routing lines at info on
    its own loggers; the gateway's rule is no prompt or answer text at info: warnings and up
    only. litellm also gives each logger a stderr handler of its own while the records still
    reach the root handler, so every line came out twice, once not in the process's format:
    its handlers go, their filters (secret redaction) stay, on the logger, where they see
    every record before any handler does."""
    logger.setLevel(logging.WARNING)
    for handler in list(logger.handlers):
        for found in handler.filters:
            if found not in logger.filters:
                logger.addFilter(found)
        logger.removeHandler(handler)


async def close_litellm_clients() -> None:
    """Close and forget the HTTP clients litellm keeps process-wide.

    litellm's own ``close_litellm_async_clients`` skips the ``openai.AsyncOpenAI`` clients it
    caches (they have ``close``, not ``aclose``), whose connections then leak when the event
    loop that opened them ends; close those too, then empty the cache so the next event loop
    (the next app in a test process) builds its own.
    """
    import openai

    litellm = import_litellm()
    await litellm.close_litellm_async_clients()
    cache = getattr(litellm.in_memory_llm_clients_cache, "cache_dict", {})
    for client in list(cache.values()):
        if isinstance(client, openai.AsyncOpenAI | openai.AsyncAzureOpenAI):
            await client.close()
    litellm.in_memory_llm_clients_cache.flush_cache()
