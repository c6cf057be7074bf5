"""Ticker inference for news text: cashtags, exchange forms and company names.

Three sources of tickers, in this order of confidence:

1. Cashtags: ``$AAPL``, ``$BRK.B``. Upper-case only (1-5 letters, optional one-letter class
   suffix after a dot); ``$aapl`` and ``$5`` are not cashtags.
2. Exchange forms: ``NASDAQ: AAPL``, ``(NYSE:TSLA)``, ``Nasdaq:MSFT``, ``NYSE American: X``,
   ``OTC: Y``. The exchange name is case-insensitive, the symbol must be upper case.
3. Company names and aliases from ``COMPANY_ALIASES`` (company name, short name, former name,
   or a wholly-owned unit that is itself a household name: Instagram, YouTube, AWS ...).

Name-matching rule (so that ordinary words do not hit):

* Case: an alias matches only as written in the table (``Apple``, ``JPMorgan``), in all
  capitals (``APPLE``, headline style), or, for one-word aliases, capitalised (``Paypal``).
  Lower-case ``apple``/``amazon``/``meta`` never match.
* Boundaries: no letter or digit may touch the alias on either side (``Metaverse`` and
  ``Applebee's`` are not hits; ``Apple's`` is).
* Ambiguous aliases (ordinary words or names: Apple, Amazon, Meta, Tesla, Alphabet, Oracle,
  Visa, Adobe, Chevron, Uber) carry a guard, ``AMBIGUOUS_GUARDS``: the match is dropped when
  the alias is joined by a hyphen to a following word (``Meta-analysis``, ``Uber-rich``), when
  the next word is one of the guard's non-company words (``Apple pie``, ``Amazon rainforest``,
  ``Meta data``, ``Tesla coil``, ``Oracle of Omaha``), or when the previous word is one of the
  guard's words or a number (``Big Apple``, ``Nikola Tesla``, ``3 Tesla``). This matters most
  at the start of a sentence, where capitalisation says nothing.

With ``universe`` given, only tickers in it are returned, whatever the source (a cashtag or
exchange form of a symbol outside the universe is dropped too).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_UNIVERSE = ("AAPL", "MSFT", "TSLA", "GOOGL", "AMZN", "META", "NVDA")

COMPANY_ALIASES: dict[str, tuple[str, ...]] = {
    # default universe
    "AAPL": ("Apple", "Apple Inc", "iPhone maker", "iPhone", "iPhones", "iPad", "MacBook"),
    "MSFT": ("Microsoft", "Xbox", "LinkedIn", "GitHub", "Windows maker"),
    "TSLA": ("Tesla", "Cybertruck", "Gigafactory"),
    "GOOGL": ("Alphabet", "Google", "YouTube", "Waymo", "DeepMind", "Gmail"),
    "AMZN": ("Amazon", "Amazon.com", "Amazon Web Services", "AWS", "Whole Foods"),
    "META": ("Meta", "Meta Platforms", "Facebook", "Instagram", "WhatsApp", "Oculus"),
    "NVDA": ("Nvidia", "NVIDIA", "GeForce"),
    # index ETF
    "SPY": ("S&P 500", "S&P500", "SPDR S&P 500"),
    # other large caps
    "JPM": ("JPMorgan", "JPMorgan Chase", "JP Morgan", "J.P. Morgan"),
    "BAC": ("Bank of America", "BofA", "BofA Merrill Lynch", "BofA/Merrill Lynch", "Merrill Lynch"),
    "WFC": ("Wells Fargo",),
    "GS": ("Goldman Sachs", "Goldman"),
    "MS": ("Morgan Stanley",),
    "BRK.B": ("Berkshire Hathaway",),
    "V": ("Visa",),
    "MA": ("Mastercard", "MasterCard"),
    "PYPL": ("PayPal",),
    "NFLX": ("Netflix",),
    "DIS": ("Disney", "Walt Disney", "ESPN", "Pixar"),
    "AMD": ("AMD", "Advanced Micro Devices"),
    "INTC": ("Intel",),
    "AVGO": ("Broadcom",),
    "QCOM": ("Qualcomm",),
    "CSCO": ("Cisco", "Cisco Systems"),
    "ORCL": ("Oracle",),
    "CRM": ("Salesforce",),
    "ADBE": ("Adobe",),
    "IBM": ("IBM", "International Business Machines"),
    "UBER": ("Uber",),
    "WMT": ("Walmart", "Wal-Mart"),
    "COST": ("Costco",),
    "HD": ("Home Depot",),
    "KO": ("Coca-Cola", "Coca Cola"),
    "PEP": ("PepsiCo", "Pepsi"),
    "PG": ("Procter & Gamble", "Procter and Gamble", "P&G"),
    "JNJ": ("Johnson & Johnson", "Johnson and Johnson", "J&J"),
    "PFE": ("Pfizer",),
    "UNH": ("UnitedHealth", "UnitedHealth Group"),
    "XOM": ("Exxon Mobil", "ExxonMobil", "Exxon"),
    "CVX": ("Chevron",),
    "BA": ("Boeing", "737 MAX", "737 Max", "Dreamliner"),
    "C": ("Citigroup",),
    "GM": ("General Motors",),
    "F": ("Ford Motor", "Ford"),
    "SBUX": ("Starbucks",),
    "MCD": ("McDonald's", "McDonald’s"),
    "T": ("AT&T",),
    "VZ": ("Verizon",),
    "CMCSA": ("Comcast",),
    "MU": ("Micron",),
    "BABA": ("Alibaba",),
    "SPOT": ("Spotify",),
    "ABNB": ("Airbnb",),
    "SHOP": ("Shopify",),
    "FDX": ("FedEx",),
    "LYFT": ("Lyft",),
    "ROKU": ("Roku",),
    "MRK": ("Merck",),
    "LLY": ("Eli Lilly",),
    "ABBV": ("AbbVie",),
    "GILD": ("Gilead", "Gilead Sciences"),
    "MRNA": ("Moderna",),
    "PLTR": ("Palantir",),
    # more US names that market headlines carry often
    "EBAY": ("eBay", "EBay"),
    "GE": ("General Electric",),
    "SCHW": ("Charles Schwab", "Schwab"),
    "ULTA": ("Ulta Beauty", "Ulta"),
    "PANW": ("Palo Alto Networks",),
    "BYND": ("Beyond Meat",),
    "PTON": ("Peloton",),
    "LULU": ("Lululemon",),
    "UAL": ("United Airlines",),
    "AAL": ("American Airlines",),
    "DAL": ("Delta Air Lines",),
    "LUV": ("Southwest Airlines",),
    "LOW": ("Lowe's", "Lowe’s"),
    "TGT": ("Target Corp",),
    "HPQ": ("HP Inc",),
    "WDC": ("Western Digital",),
    "KHC": ("Kraft Heinz",),
    "BMY": ("Bristol-Myers Squibb", "Bristol Myers Squibb", "Bristol-Myers"),
    "BIIB": ("Biogen",),
    "REGN": ("Regeneron",),
    "GME": ("GameStop",),
    "TWLO": ("Twilio",),
    "SNAP": ("Snapchat",),
    "ZM": ("Zoom Video",),
    "CCL": ("Carnival Corp",),
    "RCL": ("Royal Caribbean",),
    "MAR": ("Marriott",),
    "NKE": ("Nike",),
    "CAT": ("Caterpillar",),
    "DE": ("Deere",),
    "UNP": ("Union Pacific",),
    "UPS": ("UPS", "United Parcel Service"),
    "LMT": ("Lockheed Martin", "Lockheed"),
    "RTX": ("Raytheon",),
    "CVS": ("CVS Health",),
    "WBA": ("Walgreens",),
    "MMM": ("3M",),
    "TMUS": ("T-Mobile",),
    "AMAT": ("Applied Materials",),
    "TXN": ("Texas Instruments",),
    "NOW": ("ServiceNow",),
    "SQ": ("Square Inc",),
    "COIN": ("Coinbase",),
    "RIVN": ("Rivian",),
}

# Banks and brokers are named in headlines mostly as the source of a view or a rating on
# someone else ("price target raised at J.P. Morgan", "Goldman says ...", "Wells Fargo
# downgrades Netflix"): such a mention is not news about the bank.
_BROKER_NEXT = (
    "says said say sees see expects predicts forecasts upgrades downgrades upgraded downgraded "
    "initiates reiterates recommends likes analyst analysts strategist strategists economist "
    "economists research survey poll note chief"
)
_BROKER_PREV = "at by from via per to according vs vs. says said"
BROKER_ALIASES = (
    "BofA Merrill Lynch",
    "BofA/Merrill Lynch",
    "Merrill Lynch",
    "JPMorgan",
    "JPMorgan Chase",
    "JP Morgan",
    "J.P. Morgan",
    "Bank of America",
    "BofA",
    "Wells Fargo",
    "Goldman Sachs",
    "Goldman",
    "Morgan Stanley",
    "Citigroup",
)


@dataclass(frozen=True)
class AliasGuard:
    """Context that makes an ambiguous alias an ordinary word (all compared lower-case)."""

    next_words: frozenset[str] = frozenset()
    prev_words: frozenset[str] = frozenset()
    # A colon right after the alias ("J.P. Morgan: Bausch to ...") makes it a source.
    colon_attributes: bool = False
    # Words anywhere in the text that mark the ordinary sense ("Apple" in a recipe), unless a
    # market word (shares, stock, earnings ...) is there too.
    topic_words: frozenset[str] = frozenset()


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


AMBIGUOUS_GUARDS: dict[str, AliasGuard] = {
    "Apple": AliasGuard(
        _words(
            "pie pies juice cider orchard orchards tree trees sauce seed seeds crumble crisp "
            "vinegar picking harvest blossom blossoms butter strudel tart tarts cake cakes "
            "brandy martini variety varieties jam jelly turnover dumplings slices fritters "
            "farm farms recipe recipes"
        ),
        _words("big candy toffee caramel crab custard adam's baked"),
        topic_words=_words(
            "recipe recipes bake baked baking oven cinnamon dessert desserts sugar flour "
            "tablespoon tablespoons teaspoon cup cups orchard orchards cider fruit fruits "
            "peel peeled core cored slice sliced pastry dough crumble pie pies"
        ),
    ),
    "Amazon": AliasGuard(
        _words(
            "rainforest rainforests river basin jungle forest forests deforestation region "
            "tribe tribes tribal fire fires parrot parrots warrior warriors delta biome "
            "indigenous wildfires"
        ),
        _words("brazilian peruvian colombian ecuadorian"),
        topic_words=_words("rainforest rainforests jungle deforestation tribe tribes biome"),
    ),
    "Meta": AliasGuard(
        _words(
            "analysis analyses data description descriptions tag tags study studies review "
            "reviews level model models learning knowledge information programming humour "
            "humor joke jokes irony commentary narrative fiction prefix"
        ),
        topic_words=_words("prefix word meaning greek self-referential ironic irony humour humor"),
    ),
    "Tesla": AliasGuard(_words("coil coils unit units magnet magnets tower"), _words("nikola")),
    "Alphabet": AliasGuard(
        _words("soup letter letters song book books blocks"),
        _words("greek latin roman phonetic english cyrillic arabic hebrew"),
    ),
    "Oracle": AliasGuard(_words("of"), _words("delphic delphi")),
    "Visa": AliasGuard(
        _words(
            "application applications applicant applicants rules requirement requirements "
            "holder holders policy policies ban bans waiver waivers program programme "
            "restrictions overstay overstays free process interview interviews "
            "sponsorship status lottery"
        ),
        _words(
            "student students work travel tourist business investor golden entry transit "
            "exit spouse h-1b h1b"
        ),
    ),
    "Adobe": AliasGuard(_words("house houses brick bricks home homes building buildings walls")),
    "Chevron": AliasGuard(_words("deference doctrine")),
    "Uber": AliasGuard(),
    "Ford": AliasGuard(
        _words("foundation"), _words("harrison gerald betty tom henry president john")
    ),
    # "iPhone maker Foxconn": the assembler, not Apple.
    "iPhone maker": AliasGuard(_words("foxconn hon pegatron wistron luxshare")),
    **{
        alias: AliasGuard(_words(_BROKER_NEXT), _words(_BROKER_PREV), colon_attributes=True)
        for alias in BROKER_ALIASES
    },
}

_SYMBOL = r"[A-Z]{1,5}(?:\.[A-Z])?(?![A-Za-z0-9])"
_CASHTAG = re.compile(r"(?<![\w$])\$(" + _SYMBOL + ")")
_EXCHANGE = re.compile(
    r"(?<![A-Za-z])(?i:nasdaq(?:gs|gm|cm)?|nyse(?:\s?american|\s?arca|\s?mkt)?|amex|cboe|bats"
    r"|otc(?:qx|qb|\s?markets)?)\s*:\s*(" + _SYMBOL + ")"
)
_NEXT_WORD = re.compile(r"\s+([A-Za-z][A-Za-z'-]*)")
_PREV_WORD = re.compile(r"([^\s]+)\s+$")
_JOINED = re.compile(r"-[A-Za-z]")
_URL = re.compile(r"https?://\S+")
_POSSESSIVE = re.compile(r"^['’]s(?=\s)")


def _variants(alias: str) -> set[str]:
    forms = {alias, alias.upper()}
    if " " not in alias:
        forms.add(alias[:1].upper() + alias[1:].lower())
    return forms


def _build_index() -> tuple[re.Pattern[str], dict[str, tuple[str, str]]]:
    """One case-sensitive alternation of every alias form; form -> (ticker, table alias)."""
    index: dict[str, tuple[str, str]] = {}
    for ticker, aliases in COMPANY_ALIASES.items():
        for alias in aliases:
            for form in _variants(alias):
                index[form] = (ticker, alias)
    forms = sorted(index, key=len, reverse=True)
    alternation = "|".join(re.escape(f) for f in forms)
    pattern = re.compile(r"(?<![A-Za-z0-9])(?:" + alternation + r")(?![A-Za-z0-9])")
    return pattern, index


_ALIAS_RE, _ALIAS_INDEX = _build_index()


# Words that make a text about the market even where a topic word stands beside the name.
_MARKET_WORDS = _words(
    "shares share stock stocks earnings revenue revenues profit sales investors analyst "
    "analysts nasdaq nyse ceo quarter quarterly iphone iphones ipad mac app store devices "
    "market valuation dividend buyback"
)
_TEXT_WORD = re.compile(r"[a-z][a-z'-]*")


def _off_topic(guard: AliasGuard, text: str) -> bool:
    """A topic word of the ordinary sense is in ``text`` and no market word is."""
    if not guard.topic_words:
        return False
    words = set(_TEXT_WORD.findall(text.lower()))
    return bool(words & guard.topic_words) and not words & _MARKET_WORDS


def _guard_rejects(guard: AliasGuard, before: str, after: str) -> bool:
    if _JOINED.match(after):
        return True
    if _off_topic(guard, before + " " + after):
        return True
    # "J.P. Morgan: ...", or "...: BofA" / "... - BofA" closing the headline, name the source.
    if guard.colon_attributes and (
        after.lstrip(" ").startswith(":")
        or (
            before.rstrip(" ").endswith((":", "-", "–", "—"))
            and not _URL.sub("", after).strip(" .…")
        )
    ):
        return True
    after = _POSSESSIVE.sub("", after, count=1)
    nxt = _NEXT_WORD.match(after)
    if nxt and nxt.group(1).lower() in guard.next_words:
        return True
    prev = _PREV_WORD.search(before[-48:])
    if prev:
        word = prev.group(1).strip("\"'“”‘’([,;:").lower()
        if word in guard.prev_words or word.replace(".", "", 1).isdigit():
            return True
    return False


def cashtags(text: str) -> set[str]:
    """Upper-case cashtag symbols in ``text`` (without the ``$``)."""
    return set(_CASHTAG.findall(text or ""))


def exchange_symbols(text: str) -> set[str]:
    """Symbols written as ``EXCHANGE: SYMBOL`` (NASDAQ, NYSE, AMEX, Cboe, OTC ...)."""
    return set(_EXCHANGE.findall(text or ""))


def company_mentions(text: str) -> set[str]:
    """Tickers of companies named in ``text`` (see the module docstring for the rule)."""
    found: set[str] = set()
    text = text or ""
    for match in _ALIAS_RE.finditer(text):
        ticker, alias = _ALIAS_INDEX[match.group(0)]
        guard = AMBIGUOUS_GUARDS.get(alias)
        if guard and _guard_rejects(guard, text[: match.start()], text[match.end() :]):
            continue
        found.add(ticker)
    return found


def parse_universe(universe: Iterable[str] | str) -> frozenset[str]:
    """Upper-cased symbols of a universe given as an iterable or a ``"AAPL,MSFT"`` string."""
    items = universe.split(",") if isinstance(universe, str) else universe
    return frozenset(s.strip().upper() for s in items if s and s.strip())


def infer_tickers(text: str, universe: Iterable[str] | str | None = None) -> list[str]:
    """Sorted unique tickers mentioned in ``text``.

    Sources: cashtags, ``EXCHANGE: SYMBOL`` forms and company names/aliases. When
    ``universe`` is given (iterable of symbols, or a comma-separated string as in the
    ``tickers`` SSM parameter), every ticker outside it is dropped, whatever its source.
    """
    found = cashtags(text) | exchange_symbols(text) | company_mentions(text)
    if universe is not None:
        found &= parse_universe(universe)
    return sorted(found)
