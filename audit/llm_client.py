"""litellm, imported once with the settings a gateway wants. Shared by the gateway's
upstream calls and the ``llm`` judge."""

from __future__ import annotations

import logging
import os
from types import ModuleType


def import_litellm() -> ModuleType:
    """litellm, offline-safe and quiet.

    litellm fetches its model price map from the internet at import unless told not to; the
    bundled copy is what a gateway wants (deterministic, offline). This is the one write to
    ``os.environ`` in the project, made before the first import.
    """
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    # litellm logs request kwargs (prompts included) at debug and routing lines at info on its
    # own loggers; the gateway's rule is no prompt or answer text at info.
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return litellm
