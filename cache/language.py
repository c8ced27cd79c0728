"""The language of a prompt: what keeps an embedder to the languages it reads
(``cache.language_check``) and a cohort of the FP rate.

The bundled all-MiniLM-L6-v2 is an English model: a French paraphrase of a cached English
prompt scored 0.359 while a French trap scored 0.741, and English-Spanish paraphrases 0.030.
Its similarity says nothing outside English (``cache.embedder_languages``).

Detection is py3langid (langid.py's bundled n-gram model, offline, no download) restricted
to ``LANGUAGES``: of 1,451 short English prompts of the development pair sets it read 1,438
as English and 13 as undetermined, none as another language (unrestricted, 12 were read as
Pidgin or Norwegian), and all 57 prompts of ``tests/fixtures/languages.tsv`` right, at
~40 us CPU a prompt, p99 ~220 us (``tests/bench/language.py``; langdetect: 97% and 52/57 at
~2 ms). The request path runs it only for semantic candidates over the threshold.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

LANGUAGES: tuple[str, ...] = (
    "en", "es", "fr", "de", "pt", "it", "nl", "ru", "zh", "ja", "ko", "ar", "hi", "pl",
    "tr", "sv", "da", "uk", "cs", "el", "he", "id", "vi", "th", "fa", "ro", "hu", "fi",
)  # fmt: skip
"""ISO 639-1 codes the detector chooses among (the widest-used languages: letting it choose
among all 97 of its model made it read some short English prompts as Pidgin)."""

LABELS: frozenset[str] = frozenset(LANGUAGES[:12])
"""Languages that are metric label values of their own; the rest are ``other``."""
OTHER = "other"
UNDETERMINED = "und"
"""Too little text to tell (fewer than ``MIN_LETTERS`` letters, or no language at
``MIN_CONFIDENCE``): never refused."""
MIN_LETTERS = 4
PREFIX = 512
"""Characters read: enough to tell a language, and a bound on the cost of a long prompt."""
MIN_CONFIDENCE = 0.6
"""Below this probability the text is ``UNDETERMINED``: a few words ("Explain recursion",
"Tokyo") are read as anything (French, at 0.31 and 0.11); every prompt of the fixture in a
language of its own scored >= 0.74."""


@functools.cache
def _identifier() -> LanguageIdentifier:
    """The model, loaded once per process on first use (read-only after loading)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))
    return identifier


def detect(text: str) -> str:
    """The language code of ``text`` (one of ``LANGUAGES``), or ``UNDETERMINED``; read from
    its first ``PREFIX`` characters."""
    return _detect(text[:PREFIX])


@functools.lru_cache(maxsize=4096)
def _detect(text: str) -> str:
    """Memoized: cached prompts come back on every hit, and the FP-rate cohorts read the
    same window of verdicts at each refresh."""
    if sum(c.isalpha() for c in text[:64]) < MIN_LETTERS:
        return UNDETERMINED
    code, probability = _identifier().classify(text)
    return str(code) if probability >= MIN_CONFIDENCE else UNDETERMINED


def label(code: str) -> str:
    """The metric label of a language code: itself for ``LABELS``, else ``other``."""
    return code if code in LABELS or code == UNDETERMINED else OTHER
