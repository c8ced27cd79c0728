"""The contrast rules' word lists (``cache.contrast``): the rules are these lists, and they
grow with the labels. Words are compared lower-cased with apostrophes removed (``dont``,
``obrien``), the way ``cache.contrast`` reads a prompt."""

from __future__ import annotations


def _pairs(text: str) -> list[tuple[str, str]]:
    """``"on/off in/out"`` -> ``[("on", "off"), ("in", "out")]``."""
    return [(a, b) for a, _, b in (item.partition("/") for item in text.split())]


# "without" is not one: "without eating first" asks what "on an empty stomach" asks; the
# with/without antonym pair still tells "with a visa" from "without a visa".
NEGATION_CUES = frozenset(
    "not no never cannot none nobody nothing nowhere neither nor dont doesnt didnt "
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
    within/after within/outside within/beyond during/after during/before weekday/weekend
    weekdays/weekends peak/off-peak
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
    word.replace("'", "")
    for word in "i i'm i've i'd i'll what what's how when where which who whom whose why is are "
    "can could do does did should would will may might must hello hi hey please thanks so "
    "and or but if the a an my our your their his her its this that these those just ok "
    "okay uh um also still".split()
)
# Negation cues that only soften a request: "If you don't mind, ...", "I'm not sure how...".
# Each is (cue, the word after it).
POLITE_NEGATIONS = frozenset(
    (cue, after)
    for cue, _, after in (
        item.partition("+")
        for item in "dont+mind not+mind wouldnt+mind not+sure no+worries no+problem".split()
    )
)
# Words that connect two names either way round: "Python and Java" is "Java and Python".
SYMMETRIC = frozenset("and or vs versus with between plus nor".split())
# Words that give two names a direction: "from A to B", "A faster than B", "A over B".
DIRECTIONAL = frozenset("to into onto than from over instead towards toward".split())
# Neighbours too common to tell which name stands where ("the", "of").
FILLERS = frozenset("the a an my your our their his her its this that of".split())
# Short forms of one name: a word of a group stands for any other of the group.
ALIAS_GROUPS = [
    frozenset(group.split())
    for group in (
        "js javascript",
        "ts typescript",
        "py python",
        "k8s kubernetes",
        "postgres postgresql psql",
        "mongo mongodb",
        "us usa usd america american",
        "uk gb gbp britain british",
        "eur euro",
        "ny nyc york",
    )
]
ALIASES = {word: group for group in ALIAS_GROUPS for word in group}
ROMAN_NUMERALS = {
    numeral: str(value)
    for value, numeral in enumerate(
        "I II III IV V VI VII VIII IX X XI XII XIII XIV XV XVI XVII XVIII XIX XX".split(), 1
    )
}
# "one" is a pronoun, not the number 1, after these words ("which one", "can one") and
# before these ("one of them", "one who").
ONE_PRONOUN_AFTER = frozenset(
    "the which this that any each every no some another a last next right wrong other only "
    "same new old best better good first cheapest nearest closest can could should would may "
    "might must does do will how".split()
)
ONE_PRONOUN_BEFORE = frozenset("of another who whose else".split())
