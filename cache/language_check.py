"""``LanguageCheck``: no semantic hit between prompts in a language the embedder does not
read (``cache.embedder_languages``). The bundled English model scored a French paraphrase of
a cached English prompt 0.359 and a French trap 0.741: its similarity says nothing there.
Exact repeats are still served (checks see only semantic candidates); detection costs tens
of microseconds a prompt (``cache.language``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from cache.language import UNDETERMINED, detect
from cache.policy import Check


class LanguageCheck(Check):
    """Refuses a semantic hit when either prompt is in a language the embedder does not
    cover (``cache.embedder_languages``)."""

    name = "language"

    def __init__(self, languages: Iterable[str]) -> None:
        self.languages = frozenset(languages) | {UNDETERMINED}

    async def open(self) -> None:
        """Load the detector's model off the event loop (~1-3 s, once per process)."""
        await asyncio.to_thread(detect, "warm up the language model")

    def covers(self, text: str) -> bool:
        """Whether the embedder reads ``text``'s language."""
        return detect(text) in self.languages

    async def refuses(self, cached_prompt: str, new_prompt: str, similarity: float) -> bool:
        return not (self.covers(new_prompt) and self.covers(cached_prompt))
