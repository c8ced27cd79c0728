"""Does a user message stand on its own, or does it lean on the turns before it?

The ``standalone`` context policy (``cache.keys``) keys a standalone last message like a
single-turn prompt (earlier turns are not in the scope: "How do I get a PAC code?" has one
answer whatever was said before) and a follow-up like ``last_user`` (every earlier turn must
match exactly: "cancel it" or "yes, go ahead" means what the history says). The test errs
towards "follow-up", the safe side (a follow-up only hits after the same history):

- at least ``MIN_WORDS`` words, ASCII only (the word lists are English; other text is a
  follow-up);
- no word that points back (``it``, ``that``, ``them``, ``then``, ``one``, ``instead``...;
  ``there`` only after ``is``/``are``/``was``/``were``, where it points nowhere);
- not opened by a word that continues a dialogue (``so``, ``and``, ``ok``, ``yes``...).

Written by hand: no library classifies a question as context-dependent offline. Measured on
the fow_cache conversation pairs (docs/cache.md).
"""

from __future__ import annotations

import re

MIN_WORDS = 4
"""Shorter messages ("book it", "the second one", "yes please") are follow-ups."""
POINTING = frozenset(
    "it its it's itself that that's this these those them they they're their theirs there "
    "then one ones him her he she his hers again instead too else same other another former "
    "latter above".split()
)
"""Words that refer to something said before (pronouns, demonstratives, 'instead')."""
CONTINUING = frozenset(
    "so and ok okay cool great yeah yes yep go also but fine right then no nope sure".split()
)
"""Opening words that answer or continue the previous turn."""
EXISTENTIAL = frozenset({"is", "are", "was", "were"})
"""``there`` after these ("is there a fee?") points nowhere."""
_WORD = re.compile(r"[a-z0-9']+")


def is_standalone(
    text: str, *, pointing: frozenset[str] = POINTING, continuing: frozenset[str] = CONTINUING
) -> bool:
    """Whether ``text`` reads as a question that needs none of the turns before it (the word
    lists are parameters so a benchmark can measure lists grown on part of its data)."""
    text = text.replace("\u2019", "'")  # a typographic apostrophe: "it\u2019s"
    if not text.isascii():
        return False
    words = _WORD.findall(text.lower())
    if len(words) < MIN_WORDS or words[0] in continuing:
        return False
    return not any(
        word in pointing and not (word == "there" and index and words[index - 1] in EXISTENTIAL)
        for index, word in enumerate(words)
    )
