"""Offline contrast checks: do two prompts that look alike ask for the same thing?

Embedding similarity is blind to the one-word edits that change an answer ("Cancel my
subscription" / "Don't cancel my subscription", "at 55" / "at 50", "Windows" / "macOS").
These rules look only for such edits, each a named check with its evidence:

- ``negation``: negation cues in one prompt and not the other, an antonym swapped in
  (``turn on`` / ``turn off``, ``most`` / ``least``), or a negating prefix (``safe`` / ``unsafe``);
- ``number``: different numbers, times, dates, months, weekdays or number words
  (``cache.contrast_numbers``);
- ``entity``: a named thing (capitalized or mixed-case word) on each side that the other lacks
  in any of its short forms (``JS`` is ``JavaScript``), or two named things swapped ("from
  MySQL to Postgres" / "from Postgres to MySQL");
- ``scope``: a swapped audience, place or period word (``home`` / ``abroad``,
  ``full-time`` / ``part-time``, ``within`` / ``after``).

No model, no network: usable on the request path. Written by hand because no library checks
prompt pairs for these edits; the word lists (``cache.contrast_words``) are the rules and
grow with the labels. Words are compared in one spelling (lower case, no apostrophes), so no
prompt contrasts with itself.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from cache.contrast_numbers import numbers
from cache.contrast_words import (
    ALIASES,
    ANTONYMS,
    DIRECTIONAL,
    FILLERS,
    KINDS,
    NEGATING_PREFIXES,
    NEGATION_CUES,
    NOT_NAMES,
    POLITE_NEGATIONS,
    SCOPE_PAIRS,
    SYMMETRIC,
)
from cache.policy import Check

_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*[A-Za-z]|[A-Za-z]")


def _index(pairs: list[tuple[str, str]]) -> dict[str, set[str]]:
    """Each word -> the words it contrasts with, both directions."""
    index: dict[str, set[str]] = {}
    for left, right in pairs:
        index.setdefault(left, set()).add(right)
        index.setdefault(right, set()).add(left)
    return index


_PAIR_INDEX = _index(ANTONYMS)
_SCOPE_INDEX = _index(SCOPE_PAIRS)


@dataclass(frozen=True)
class Contrast:
    """One reason the two prompts ask different things."""

    check: str
    """``negation``, ``number``, ``entity`` or ``scope``."""
    evidence: str
    """The words that differ, for the verdict's reason."""


def _words(text: str) -> list[str]:
    return [w.replace("\u2019", "'") for w in _WORD.findall(text)]


def _plain(word: str) -> str:
    """How words are compared: lower case, no apostrophes (``i'm`` -> ``im``)."""
    return word.lower().replace("'", "")


def _sentences(text: str) -> list[list[str]]:
    """The words as written, per sentence (together, the words of the whole text)."""
    return [_words(sentence) for sentence in re.split(r"(?<=[.?!])\s+", text)]


_NT_STEMS = frozenset(
    "do does did is are was were wo would ca could should have has must need".split()
)


def _negations(tokens: list[str]) -> int:
    """Negation cues, those that only soften a request ("don't mind") left out."""
    return sum(
        1
        for t, after in zip(tokens, [*tokens[1:], ""][: len(tokens)], strict=True)
        if (t in NEGATION_CUES or (t.endswith("nt") and t[:-2] in _NT_STEMS))
        and (t, after) not in POLITE_NEGATIONS
    )


def _swapped(left: set[str], right: set[str], index: dict[str, set[str]]) -> str | None:
    for word in left - right:
        for other in index.get(word, ()):
            if other in right and other not in left:
                return f"{word} / {other}"
    return None


def _negation(a: list[str], b: list[str]) -> str | None:
    if (_negations(a) % 2) != (_negations(b) % 2):
        return "negated in one prompt only"
    left, right = set(a), set(b)
    swap = _swapped(left, right, _PAIR_INDEX)
    if swap:
        return swap
    for word in right - left:
        base = _negated_base(word)
        if base is not None and base in left:
            return f"{base} / {word}"
    for word in left - right:
        base = _negated_base(word)
        if base is not None and base in right:
            return f"{word} / {base}"
    return None


def _negated_base(word: str) -> str | None:
    """``safe`` for ``unsafe``: the word a negating prefix was put before (4+ letters)."""
    for prefix in NEGATING_PREFIXES:
        if word.startswith(prefix) and len(word) - len(prefix) >= 4:
            return word[len(prefix) :]
    return None


def _number(a: _Prompt, b: _Prompt) -> str | None:
    left = numbers(a.text, a.sentences, a.tokens)
    right = numbers(b.text, b.sentences, b.tokens)
    if left != right and left and right:
        return f"{' '.join(sorted(left))} / {' '.join(sorted(right))}"
    return None


def _names(sentences: list[list[str]]) -> list[tuple[int, str]]:
    """Capitalized or mixed-case words that are not sentence openers or function words, each
    with its place among the prompt's tokens, spelled as the tokens are."""
    names = []
    index = 0
    for words in sentences:
        if sum(w.isupper() for w in words) <= len(words) / 2:  # else shouting: no names
            for position, word in enumerate(words):
                capitalized = position > 0 and word[0].isupper()
                if capitalized or not word[1:].islower():  # mixed case: "iPhone", "macOS"
                    plain = _plain(word)
                    if plain not in NOT_NAMES and (capitalized or word[1:] != word[1:].lower()):
                        names.append((index + position, plain))
        index += len(words)
    return names


def _stem(word: str) -> str:
    """``australia`` for ``australia's``, ``sunday`` for ``sundays``: how names are compared."""
    word = word.removesuffix("'s").removesuffix("s'")
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


_FROM_TO = re.compile(
    r"\bfrom (?:my |the |an? |our |your )?(.+?) (?:to|into|onto) (?:my |the |an? |our |your )?"
    r"(.+?)(?:[?.!,;]|$)"
)
_ALIASES = {_stem(w): frozenset(_stem(a) for a in group) for w, group in ALIASES.items()}


@dataclass(frozen=True)
class _Prompt:
    """One prompt as the rules read it."""

    text: str
    sentences: list[list[str]]
    """Its words as written, per sentence."""
    tokens: list[str]
    """The same words in one list, compared spelling (``_plain``)."""
    names: list[tuple[int, str]]
    """Its names, stemmed, with their place in ``tokens``."""
    stems: frozenset[str]
    """Every token, stemmed."""

    @classmethod
    def read(cls, text: str) -> _Prompt:
        sentences = _sentences(text)
        tokens = [_plain(w) for words in sentences for w in words]
        names = [(at, _stem(name)) for at, name in _names(sentences)]
        return cls(text, sentences, tokens, names, frozenset(_stem(t) for t in tokens))

    def around(self, at: int) -> tuple[str, str]:
        """The words left and right of ``tokens[at]`` ("" at either end)."""
        return (self.tokens[at - 1] if at > 0 else "", "".join(self.tokens[at + 1 : at + 2]))

    def says(self, name: str) -> bool:
        """Whether the prompt names ``name``, in any of its short forms ("JS", "JavaScript")."""
        return name in self.stems or bool(_ALIASES.get(name, frozenset()) & self.stems)


def _order(a: _Prompt, b: _Prompt) -> str | None:
    """The same names, two of them swapped: around the same directional word ("from MySQL
    to Postgres", "Python faster than Java"), or each taking the other's neighbour ("in
    French service ... British frigates"). Not reordered clauses ("VAT when selling to the
    EU" / "When selling to the EU, ... VAT"), nor names joined by "and", "or", "vs"."""
    left, right = [n for _, n in a.names], [n for _, n in b.names]
    if len(left) < 2 or sorted(left) != sorted(right) or left == right:
        return None
    at_a = {n: i for i, n in reversed(a.names)}
    at_b = {n: i for i, n in reversed(b.names)}
    for x, y in itertools.permutations(at_a, 2):
        if not at_a[x] < at_a[y] or not at_b[y] < at_b[x]:
            continue
        span_a, span_b = a.tokens[at_a[x] + 1 : at_a[y]], b.tokens[at_b[y] + 1 : at_b[x]]
        if not set(span_a + span_b) - SYMMETRIC:
            continue
        directed = len(span_a) <= 4 and len(span_b) <= 4 and set(span_a) & set(span_b) & DIRECTIONAL
        if directed or _took_place(b.around(at_b[x]), a.around(at_a[y]), a.around(at_a[x])):
            return f"order: {' '.join(left)} / {' '.join(right)}"
    return None


def _took_place(moved: tuple[str, str], other: tuple[str, str], own: tuple[str, str]) -> bool:
    """Whether a name's neighbours (left, right) now are another name's, not its own."""
    return any(
        word and word not in FILLERS and word == was and word != mine
        for word, was, mine in zip(moved, other, own, strict=True)
    )


def _direction(a: _Prompt, b: _Prompt) -> str | None:
    """ "from checking to savings" / "from savings to checking", words after the target
    or not ("... to savings today")."""
    moves = [_FROM_TO.search(p.text.lower()) for p in (a, b)]
    if not (moves[0] and moves[1]):
        return None
    (source_a, target_a), (source_b, target_b) = moves[0].groups(), moves[1].groups()

    def starts(target: str, source: str) -> bool:
        return target.split()[: len(source.split())] == source.split()

    if source_a != source_b and starts(target_b, source_a) and starts(target_a, source_b):
        return f"direction: {source_a} -> {target_a} / {source_b} -> {target_b}"
    return None


def _entity(a: _Prompt, b: _Prompt) -> str | None:
    only_left = [n for _, n in a.names if not b.says(n)]
    only_right = [n for _, n in b.names if not a.says(n)]
    if only_left and only_right:
        return f"{' '.join(only_left)} / {' '.join(only_right)}"
    found = _order(a, b) or _direction(a, b)
    if found:
        return found
    for kind in KINDS:
        left, right = set(a.tokens) & kind, set(b.tokens) & kind
        if left and right and left != right:
            return f"{' '.join(sorted(left))} / {' '.join(sorted(right))}"
    return None


def _scope(a: list[str], b: list[str]) -> str | None:
    return _swapped(set(a), set(b), _SCOPE_INDEX)


def contrasts(cached_prompt: str, new_prompt: str) -> list[Contrast]:
    """Every check on which the two prompts disagree (empty: none found)."""
    a, b = _Prompt.read(cached_prompt), _Prompt.read(new_prompt)
    found = []
    for check, evidence in (
        ("negation", _negation(a.tokens, b.tokens)),
        ("number", _number(a, b)),
        ("entity", _entity(a, b)),
        ("scope", _scope(a.tokens, b.tokens)),
    ):
        if evidence is not None:
            found.append(Contrast(check, evidence))
    return found


class ContrastCheck(Check):
    """The contrast guard (``cache.contrast_guard``): refuses a semantic hit when the two
    prompts disagree on negation, numbers, names or scope (~40 us a hit)."""

    name = "contrast"

    async def refuses(self, cached_prompt: str, new_prompt: str, similarity: float) -> bool:
        return bool(contrasts(cached_prompt, new_prompt))
