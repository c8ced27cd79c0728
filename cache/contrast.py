"""Offline contrast checks: do two prompts that look alike ask for the same thing?

Embedding similarity is blind to the one-word edits that change an answer ("Cancel my
subscription" / "Don't cancel my subscription", "at 55" / "at 50", "Windows" / "macOS").
These rules look only for such edits, each a named check with its evidence:

- ``negation``: negation cues in one prompt and not the other, an antonym swapped in
  (``turn on`` / ``turn off``, ``most`` / ``least``), or a negating prefix (``safe`` / ``unsafe``);
- ``number``: different numbers, times, dates, months, weekdays or number words;
- ``entity``: a named thing (capitalized or mixed-case word) on each side that the other lacks,
  or the same named things in another order ("from MySQL to Postgres" / "from Postgres to MySQL");
- ``scope``: a swapped audience, place or period word (``home`` / ``abroad``,
  ``full-time`` / ``part-time``, ``within`` / ``after``).

No model, no network: usable on the request path. Written by hand because no library checks
prompt pairs for these edits; the word lists are the rules and grow with the labels.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from cache.policy import Check


def _pairs(text: str) -> list[tuple[str, str]]:
    """``"on/off in/out"`` -> ``[("on", "off"), ("in", "out")]``."""
    return [(a, b) for a, _, b in (item.partition("/") for item in text.split())]


NEGATION_CUES = frozenset(
    "not no never without cannot none nobody nothing nowhere neither nor dont doesnt didnt "
    "isnt arent wasnt werent wont wouldnt cant couldnt shouldnt havent hasnt".split()
)
# Pairs whose swap turns a question into another one. Both directions are checked.
ANTONYMS = _pairs(
    """
    on/off in/out include/exclude included/excluded includes/excludes most/least more/less
    more/fewer max/min maximum/minimum highest/lowest higher/lower enable/disable
    enabled/disabled allow/block allowed/banned add/remove join/leave enrol/withdraw
    enroll/withdraw subscribe/unsubscribe accept/reject accept/decline approve/reject
    approve/deny buy/sell increase/decrease raise/lower before/after above/below over/under
    open/closed open/close opens/closes start/stop start/end starts/ends begin/end
    arrive/depart arrival/departure arrivals/departures import/export upload/download
    encrypt/decrypt lock/unlock activate/deactivate connect/disconnect always/never
    earliest/latest early/late first/last cheapest/dearest cheapest/priciest cheap/expensive
    hot/cold hottest/coldest warm/cold fast/slow fastest/slowest win/lose pass/fail
    credit/debit deposit/withdraw deposit/withdrawal income/expenses profit/loss borrow/lend
    upgrade/downgrade overpaid/underpaid overpay/underpay overcharged/undercharged
    inside/outside indoor/outdoor indoors/outdoors public/private full/empty safe/dangerous
    legal/illegal increase/reduce gain/lose with/without same/different true/false yes/no
    send/receive sent/received push/pull give/take plus/minus up/down north/south east/west
    left/right top/bottom best/worst better/worse old/new older/newer oldest/newest
    long/short longest/shortest large/small largest/smallest big/small biggest/smallest
    heavy/light increase/cut apply/cancel install/uninstall mount/unmount pause/resume
    hide/show mute/unmute follow/unfollow block/unblock freeze/unfreeze lowest/highest
    minimum/maximum sunrise/sunset eat/avoid take/avoid use/avoid benefits/drawbacks
    benefits/downsides benefits/risks advantages/disadvantages pros/cons cover/exclude
    covered/excluded add/take increased/decreased increase/less increase/smaller
    compulsory/optional mandatory/optional required/optional approved/rejected
    approved/refused allow/ban allowed/prohibited grant/revoke spicy/mild busy/quiet
    improve/damage legally/illegal lawfully/illegal lawful/unlawful fair/unfair
    outstanding/inadequate good/bad pass/fail valid/invalid succeed/fail success/failure
    positive/negative healthy/unhealthy
    """
)
# Words of one kind: two different ones across the prompts means two different things.
KINDS = [
    frozenset("red orange yellow green blue purple pink black white grey gray brown".split()),
    frozenset("men women mens womens male female boys girls".split()),
]
SCOPE_PAIRS = _pairs(
    """
    home/abroad home/away domestic/international home/international local/international
    national/international full-time/part-time fulltime/parttime permanent/temporary
    within/after during/after during/before weekday/weekend weekdays/weekends peak/off-peak
    single/return one-way/return adult/child adults/children adult/children students/staff
    student/staff employee/contractor employees/contractors homeowner/tenant
    homeowners/tenants landlord/tenant owner/tenant buyer/seller personal/business
    new/existing member/non-member members/non-members resident/non-resident
    residents/non-residents online/in-store online/in-person first-time/repeat private/nhs
    urgent/routine manual/automatic individual/group individuals/groups monthly/annual
    monthly/yearly daily/weekly weekly/monthly morning/evening day/night today/tomorrow
    today/yesterday students/nonprofits students/pensioners students/seniors home/work
    car/van lunch/dinner breakfast/dinner iphone/android android/ios mobile/desktop
    laptop/desktop
    """
)
NEGATING_PREFIXES = ("un", "non", "non-", "dis", "in", "im", "il", "ir", "mis")
MONTHS = frozenset(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec".split()
)
WEEKDAYS = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday mon tue wed thu fri sat sun".split()
)
NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
ORDINALS = frozenset("first second third fourth fifth sixth seventh eighth ninth tenth".split())
# Capitalized words that are not names: sentence openers, pronouns, question words.
NOT_NAMES = frozenset(
    "i i'm i've i'd i'll what what's whats how when where which who whom whose why is are "
    "can could do does did should would will may might must hello hi hey please thanks so "
    "and or but if the a an my our your their his her its this that these those just ok "
    "okay uh um also still".split()
)

_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*[A-Za-z]|[A-Za-z]")
_NUMBER = re.compile(r"[£$€]?\d+(?:[.,:]\d+)*(?:\s?(?:am|pm|%|k|m|st|nd|rd|th))?", re.IGNORECASE)


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


def _lower(text: str) -> list[str]:
    return [w.lower().replace("'", "") for w in _words(text)]


def _negations(tokens: list[str]) -> int:
    return sum(1 for t in tokens if t in NEGATION_CUES or (t.endswith("nt") and t[:-2] in {
        "do", "does", "did", "is", "are", "was", "were", "wo", "would", "ca", "could",
        "should", "have", "has", "must", "need"}))  # fmt: skip


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


def _numbers(text: str, tokens: list[str]) -> Counter[str]:
    found: Counter[str] = Counter(re.sub(r"[\s,£$€]", "", n.lower()) for n in _NUMBER.findall(text))
    for token in tokens:
        if token in NUMBER_WORDS:
            found[NUMBER_WORDS[token]] += 1
        elif token in MONTHS or token in WEEKDAYS or token in ORDINALS:
            found[token[:3]] += 1
    return found


def _number(a_text: str, a: list[str], b_text: str, b: list[str]) -> str | None:
    left, right = _numbers(a_text, a), _numbers(b_text, b)
    if left != right and left and right:
        return f"{' '.join(sorted(left))} / {' '.join(sorted(right))}"
    return None


def _names(text: str) -> list[str]:
    """Capitalized or mixed-case words that are not sentence openers or function words."""
    names = []
    for sentence in re.split(r"(?<=[.?!])\s+", text):
        words = _words(sentence)
        shouting = sum(w.isupper() for w in words) > len(words) / 2
        for position, word in enumerate(words):
            if shouting or word.lower().replace("'", "") in NOT_NAMES:
                continue
            mixed = any(c.isupper() for c in word[1:])
            if (position > 0 and word[0].isupper()) or mixed:
                names.append(word.lower())
    return names


def _stem(word: str) -> str:
    """``australia`` for ``australia's``, ``sunday`` for ``sundays``: how names are compared."""
    word = word.removesuffix("'s").removesuffix("s'")
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


_FROM_TO = re.compile(
    r"\bfrom (?:my |the |a )?(.+?) (?:to|into|onto) (?:my |the |a )?(.+?)(?:[?.!,]|$)"
)


def _entity(a_text: str, a: list[str], b_text: str, b: list[str]) -> str | None:
    left_names = [_stem(n) for n in _names(a_text)]
    right_names = [_stem(n) for n in _names(b_text)]
    a_stems, b_stems = {_stem(t) for t in a}, {_stem(t) for t in b}
    only_left = [n for n in left_names if n not in b_stems]
    only_right = [n for n in right_names if n not in a_stems]
    if only_left and only_right:
        return f"{' '.join(only_left)} / {' '.join(only_right)}"
    if (
        len(left_names) > 1
        and sorted(left_names) == sorted(right_names)
        and left_names != right_names
    ):
        return f"order: {' '.join(left_names)} / {' '.join(right_names)}"
    moves = [_FROM_TO.search(text.lower()) for text in (a_text, b_text)]
    if moves[0] and moves[1]:
        (source_a, target_a), (source_b, target_b) = moves[0].groups(), moves[1].groups()
        if source_a == target_b and target_a == source_b:
            return f"direction: {source_a} -> {target_a} / {source_b} -> {target_b}"
    for kind in KINDS:
        left, right = set(a) & kind, set(b) & kind
        if left and right and left != right:
            return f"{' '.join(sorted(left))} / {' '.join(sorted(right))}"
    return None


def _scope(a: list[str], b: list[str]) -> str | None:
    return _swapped(set(a), set(b), _SCOPE_INDEX)


def contrasts(cached_prompt: str, new_prompt: str) -> list[Contrast]:
    """Every check on which the two prompts disagree (empty: none found)."""
    a, b = _lower(cached_prompt), _lower(new_prompt)
    found = []
    for check, evidence in (
        ("negation", _negation(a, b)),
        ("number", _number(cached_prompt, a, new_prompt, b)),
        ("entity", _entity(cached_prompt, a, new_prompt, b)),
        ("scope", _scope(a, b)),
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
