"""Own template sentences in press-release and news style (written for this project)."""

from __future__ import annotations

import random

NAMES = (
    "The company",
    "The group",
    "The bank",
    "The retailer",
    "The insurer",
    "The carmaker",
    "The chipmaker",
    "The airline",
    "The utility",
    "The miner",
    "The firm",
    "The publisher",
    "Norvik",
    "Halden Group",
    "Brightline Corp",
    "Castell Holdings",
    "Meridia",
    "Aurelia Foods",
    "Kestrel Systems",
    "Tannery Bay Industries",
    "Orlen Paper",
    "Vantor Logistics",
    "Silverfern Bank",
    "Quarro Steel",
    "Lumen Telecom",
    "Pellinor Software",
)
GOOD = (
    "net sales",
    "revenue",
    "operating profit",
    "net profit",
    "pre-tax profit",
    "earnings per share",
    "EBITDA",
    "order intake",
    "the order backlog",
    "operating margin",
    "comparable sales",
    "net income",
    "operating cash flow",
    "quarterly revenue",
    "sales",
    "profit",
    "turnover",
    "adjusted earnings",
    "gross margin",
    "deliveries",
)
BAD = (
    "operating loss",
    "net loss",
    "costs",
    "operating expenses",
    "net debt",
    "pre-tax loss",
    "impairment charges",
    "the loss",
    "restructuring costs",
    "credit losses",
)
UP_VERBS = ("rose", "increased", "grew", "climbed", "improved", "jumped", "went up", "was up")
DOWN_VERBS = ("fell", "decreased", "declined", "dropped", "slipped", "went down", "was down")
PERIODS = (
    "in the first quarter",
    "in the second quarter of 2010",
    "in the third quarter",
    "in January-June",
    "for the full year",
    "year-on-year",
    "in 2009",
    "in the fourth quarter",
    "in the review period",
    "from a year earlier",
    "in the first nine months",
    "compared with the previous year",
    "",
)
CUR = ("EUR", "USD", "SEK", "GBP", "$", "€")
UNITS = ("mn", "million", "bn", "m")
CITIES = ("Helsinki", "Stockholm", "London", "Frankfurt", "Oslo", "Chicago", "Toronto")
THINGS = (
    "packaging materials",
    "software for the financial sector",
    "industrial pumps",
    "logistics services",
    "mobile network equipment",
    "paper and pulp",
    "retail banking",
    "construction services",
    "specialty chemicals",
    "consumer electronics",
)
ROLES = ("chief financial officer", "chief executive officer", "head of sales", "chairman")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _num(rng: random.Random, lo: float = 1.0, hi: float = 900.0) -> float:
    return round(rng.uniform(lo, hi), 1)


def _money(rng: random.Random, value: float) -> str:
    cur, unit = rng.choice(CUR), rng.choice(UNITS)
    sep = "" if cur in "$€" else " "
    return f"{cur}{sep}{value} {unit}"


def _sentence(rng: random.Random, label: str) -> str:
    name = rng.choice(NAMES)
    period = rng.choice(PERIODS)
    pct = rng.choice((round(rng.uniform(0.5, 60), 1), rng.randint(1, 80)))
    if label in ("positive", "negative"):
        kind = rng.randrange(10)
        good_metric = rng.random() < 0.75
        metric = rng.choice(GOOD if good_metric else BAD)
        up = (label == "positive") == good_metric
        verb = rng.choice(UP_VERBS if up else DOWN_VERBS)
        if not good_metric and rng.random() < 0.4:
            verb = rng.choice(("widened",) if up else ("narrowed", "shrank"))
        a = _num(rng)
        b = round(a * (1 + rng.uniform(0.05, 0.9)) if up else a * rng.uniform(0.2, 0.95), 1)
        m = metric[0].upper() + metric[1:]
        if kind == 0:
            return f"{m} {verb} to {_money(rng, b)} from {_money(rng, a)} {period}".strip() + "."
        if kind == 1:
            return f"{m} {verb} by {pct} % to {_money(rng, b)} {period}".strip() + "."
        if kind == 2:
            return f"{name}'s {metric} {verb} {pct} percent {period}".strip() + "."
        if kind == 3:
            return (
                f"{m} totalled {_money(rng, b)}, compared with {_money(rng, a)} {period}".strip()
                + "."
            )
        if kind == 4:
            d = "up" if up else "down"
            return f"{name} reported {metric} of {_money(rng, b)}, {d} from {_money(rng, a)}."
        if kind == 5:
            return f"{m} {verb} {period} to {_money(rng, b)}".replace("  ", " ") + "."
        pos_events = (
            f"{name} raised its full-year guidance",
            f"{name} won an order worth {_money(rng, a)}",
            f"{name} expects its {rng.choice(GOOD[:8])} to grow in {rng.randint(2008, 2025)}",
            f"{name} signed a {_money(rng, a)} contract with a major customer",
            f"{name} shares rose {pct} % after results beat expectations",
            f"{name} swung to a net profit of {_money(rng, a)}",
            f"{name} raised its dividend to {round(rng.uniform(0.1, 3), 2)} per share",
            f"{name} upgraded to buy",
            f"{name} posts record quarterly profit",
            f"{name} said demand remained strong and margins improved",
        )
        neg_events = (
            f"{name} lowered its full-year outlook",
            f"{name} will cut {rng.randint(20, 3000)} jobs",
            f"{name} issued a profit warning",
            f"{name} expects its {rng.choice(GOOD[:8])} to decline in {rng.randint(2008, 2025)}",
            f"{name} swung to a net loss of {_money(rng, a)}",
            f"{name} shares fell {pct} % after results missed expectations",
            f"{name} downgraded to sell",
            f"{name} suspended its dividend",
            f"{name} said weak demand hurt sales",
            f"{name} faces a fine of {_money(rng, a)}",
        )
        return rng.choice(pos_events if label == "positive" else neg_events) + "."
    neutral = (
        f"{name} will publish its interim report on {rng.choice(MONTHS)} {rng.randint(1, 28)}",
        f"{name} has about {rng.randint(50, 90000)} employees",
        f"{name} operates in {rng.randint(2, 60)} countries",
        f"The company's head office is located in {rng.choice(CITIES)}",
        f"{name} appointed a new {rng.choice(ROLES)}",
        f"The transaction is expected to be completed {rng.choice(PERIODS[:9])}",
        f"{name} is a provider of {rng.choice(THINGS)}",
        f"The total number of shares is {rng.randint(10**6, 10**9)}",
        f"{name} will hold its annual general meeting in {rng.choice(CITIES)} on "
        f"{rng.choice(MONTHS)} {rng.randint(1, 28)}",
        "Financial details of the deal were not disclosed",
        f"{name} makes {rng.choice(THINGS)} and is based in {rng.choice(CITIES)}",
        f"The shares will be traded on the stock exchange from {rng.choice(MONTHS)}",
        f"{name} said it will present its strategy at a capital markets day",
        f"The company's net sales in {rng.randint(2005, 2025)} totalled {_money(rng, _num(rng))}",
        f"{name} employs {rng.randint(50, 9000)} people in {rng.choice(CITIES)}",
        f"The offer period begins on {rng.choice(MONTHS)} {rng.randint(1, 28)}",
        f"{name} to report {rng.choice(('first', 'second', 'third', 'fourth'))}-quarter results"
        f" on {rng.choice(('Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday'))}",
        f"{name} acquired a {rng.randint(5, 49)} % stake in a {rng.choice(THINGS)} business",
        f"The contract covers {rng.choice(THINGS)} for the next {rng.randint(2, 10)} years",
        f"{name} CEO to speak at an industry conference",
    )
    return rng.choice(neutral) + "."


def domain_sentences(n: int = 1500, seed: int = 7) -> tuple[list[str], list[str]]:
    """``n`` template sentences: 1/3 positive, 1/3 negative, 1/3 neutral."""
    rng = random.Random(seed)
    labels = [("positive", "negative", "neutral")[i % 3] for i in range(n)]
    return [_sentence(rng, lab) for lab in labels], labels
