"""The numbers a prompt names, for the contrast rules' ``number`` check (``cache.contrast``):
digits with their unit (``6pm``, ``15%``, ``5k``, ``1st``), number words, months, weekdays,
ordinals, and Roman numerals after a name ("World War I"). Each in one spelling, so that
"15 percent" and "15%" or "World War 1" and "World War I" are the same number."""

from __future__ import annotations

import re
from collections import Counter

from cache.contrast_words import (
    MONTHS,
    NOT_NAMES,
    NUMBER_WORDS,
    ONE_PRONOUN_AFTER,
    ONE_PRONOUN_BEFORE,
    ORDINALS,
    ROMAN_NUMERALS,
    WEEKDAYS,
)

# A unit is part of the number only as a whole word ("404 mean" is 404, "2024 standard" 2024).
_NUMBER = re.compile(
    r"[£$€]?\d+(?:[.,:]\d+)*"
    r"(?:\s?(?:am|pm|k|m)\b|\s?(?:%|percent\b|per cent\b|pct\b)|(?:st|nd|rd|th)\b)?",
    re.IGNORECASE,
)
_PERCENT = re.compile(r"(?:percent|pct)$")


def _spelled(number: str) -> str:
    plain = re.sub(r"[\s,£$€]", "", number.lower())
    return _PERCENT.sub("%", plain)


def _is_pronoun(tokens: list[str], index: int) -> bool:
    """Whether ``tokens[index]`` (``one``) is the pronoun: "which one", "one of them"."""
    before = tokens[index - 1] if index > 0 else ""
    after = tokens[index + 1] if index + 1 < len(tokens) else ""
    return before in ONE_PRONOUN_AFTER or after in ONE_PRONOUN_BEFORE


def _roman(sentences: list[list[str]]) -> list[str]:
    """Roman numerals right after a name ("World War I", "Henry VIII"); "I" only after a
    name that does not open the sentence, since "Can I" or "Today I" is the pronoun."""
    found = []
    for words in sentences:
        if sum(w.isupper() for w in words) > len(words) / 2:
            continue  # shouting: capitals say nothing
        for position in range(1, len(words)):
            word, before = words[position], words[position - 1]
            plain = before.lower().replace("'", "")
            if (
                word in ROMAN_NUMERALS
                and (word != "I" or position >= 2)
                and before[0].isupper()
                and plain not in NOT_NAMES
                and plain not in MONTHS
                and plain not in WEEKDAYS
            ):
                found.append(ROMAN_NUMERALS[word])
    return found


def numbers(text: str, sentences: list[list[str]], tokens: list[str]) -> Counter[str]:
    """Each number ``text`` names, in one spelling, with how often. ``sentences`` are its
    words as written, per sentence; ``tokens`` the same words lower-cased, in one list."""
    found: Counter[str] = Counter(_spelled(n) for n in _NUMBER.findall(text))
    for index, word in enumerate(tokens):
        if word in NUMBER_WORDS:
            if word != "one" or not _is_pronoun(tokens, index):
                found[NUMBER_WORDS[word]] += 1
        elif word in MONTHS or word in WEEKDAYS or word in ORDINALS:
            found[word[:3]] += 1
    found.update(_roman(sentences))
    return found
