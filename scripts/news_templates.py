"""Own template sentences, second generation: press-release sentences and news headlines.

Written for this project (docs/sentiment.md), not copied from any labelled set. Compared with
``sentiment_templates.domain_sentences`` (one shape per metric sentence, 26 names), this has
many more sentence shapes and a much wider vocabulary, in two registers:

* press-release sentences: company descriptions and facts with figures but no direction
  (neutral), figures that moved (the direction is good or bad for that figure), orders and
  contracts won, expansion, dividends, guidance, layoffs, closures, fines, impairments ...;
* news headlines: "Shares of X jump after ...", "X to cut 500 jobs", "X wins $1bn contract",
  "X to report results on ...".

Labels follow one rule: a sentence is positive or negative only if it says something is
better or worse for the company (or its shareholders); a fact, a plan, a schedule, a figure
with no comparison or a description is neutral. ``news_sentences(n)`` returns ``n`` sentences,
about 45 % neutral and 55 % split between positive and negative (``weights``).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from sentiment_templates import MONTHS as _MONTHS

# --- vocabulary -----------------------------------------------------------------------------

_FIRST = [
    "Aker",
    "Nord",
    "Vali",
    "Kesko",
    "Lumo",
    "Rauta",
    "Oulu",
    "Tekla",
    "Sarka",
    "Vaasa",
    "Pohja",
    "Metsa",
    "Kemi",
    "Finnvera",
    "Orion",
    "Halla",
    "Kivi",
    "Tammi",
    "Kuusi",
    "Meri",
    "Aalto",
    "Vire",
    "Selka",
    "Bjorn",
    "Lund",
    "Stor",
    "Fjell",
    "Norr",
    "Oster",
    "Vest",
    "Brandt",
    "Keller",
    "Adler",
    "Falk",
    "Weber",
    "Hartmann",
    "Marlow",
    "Ashford",
    "Redfern",
    "Whitcomb",
    "Carlisle",
    "Harrow",
    "Pemberton",
    "Bramley",
    "Castor",
    "Vega",
    "Orion",
    "Altair",
    "Cobalt",
    "Granite",
    "Summit",
    "Pioneer",
    "Atlas",
    "Beacon",
    "Crescent",
    "Harbor",
    "Meridian",
    "Northstar",
    "Evergreen",
    "Silverline",
    "Ironbridge",
    "Bluewater",
    "Redwood",
    "Stonegate",
    "Clearview",
    "Westbrook",
    "Lakeside",
    "Highland",
    "Sterling",
    "Apex",
    "Vertex",
    "Nexa",
    "Quanta",
    "Zentra",
    "Solvia",
    "Optima",
    "Veritas",
]
_SECOND = [
    "Industries",
    "Group",
    "Holdings",
    "Systems",
    "Technologies",
    "Foods",
    "Paper",
    "Steel",
    "Energy",
    "Telecom",
    "Logistics",
    "Pharma",
    "Bank",
    "Capital",
    "Retail",
    "Media",
    "Networks",
    "Solutions",
    "Engineering",
    "Mining",
    "Motors",
    "Airlines",
    "Shipping",
    "Chemicals",
    "Software",
    "Insurance",
    "Brewery",
    "Foods",
    "Electric",
    "Construction",
    "Resources",
    "Therapeutics",
    "Semiconductor",
    "Robotics",
    "Textiles",
    "Marine",
    "Forest",
    "Metals",
]
_SUFFIX = ("", "", "", " Oyj", " plc", " Inc.", " AB", " ASA", " Corp", " AG", " SA", " Ltd")
_NATIONALITY = (
    "Finnish",
    "Swedish",
    "Norwegian",
    "Danish",
    "German",
    "British",
    "US",
    "Canadian",
    "Estonian",
    "Dutch",
    "French",
    "Polish",
)
_COUNTRIES = (
    "Finland",
    "Sweden",
    "Norway",
    "Russia",
    "China",
    "India",
    "Germany",
    "Poland",
    "the Baltic countries",
    "the United States",
    "Brazil",
    "the UK",
    "Estonia",
    "Latvia",
    "Vietnam",
    "Mexico",
    "Japan",
    "the Middle East",
)
_CITIES = (
    "Helsinki",
    "Espoo",
    "Tampere",
    "Oulu",
    "Stockholm",
    "Gothenburg",
    "Oslo",
    "Copenhagen",
    "Tallinn",
    "Riga",
    "Warsaw",
    "Hamburg",
    "London",
    "Manchester",
    "Chicago",
    "Houston",
    "Toronto",
    "Shanghai",
    "Pune",
    "St Petersburg",
)
_KINDS = (
    "company",
    "group",
    "engineering group",
    "technology company",
    "software company",
    "retailer",
    "paper maker",
    "steel maker",
    "lender",
    "bank",
    "insurer",
    "utility",
    "airline",
    "shipping company",
    "construction company",
    "food company",
    "brewer",
    "chemicals group",
    "forest industry group",
    "telecom operator",
    "drugmaker",
    "carmaker",
    "chipmaker",
    "mining company",
    "media group",
    "IT services company",
    "packaging company",
    "electronics manufacturer",
)
_PRODUCTS = (
    "packaging materials",
    "paper and board",
    "cargo handling equipment",
    "elevators and escalators",
    "mobile phones",
    "network equipment",
    "software for banks",
    "industrial valves",
    "steel pipes",
    "wind turbines",
    "diesel engines",
    "forestry machines",
    "medical devices",
    "generic drugs",
    "dairy products",
    "frozen foods",
    "furniture",
    "clothing",
    "sports equipment",
    "kitchen appliances",
    "security services",
    "logistics services",
    "cleaning products",
    "construction materials",
    "printing inks",
    "fertilisers",
    "specialty chemicals",
    "power plants",
    "data centre services",
    "payment terminals",
)
_CUSTOMERS = (
    "a Russian telecom operator",
    "a German carmaker",
    "the Finnish Defence Forces",
    "a US utility",
    "a Chinese paper mill",
    "a Swedish retail chain",
    "the city of Oslo",
    "a major European airline",
    "an Indian steel producer",
    "a Brazilian pulp producer",
    "a Middle Eastern port operator",
    "the national railway company",
    "a leading mobile operator",
    "an international oil company",
    "a hospital district",
    "a Norwegian shipowner",
)
_PEOPLE = (
    "Matti Lehtonen",
    "Anna Virtanen",
    "Jukka Niemi",
    "Erik Lindqvist",
    "Sofia Berg",
    "Lars Holm",
    "Maria Nieminen",
    "John Carver",
    "Sarah Whitfield",
    "Thomas Becker",
    "Pekka Salo",
    "Ingrid Dahl",
    "Mark Ellison",
    "Laura Koskinen",
    "Henrik Aalto",
)
_ROLES = (
    "chief executive officer",
    "CEO",
    "chief financial officer",
    "CFO",
    "chairman of the board",
    "head of investor relations",
    "managing director",
    "senior vice president",
    "head of sales",
    "president",
)
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
_QUARTERS = ("first", "second", "third", "fourth")
_PERIODS = (
    "in the first quarter of 2009",
    "in the second quarter",
    "in the third quarter of 2008",
    "in the fourth quarter",
    "in January-March",
    "in January-June 2010",
    "in January-September",
    "in the review period",
    "in the reporting period",
    "in the financial year",
    "in 2007",
    "in 2010",
    "for the full year",
    "for the first half",
    "year-on-year",
    "from the same period a year earlier",
    "compared with the corresponding period last year",
    "in the first nine months",
    "in the second half",
    "in December",
    "last year",
)
_GOOD_METRICS = (
    "net sales",
    "sales",
    "revenue",
    "turnover",
    "operating profit",
    "net profit",
    "profit before taxes",
    "pre-tax profit",
    "profit",
    "earnings per share",
    "EPS",
    "EBITDA",
    "EBIT",
    "operating income",
    "net income",
    "order intake",
    "the order book",
    "the order backlog",
    "new orders",
    "operating margin",
    "gross margin",
    "comparable sales",
    "like-for-like sales",
    "same-store sales",
    "cash flow from operations",
    "deliveries",
    "production volumes",
    "passenger numbers",
    "traffic",
    "market share",
    "the number of subscribers",
    "exports",
    "volumes",
    "occupancy",
    "net interest income",
    "premiums written",
    "assets under management",
)
_BAD_METRICS = (
    "operating loss",
    "net loss",
    "pre-tax loss",
    "loss before taxes",
    "costs",
    "operating expenses",
    "net debt",
    "impairment charges",
    "credit losses",
    "loan losses",
    "restructuring costs",
    "raw material costs",
    "the loss per share",
    "customer churn",
)
_UP = (
    "rose",
    "increased",
    "grew",
    "climbed",
    "improved",
    "jumped",
    "went up",
    "was up",
    "surged",
    "advanced",
    "soared",
    "edged up",
    "picked up",
    "strengthened",
)
_DOWN = (
    "fell",
    "decreased",
    "declined",
    "dropped",
    "slipped",
    "went down",
    "was down",
    "sank",
    "weakened",
    "contracted",
    "slumped",
    "tumbled",
    "shrank",
    "plunged",
    "eased",
)
_UP_BY = ("increased", "rose", "grew", "climbed", "improved", "was up", "went up")
_DOWN_BY = ("decreased", "fell", "declined", "dropped", "was down", "went down", "contracted")
_CUR = ("EUR", "EUR", "EUR", "USD", "SEK", "NOK", "GBP", "$", "€", "£")
_UNITS = ("mn", "million", "m", "bn", "billion", "mln")

_Rng = random.Random


# --- slot fillers ---------------------------------------------------------------------------


def _company(rng: _Rng) -> str:
    first = rng.choice(_FIRST)
    r = rng.random()
    if r < 0.35:
        return first + rng.choice(_SUFFIX)
    if r < 0.5:
        return first + rng.choice(("tec", "net", "ko", "la", "com", "tek", "via"))
    return f"{first} {rng.choice(_SECOND)}{rng.choice(_SUFFIX)}"


def _subject(rng: _Rng, name: str | None = None) -> str:
    """The company as a press release's subject: 'Finnish paper maker X', 'The company' ..."""
    name = name or _company(rng)
    r = rng.random()
    if r < 0.3:
        return name
    if r < 0.5:
        return f"{rng.choice(_NATIONALITY)} {rng.choice(_KINDS)} {name}"
    if r < 0.62:
        return f"{name}, a {rng.choice(_NATIONALITY)} maker of {rng.choice(_PRODUCTS)},"
    if r < 0.8:
        return rng.choice(("The company", "The group", "The Group", "The company"))
    return f"The {rng.choice(_KINDS)}"


def _amount(rng: _Rng, lo: float = 0.5, hi: float = 900.0) -> float:
    v = rng.uniform(lo, hi)
    return round(v, rng.choice((0, 1, 1, 2))) if v < 100 else round(v, rng.choice((0, 1)))


def _style(rng: _Rng) -> tuple[str, str, int]:
    """A currency, a unit and a way of writing them, kept for every amount in one sentence."""
    return rng.choice(_CUR), rng.choice(_UNITS), rng.randrange(7)


def _money(rng: _Rng, value: float | None = None, style: tuple[str, str, int] | None = None) -> str:
    value = _amount(rng) if value is None else value
    cur, unit, how = style or _style(rng)
    if cur in "$€£":
        return f"{cur}{value}{'' if how < 3 else ' '}{unit}"
    return f"{cur} {value} {unit}" if how else f"{value} {unit} {cur.lower()}s"


def _pct(rng: _Rng, hi: float = 60.0) -> str:
    v = rng.choice((round(rng.uniform(0.3, hi), 1), rng.randint(1, int(hi))))
    return rng.choice((f"{v} %", f"{v}%", f"{v} percent", f"{v} per cent", f"{v} pct"))


def _pair(rng: _Rng, up: bool) -> tuple[float, float]:
    """(old, new) amounts with new > old when ``up``."""
    old = _amount(rng)
    new = old * (1 + rng.uniform(0.04, 1.5)) if up else old * rng.uniform(0.15, 0.96)
    return old, round(new, 1)


def _period(rng: _Rng) -> str:
    return rng.choice(_PERIODS)


def _date(rng: _Rng) -> str:
    m, d = rng.choice(_MONTHS), rng.randint(1, 28)
    return rng.choice((f"{m} {d}", f"{d} {m}", f"{m} {d}, {rng.randint(2006, 2026)}"))


def _cap(s: str) -> str:
    return s[0].upper() + s[1:] if s else s


def _jobs(rng: _Rng) -> int:
    return rng.choice((rng.randint(8, 150), rng.randint(100, 900), rng.randint(500, 12000)))


# --- positive / negative: a figure that moved ---------------------------------------------


def _metric_move(rng: _Rng, positive: bool) -> str:
    good = rng.random() < 0.75
    metric = rng.choice(_GOOD_METRICS if good else _BAD_METRICS)
    up = positive == good
    old, new = _pair(rng, up)
    verb = rng.choice(_UP if up else _DOWN)
    if not good and rng.random() < 0.4:
        verb = rng.choice(
            ("widened", "deepened", "grew") if up else ("narrowed", "shrank", "eased")
        )
    verb_by = rng.choice(_UP_BY if up else _DOWN_BY)
    owner = rng.choice(("", "", "the company's ", "the group's ", f"{_company(rng)}'s "))
    if owner:
        metric = metric.removeprefix("the ")
    m = _cap(owner + metric)
    st = _style(rng)
    p, per = _pct(rng), _period(rng)
    d = "up" if up else "down"
    shapes = (
        f"{m} {verb} to {_money(rng, new, st)} from {_money(rng, old, st)} {per}",
        f"{m} {verb} to {_money(rng, new, st)} {per}, from {_money(rng, old, st)}",
        f"{m} {verb_by} by {p} to {_money(rng, new, st)} {per}",
        f"{m} {verb_by} {p} {per} to {_money(rng, new, st)}",
        f"{m} {verb} {p} {per}",
        f"{m} {verb} {per} and totalled {_money(rng, new, st)}",
        f"{m} totalled {_money(rng, new, st)}, {d} {p} {per}",
        f"{m} amounted to {_money(rng, new, st)}, compared with {_money(rng, old, st)} {per}",
        f"{m} was {_money(rng, new, st)}, {d} from {_money(rng, old, st)} {per}",
        f"{m} came in at {_money(rng, new, st)}, against {_money(rng, old, st)} a year earlier",
        f"{_subject(rng)} said its {metric} {verb} {p} {per}",
        f"{_subject(rng)} reported {metric} of {_money(rng, new, st)}, {d} from {_money(rng, old, st)}",
        f"{_cap(per)}, {metric} {verb} to {_money(rng, new, st)}",
        f"{m} {verb} {per}, mainly due to "
        + rng.choice(
            ("higher volumes", "better prices", "the acquisitions", "strong demand")
            if positive
            else ("lower volumes", "weaker prices", "one-off costs", "weak demand")
        ),
    )
    s = rng.choice(shapes).replace("  ", " ").strip()
    return s + "."


def _headline_move(rng: _Rng, positive: bool) -> str:
    n = _company(rng).replace(" Oyj", "").replace(" plc", "")
    p = _pct(rng, 40)
    q = rng.choice(_QUARTERS)
    if positive:
        verb = rng.choice(
            ("jumps", "surges", "rises", "climbs", "soars", "rallies", "gains", "leaps", "spikes")
        )
        why = rng.choice(
            (
                "strong results",
                "upbeat outlook",
                "earnings beat",
                "a takeover offer",
                "record sales",
                "a broker upgrade",
                "a big order",
                "higher guidance",
                "new contract win",
                "profit surge",
                "dividend hike",
                "drug approval",
            )
        )
        shapes = (
            f"{n} shares {verb} {p} after {why}",
            f"Shares of {n} {verb} on {why}",
            f"{n} stock {verb} as {rng.choice(('profit', 'revenue', 'sales'))} beats forecasts",
            f"{n} {q}-quarter profit {rng.choice(('rises', 'doubles', 'jumps', 'beats forecasts'))}",
            f"{n} posts {p} rise in {rng.choice(('profit', 'sales', 'revenue', 'earnings'))}",
            f"{n} wins {_money(rng)} contract",
            f"{n} wins {rng.choice(('order', 'deal', 'contract'))} from {rng.choice(_CUSTOMERS)}",
            f"{n} raises {rng.choice(('full-year', '2025', 'annual', 'profit'))} "
            + rng.choice(("forecast", "guidance", "outlook", "target")),
            f"{n} lifts dividend {p}",
            f"{n} beats {rng.choice(('estimates', 'expectations', 'forecasts', 'Street view'))}",
            f"{n} upgraded to {rng.choice(('buy', 'outperform', 'overweight'))} at "
            + rng.choice(("broker", "analysts", "Nordea", "SEB", "Jefferies")),
            f"{n} sees strong demand, {rng.choice(('shares up', 'stock rises', 'lifts outlook'))}",
            f"{n} returns to profit",
            f"{n} swings to profit in {q} quarter",
            f"{n} posts record {rng.choice(('profit', 'sales', 'revenue', 'quarter', 'order intake'))}",
            f"{n} sales {verb} {p}",
            f"{n} profit {rng.choice(('soars', 'jumps', 'surges', 'beats forecasts', 'tops view'))}",
            f"Demand lifts {n} {rng.choice(('profit', 'sales', 'orders'))}",
            f"FTSE {rng.choice(('rises', 'gains', 'edges higher'))} as {n} {verb}",
            f"{n} to expand {rng.choice(('production', 'capacity', 'in Asia', 'its network'))} "
            "as demand grows",
            f"{n} shares hit record high",
            f"{n} gets regulatory approval for {rng.choice(('new drug', 'merger', 'expansion'))}",
            f"{n} boosts buyback to {_money(rng)}",
            f"{n} signs {_money(rng)} {rng.choice(('deal', 'supply deal', 'contract'))} with "
            + rng.choice(_CUSTOMERS),
            f"{n} to buy {_company(rng)} for {_money(rng)}",
            f"{n} agrees {_money(rng)} takeover of {_company(rng)}",
            f"{n} clinches deal for {_company(rng)}",
            f"Regulators clear {n}'s {rng.choice(('merger', 'takeover', 'acquisition'))} of "
            + _company(rng),
            f"{n} turnaround gathers pace",
            f"{n} reports strong trading {rng.choice(('', 'despite weak market', 'in the quarter'))}",
            f"{n} wins approval for {rng.choice(('new drug', 'plant', 'merger', 'pipeline'))}",
            f"{n} hires {rng.choice(_PEOPLE)} to lead growth push",
            f"{n} settles dispute, {rng.choice(('shares rise', 'removing overhang', 'clearing way for deal'))}",
            f"{n} in demand as {rng.choice(('bidders circle', 'investors pile in', 'orders flood in'))}",
            f"{n} attracts takeover interest from {_company(rng)}",
            f"{n} wins court case against {_company(rng)}",
            f"{n} cuts debt {p}",
        )
    else:
        verb = rng.choice(
            ("falls", "slumps", "drops", "tumbles", "sinks", "slides", "plunges", "dives", "slips")
        )
        why = rng.choice(
            (
                "weak results",
                "profit warning",
                "disappointing sales",
                "a broker downgrade",
                "lower guidance",
                "earnings miss",
                "a probe",
                "job cuts",
                "dividend cut",
                "a lawsuit",
                "weak demand",
                "a recall",
            )
        )
        shapes = (
            f"{n} shares {verb} {p} after {why}",
            f"Shares of {n} {verb} on {why}",
            f"{n} stock {verb} as {rng.choice(('profit', 'revenue', 'sales'))} misses forecasts",
            f"{n} {q}-quarter profit {rng.choice(('falls', 'halves', 'slumps', 'misses forecasts'))}",
            f"{n} posts {p} drop in {rng.choice(('profit', 'sales', 'revenue', 'earnings'))}",
            f"{n} to cut {_jobs(rng)} jobs",
            f"{n} to shed {_jobs(rng)} jobs as {rng.choice(('demand slows', 'sales fall', 'costs rise'))}",
            f"{n} cuts {rng.choice(('full-year', '2025', 'annual', 'profit'))} "
            + rng.choice(("forecast", "guidance", "outlook", "target")),
            f"{n} issues profit warning",
            f"{n} warns on {rng.choice(('profits', 'full-year results', 'sales', 'margins'))}",
            f"{n} misses {rng.choice(('estimates', 'expectations', 'forecasts', 'Street view'))}",
            f"{n} downgraded to {rng.choice(('sell', 'underperform', 'underweight'))} at "
            + rng.choice(("broker", "analysts", "Nordea", "SEB", "Jefferies")),
            f"{n} fined {_money(rng)} by {rng.choice(('regulator', 'EU', 'watchdog', 'court'))}",
            f"{n} swings to loss in {q} quarter",
            f"{n} scraps dividend",
            f"{n} suspends dividend as {rng.choice(('losses mount', 'sales slump', 'debt rises'))}",
            f"{n} sales {verb} {p}",
            f"{n} profit {rng.choice(('slumps', 'tumbles', 'falls short', 'misses forecasts'))}",
            f"Weak demand hits {n} {rng.choice(('profit', 'sales', 'orders'))}",
            f"FTSE {rng.choice(('falls', 'slips', 'edges lower'))} as {n} {verb}",
            f"{n} to close {rng.choice(('plant', 'factory', 'stores', 'mill'))} in "
            + rng.choice(_CITIES),
            f"{n} faces {rng.choice(('probe', 'investigation', 'lawsuit', 'class action'))} over "
            + rng.choice(("accounting", "bribery", "safety", "pricing", "emissions")),
            f"{n} recalls {rng.choice(('cars', 'products', 'devices', 'vehicles'))} over "
            + rng.choice(("safety fears", "defects", "fire risk")),
            f"{n} shares hit {rng.choice(('multi-year', 'record', 'five-year'))} low",
            f"{n} loses {rng.choice(('contract', 'key customer', 'major order'))}",
            f"{n} credit rating cut to junk",
            f"Strike halts production at {n}",
            f"{n} accused of {rng.choice(('misleading investors', 'bribery', 'tax evasion', 'price fixing', 'hiding losses'))}",
            f"{n} sued by {rng.choice(('investors', 'regulators', 'customers', 'former staff', _company(rng)))}",
            f"{n} CEO {rng.choice(('quits', 'resigns', 'ousted', 'steps down'))} amid "
            + rng.choice(("scandal", "investor anger", "boardroom turmoil", "losses", "probe")),
            f"{n} hit by {rng.choice(('outflows', 'cyber attack', 'strike', 'boycott', 'rising costs', 'sanctions'))}",
            f"{n} books extra {_money(rng)} cost for project delays",
            f"{n} project delayed again as costs overrun",
            f"Regulator criticises {n} over {rng.choice(('treatment of customers', 'safety failures', 'accounting'))}",
            f"{n} bid runs into trouble",
            f"{n} takeover talks collapse",
            f"Investors flee {n} as {rng.choice(('losses mount', 'debt worries grow', 'scandal widens'))}",
            f"{n} faces {_money(rng)} tax bill",
            f"{n} executives charged over {rng.choice(('fraud', 'rate rigging', 'bribery'))}",
            f"{n} shares hammered as {rng.choice(('outlook darkens', 'sales slump', 'probe widens'))}",
            f"Protesters target {n} over {rng.choice(('emissions', 'drilling', 'pay', 'job cuts'))}",
            f"{n} struggles as {rng.choice(('demand slumps', 'costs soar', 'rivals gain ground'))}",
            f"Pressure mounts on {n} {rng.choice(('CEO', 'board', 'chairman'))}",
            f"{n} executives face retrial over {rng.choice(('fraud', 'rate rigging', 'bribery'))}",
            f"{n} opens probe into {rng.choice(('accounting', 'trading losses', 'misconduct'))}",
            f"{rng.choice(('Concerns', 'Doubts', 'Questions'))} grow over {n}'s "
            + rng.choice(("takeover", "strategy", "accounts", "debt")),
            f"Disruption hits {n} {rng.choice(('flights', 'production', 'deliveries'))}",
            f"{n} leads market rout",
            f"{n} to appeal ruling after {rng.choice(('losing case', 'court defeat', 'fine'))}",
            f"{n} plan in jeopardy after {rng.choice(('sanctions', 'regulator objects', 'talks stall'))}",
        )
    return rng.choice(shapes)


# --- positive / negative: events -------------------------------------------------------------


def _event(rng: _Rng, positive: bool) -> str:
    s = _subject(rng)
    p = _pct(rng)
    y = rng.randint(2008, 2026)
    metric = rng.choice(_GOOD_METRICS[:16])
    if positive:
        shapes = (
            f"{s} has won an order worth {_money(rng)} from {rng.choice(_CUSTOMERS)}",
            f"{s} has received a {_money(rng)} order to deliver {rng.choice(_PRODUCTS)} to "
            + rng.choice(_CUSTOMERS),
            f"{s} signed a {rng.randint(2, 10)}-year contract worth {_money(rng)} with "
            + rng.choice(_CUSTOMERS),
            f"{s} has been selected as the supplier of {rng.choice(_PRODUCTS)} for "
            + rng.choice(_CUSTOMERS),
            f"{s} raised its full-year {rng.choice(('guidance', 'outlook', 'profit forecast'))}",
            f"{s} now expects its {metric} to increase {rng.choice(('clearly', 'significantly', 'by ' + p))} "
            f"in {y}",
            f"{s} expects {metric} to grow in {y}",
            f"{s} said demand for its {rng.choice(_PRODUCTS)} remained strong",
            f"{s} will open {rng.randint(2, 40)} new stores in {rng.choice(_COUNTRIES)} to meet "
            "growing demand",
            f"{s} will expand its production capacity in {rng.choice(_COUNTRIES)} as orders grow",
            f"The board proposes a dividend of EUR {round(rng.uniform(0.1, 2.5), 2)} per share, "
            f"up from EUR {round(rng.uniform(0.05, 0.09), 2)}",
            f"{s} raised its dividend by {p}",
            f"{s} returned to profit {_period(rng)}",
            f"{s} swung to a net profit of {_money(rng)} from a loss a year earlier",
            f"{s} turned an operating profit of {_money(rng)}, against a loss of {_money(rng)}",
            f"The deal will strengthen {rng.choice(('the company', 'the group', 'our'))} "
            + rng.choice(("position in the market", "market position", "presence in Asia")),
            f"The acquisition is expected to increase earnings per share from {y}",
            "The investment will improve the company's profitability",
            f"{s} achieved record sales {_period(rng)}",
            f"{s} said its cost savings programme is ahead of target",
            f"The company's result improved clearly {_period(rng)}",
            f"{s} shares rose {p} in Helsinki after the announcement",
            f"Analysts upgraded {s} to buy and raised the target price",
            f"Profitability improved as {rng.choice(('volumes grew', 'prices rose', 'costs fell'))}",
            "Demand for the company's products has picked up",
            f"{s} beat market expectations with {metric} of {_money(rng)}",
            "The order is the largest in the company's history",
            f"The market outlook for {rng.choice(_PRODUCTS)} is good",
            f"{s} won a court case against {_company(rng)}",
            f"{s}'s new plant started production ahead of schedule",
            f"The contract will boost {rng.choice(('sales', 'net sales', 'revenue'))} in {y}",
        )
    else:
        shapes = (
            f"{s} will cut {_jobs(rng)} jobs",
            f"{s} will lay off {_jobs(rng)} employees at its {rng.choice(_CITIES)} plant",
            f"{s} starts negotiations to reduce its staff by up to {_jobs(rng)} people",
            f"{s} will temporarily lay off staff due to "
            + rng.choice(("weak demand", "the lack of orders", "low order intake")),
            f"{s} will close its {rng.choice(('plant', 'factory', 'mill', 'unit'))} in "
            + f"{rng.choice(_CITIES)}, with the loss of {_jobs(rng)} jobs",
            f"{s} lowered its full-year {rng.choice(('guidance', 'outlook', 'profit forecast'))}",
            f"{s} now expects its {metric} to decline in {y}",
            f"{s} issued a profit warning on {rng.choice(_DAYS)}",
            f"{s} said demand for its {rng.choice(_PRODUCTS)} weakened",
            f"{s} swung to a net loss of {_money(rng)} from a profit a year earlier",
            f"{s} posted an operating loss of {_money(rng)}, compared with a profit of "
            + _money(rng),
            f"{s} booked an impairment charge of {_money(rng)}",
            f"{s} wrote down the value of its {rng.choice(_PRODUCTS)} business",
            f"{s} was fined {_money(rng)} for "
            + rng.choice(("price fixing", "breaching safety rules", "misleading investors")),
            f"{s} faces a lawsuit from {rng.choice(_CUSTOMERS)}",
            f"Authorities opened an investigation into {s}",
            f"{s} will not pay a dividend for {y} due to the loss",
            f"The board proposes that the dividend be cut to EUR {round(rng.uniform(0.01, 0.3), 2)}",
            f"{s} shares fell {p} in Helsinki after the warning",
            f"Analysts downgraded {s} to sell and cut the target price",
            f"Profitability weakened as {rng.choice(('volumes fell', 'prices fell', 'costs rose'))}",
            f"The market situation remained difficult {_period(rng)}",
            f"{s} missed market expectations with {metric} of {_money(rng)}",
            f"{s} lost a major customer",
            f"The customer cancelled an order worth {_money(rng)}",
            f"{s} delayed the start of production due to technical problems",
            f"A strike halted production at {s}'s {rng.choice(_CITIES)} mill",
            f"{s}'s credit rating was downgraded by {rng.choice(('Moody s', 'S&P', 'Fitch'))}",
            f"{s} filed for bankruptcy",
            f"The result was burdened by restructuring costs of {_money(rng)}",
            f"{s} recalled {rng.choice(_PRODUCTS)} because of a defect",
        )
    return (rng.choice(shapes) + ".").replace("Moody s", "Moody's").replace(",.", ".")


# --- neutral -----------------------------------------------------------------------------


def _neutral(rng: _Rng) -> str:
    name = _company(rng)
    s = _subject(rng, name)
    y = rng.randint(2005, 2026)
    metric = rng.choice(_GOOD_METRICS[:16] + _BAD_METRICS[:4])
    shapes = (
        f"{s} operates {rng.randint(2, 900)} stores in {rng.choice(_COUNTRIES)}",
        f"{s} operates in {rng.randint(2, 80)} countries",
        f"{s} has production plants in " + " and ".join(rng.sample(_COUNTRIES, 2)),
        f"{name} is a {rng.choice(_NATIONALITY)} {rng.choice(_KINDS)} that makes "
        + rng.choice(_PRODUCTS),
        f"{name} makes {rng.choice(_PRODUCTS)} and {rng.choice(_PRODUCTS)}",
        f"{s} employs about {rng.randint(20, 40000)} people",
        f"The company has some {rng.randint(20, 40000)} employees in {rng.randint(2, 40)} countries",
        f"The company's head office is in {rng.choice(_CITIES)}",
        f"{name}'s shares are listed on the {rng.choice(('Helsinki', 'Stockholm', 'Oslo', 'London', 'Nasdaq'))} "
        "stock exchange",
        f"{s} will publish its {rng.choice(('interim report', 'annual report', 'half-year report', 'results'))} "
        f"on {_date(rng)}",
        f"{s} will publish its {rng.choice(_QUARTERS)} quarter results on {_date(rng)}",
        f"The annual general meeting will be held in {rng.choice(_CITIES)} on {_date(rng)}",
        f"{s} will hold a conference call for analysts at {rng.randint(9, 16)}:00",
        f"{rng.choice(_PEOPLE)} has been appointed {rng.choice(_ROLES)} of {name}",
        f"{name} appointed {rng.choice(_PEOPLE)} as its new {rng.choice(_ROLES)}",
        f"{rng.choice(_PEOPLE)} will report to the {rng.choice(_ROLES)}",
        f"The {rng.choice(_ROLES)} {rng.choice(_PEOPLE)} will step down at the end of {y}",
        f"{name}'s {metric} {rng.choice(('totalled', 'amounted to', 'were', 'was'))} {_money(rng)} "
        f"in {y}",
        f"In {y}, the company's net sales were {_money(rng)} and it had {rng.randint(20, 9000)} "
        "employees",
        f"The value of the order is {_money(rng)}",
        "The value of the deal was not disclosed",
        "Financial terms were not disclosed",
        "The parties agreed not to disclose the price",
        f"The transaction is expected to be completed {rng.choice(_PERIODS[:12])}",
        "The acquisition requires the approval of the competition authorities",
        f"{s} has agreed to sell its {rng.choice(_PRODUCTS)} unit to {_company(rng)}",
        f"{s} will acquire {rng.randint(5, 100)} % of {_company(rng)}",
        f"{s} bought the {rng.choice(_PRODUCTS)} business of {_company(rng)}",
        f"The deliveries will take place in {y}",
        f"The order includes {rng.choice(_PRODUCTS)} and installation services",
        f"The contract covers the delivery of {rng.choice(_PRODUCTS)} to {rng.choice(_CUSTOMERS)}",
        f"The plant has an annual capacity of {rng.randint(10, 900)},000 tonnes",
        f"The new plant will be built in {rng.choice(_CITIES)}",
        f"Production will be moved to {rng.choice(_COUNTRIES)}",
        f"The total number of shares is {rng.randint(10**6, 10**9):,}",
        f"A total of {rng.randint(1000, 900000):,} new shares were subscribed under the option "
        "scheme",
        f"The new shares will be registered in the trade register on {_date(rng)}",
        f"The share capital of the company is {_money(rng)}",
        f"{name} is part of {_company(rng)}",
        f"{s}'s customers include {rng.choice(_CUSTOMERS)}",
        f"The company's products are sold in {rng.randint(5, 150)} countries",
        f"The company's fiscal year ends in {rng.choice(_MONTHS)}",
        f"According to {rng.choice(_PEOPLE)}, the company is studying several options",
        f"{rng.choice(_PEOPLE)}, {rng.choice(_ROLES)} of {name}, said the company will focus on "
        + rng.choice(_PRODUCTS),
        f"{s} said in a statement on {rng.choice(_DAYS)}",
        f"The report was published on {_date(rng)}",
        "The figures are unaudited",
        "The company did not give details",
        "The company said it would comment on the matter later",
        f"The offer period will begin on {_date(rng)} and end on {_date(rng)}",
        f"{s} will present its strategy at a capital markets day in {rng.choice(_CITIES)}",
        f"The store will have a sales area of {rng.randint(500, 20000):,} square metres",
        f"The project will be carried out in {rng.choice(('two', 'three', 'several'))} phases",
        f"{s}'s product range includes {rng.choice(_PRODUCTS)} and {rng.choice(_PRODUCTS)}",
        f"The company's largest shareholder is {_company(rng)}",
        f"The company's market capitalisation is {_money(rng)}",
        f"Operating profit includes non-recurring items of {_money(rng)}",
        f"The unit's net sales in {y} were {_money(rng)}",
        f"The company's {rng.choice(_PRODUCTS)} are marketed under the {rng.choice(_FIRST)} brand",
        f"The agreement was signed in {rng.choice(_CITIES)}",
        f"The company plans to list its shares in {y}",
        "The move is part of the company's strategy",
        f"{s} will build a {rng.choice(('warehouse', 'plant', 'office', 'data centre'))} in "
        + rng.choice(_CITIES),
        f"The board of directors will meet on {_date(rng)}",
        "Sales are divided between " + " and ".join(rng.sample(_COUNTRIES, 2)),
    )
    return rng.choice(shapes).replace(",,", ",").replace(", ", ", ") + "."


def _neutral_headline(rng: _Rng) -> str:
    n = _company(rng).replace(" Oyj", "").replace(" plc", "")
    q = rng.choice(_QUARTERS)
    shapes = (
        f"{n} to report {q}-quarter results on {rng.choice(_DAYS)}",
        f"{n} to announce {rng.choice(('earnings', 'results', 'Q' + str(rng.randint(1, 4)) + ' results'))} "
        f"on {_date(rng)}",
        f"What to expect from {n} earnings",
        f"{n} earnings preview: what to watch",
        f"{n} names {rng.choice(_PEOPLE)} as {rng.choice(('CEO', 'CFO', 'chairman', 'president'))}",
        f"{n} appoints new {rng.choice(('CFO', 'chief executive', 'head of sales', 'chairman'))}",
        f"{n} CEO to speak at {rng.choice(('investor', 'industry', 'tech'))} conference",
        f"{n} to hold annual meeting in {rng.choice(_CITIES)}",
        f"{n} sets date for capital markets day",
        f"{n} files annual report",
        f"{n} moves headquarters to {rng.choice(_CITIES)}",
        f"{n} to present at {rng.choice(('investor', 'healthcare', 'energy'))} conference",
        f"{n} opens office in {rng.choice(_CITIES)}",
        f"{n} launches {rng.choice(('bond', 'share', 'debt'))} offering",
        f"{n} prices {_money(rng)} bond",
        f"{n} shares unchanged ahead of results",
        f"{n} to change its name to {_company(rng)}",
        f"{n} says {rng.choice(_PEOPLE)} to retire",
        f"{n} to release {rng.choice(('annual', 'interim', 'quarterly'))} report next week",
        f"{n} holds dividend steady",
        f"{n} publishes sustainability report",
    )
    return rng.choice(shapes)


def _tone(rng: _Rng, positive: bool) -> str:
    """Tone words, and 'despite' sentences whose main clause carries the label."""
    n = _company(rng).replace(" Oyj", "").replace(" plc", "")
    if positive:
        good = rng.choice(
            (
                f"{n} beats profit forecasts",
                f"{n} lifts outlook",
                f"{n} sales rise",
                f"{n} shares climb",
                f"{n} reports strong trading",
                f"{n} wins {_money(rng)} order",
            )
        )
        bad = rng.choice(
            ("weak markets", "currency headwinds", "lower margins", "higher costs", "Brexit fears")
        )
        shapes = (
            f"{good} despite {bad}",
            f"{n} upbeat on {rng.choice(('outlook', 'demand', 'growth', 'second half'))}",
            f"{n} confident of {rng.choice(('growth', 'hitting targets', 'recovery', 'strong year'))}",
            f"{n} sees encouraging signs in {rng.choice(('sales', 'orders', 'its markets', 'Asia'))}",
            f"{n} on track to meet {rng.choice(('targets', 'guidance', 'savings goal'))}",
            f"{n} claims positive start to the year",
            f"{n} reaffirms {rng.choice(('guidance', 'outlook', 'targets'))} as demand holds up",
            f"{n} {rng.choice(('boosted', 'lifted', 'helped'))} by "
            + rng.choice(("strong demand", "cost cuts", "higher prices", "new products")),
            f"Investors cheer {n} {rng.choice(('results', 'strategy', 'deal', 'turnaround'))}",
            f"{n} well placed for growth, says {rng.choice(('CEO', 'chairman', 'broker'))}",
        )
    else:
        bad = rng.choice(
            (
                f"{n} profit falls",
                f"{n} cuts outlook",
                f"{n} sales slide",
                f"{n} shares drop",
                f"{n} warns on profit",
                f"{n} swings to loss",
            )
        )
        good = rng.choice(("higher sales", "cost cuts", "strong orders", "a weaker currency"))
        shapes = (
            f"{bad} despite {good}",
            f"{n} gloomy on {rng.choice(('outlook', 'demand', 'second half', 'markets'))}",
            f"{n} cautious on {rng.choice(('outlook', 'demand', 'recovery'))} as sales weaken",
            f"{n} sees tough {rng.choice(('year', 'market', 'trading'))} ahead",
            f"{n} struggles with {rng.choice(('weak demand', 'rising costs', 'debt', 'delays'))}",
            f"{n} suffers torrid {rng.choice(('quarter', 'year', 'start to the year'))}",
            f"{n} {rng.choice(('hit', 'hurt', 'dragged down'))} by "
            + rng.choice(("weak demand", "one-off costs", "lower prices", "falling volumes")),
            f"Investors punish {n} after {rng.choice(('disappointing results', 'warning', 'deal'))}",
            f"{n} disappoints with {rng.choice(('results', 'sales', 'guidance'))}",
            f"{n} falls short of {rng.choice(('targets', 'forecasts', 'expectations'))}",
        )
    return rng.choice(shapes)


_MAKERS: dict[str, tuple[tuple[float, Callable[[_Rng], str]], ...]] = {
    "positive": (
        (0.40, lambda r: _metric_move(r, True)),
        (0.32, lambda r: _event(r, True)),
        (0.18, lambda r: _headline_move(r, True)),
        (0.10, lambda r: _tone(r, True)),
    ),
    "negative": (
        (0.40, lambda r: _metric_move(r, False)),
        (0.32, lambda r: _event(r, False)),
        (0.18, lambda r: _headline_move(r, False)),
        (0.10, lambda r: _tone(r, False)),
    ),
    "neutral": ((0.78, _neutral), (0.22, _neutral_headline)),
}


def news_sentence(rng: _Rng, label: str) -> str:
    """One template sentence with the given label."""
    makers = _MAKERS[label]
    fn = rng.choices([f for _, f in makers], weights=[w for w, _ in makers])[0]
    return fn(rng)


def news_sentences(
    n: int = 6000, seed: int = 11, weights: tuple[float, float, float] = (0.3, 0.25, 0.45)
) -> tuple[list[str], list[str]]:
    """``n`` distinct template sentences; ``weights`` = shares of positive, negative, neutral."""
    rng = random.Random(seed)
    labels = ("positive", "negative", "neutral")
    counts = [round(n * w) for w in weights]
    counts[-1] = n - sum(counts[:-1])
    texts: list[str] = []
    out_labels: list[str] = []
    seen: set[str] = set()
    for label, count in zip(labels, counts):
        made, tries = 0, 0
        while made < count and tries < count * 20:
            tries += 1
            s = news_sentence(rng, label)
            if s in seen:
                continue
            seen.add(s)
            texts.append(s)
            out_labels.append(label)
            made += 1
    order = list(range(len(texts)))
    rng.shuffle(order)
    return [texts[i] for i in order], [out_labels[i] for i in order]
