"""A fault plan for the local Alpaca: the failures the real one has, at a chosen rate, seeded.

``FaultPlan.parse("data=0.1,orders=0.1,seed=7")``: that fraction of market-data requests is
answered 429 (with rate-limit headers), 500, or stalled past the client's timeout; that fraction
of accepted order submissions is recorded by the server and then loses its reply (the connection
is dropped without an answer). Each kind draws from its own generator seeded by ``seed``, so the
same plan over the same sequence of requests injects the same faults.

``data-outage=10:00-10:45`` (New York time by the server's clock, end excluded; repeatable): every
market-data request inside the window is answered 500, as in an outage of the data API.
``data-stale=10:00-10:45``: inside the window the market-data API answers, but with no new bars:
only the bars that had closed by the window's start (a feed that froze).
Two more for the money path: ``late=SECONDS`` runs the server's clock that many seconds ahead of
the replay (every dispatch reaches the broker that late), and ``unfilled=RATE`` leaves that
fraction of accepted orders unfilled until they expire at their session's close (as a halted or
illiquid symbol's market order does).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import datetime, time
from enum import StrEnum
from zoneinfo import ZoneInfo


class Fault(StrEnum):
    RATE_LIMITED = "429"
    SERVER_ERROR = "500"
    STALLED = "stall"
    REPLY_LOST = "reply_lost"
    OUTAGE = "outage"  # a data request inside a data-outage window
    STALE = "stale"  # a data request inside a data-stale window
    UNFILLED = "unfilled"


DATA_FAULTS = (Fault.RATE_LIMITED, Fault.SERVER_ERROR, Fault.STALLED)
# How long a stalled reply waits: past the client's timeout (ALPACA_HTTP_TIMEOUT), not forever.
DEFAULT_STALL_SECONDS = 2.5
# The X-RateLimit-Reset an injected 429 announces: this many wall-clock seconds ahead.
DEFAULT_RESET_SECONDS = 1
NEW_YORK = ZoneInfo("America/New_York")
Window = tuple[time, time]  # New York time of day, [start, end)


def _window(spec: str, raw: str) -> Window:
    start, sep, end = raw.strip().partition("-")
    try:
        if not sep:
            raise ValueError
        window = (time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))
    except ValueError:
        raise ValueError(f"bad fault spec {spec!r}: expected HH:MM-HH:MM (New York time)") from None
    if window[0] >= window[1]:
        raise ValueError(f"bad fault spec {spec!r}: the window ends before it starts")
    return window


def _inside(windows: tuple[Window, ...], now: datetime) -> Window | None:
    local = now.astimezone(NEW_YORK).time()
    return next((w for w in windows if w[0] <= local < w[1]), None)


@dataclass(frozen=True)
class FaultPlan:
    """Which fraction of data requests and order submissions fail, and the seed that picks them."""

    data: float = 0.0
    orders: float = 0.0
    seed: int = 0
    late: float = 0.0
    unfilled: float = 0.0
    stall_seconds: float = DEFAULT_STALL_SECONDS
    reset_seconds: int = DEFAULT_RESET_SECONDS
    data_outages: tuple[Window, ...] = ()
    data_stale: tuple[Window, ...] = ()

    def __post_init__(self) -> None:
        for name in ("data", "orders", "unfilled"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate {name}={rate} is not between 0 and 1")
        if self.late < 0:
            raise ValueError(f"fault late={self.late:g} must not be negative")
        if self.stall_seconds <= 0:
            raise ValueError("stall_seconds must be positive")

    @classmethod
    def parse(cls, spec: str, *, seed: int | None = None) -> FaultPlan:
        """``data=0.1,orders=0.1[,late=SECONDS][,unfilled=RATE][,seed=N]``; an explicit ``seed``
        argument wins over the spec's."""
        values: dict[str, float | int] = {}
        windows: dict[str, list[Window]] = {"data-outage": [], "data-stale": []}
        for part in spec.split(","):
            if not part.strip():
                continue
            name, sep, raw = part.partition("=")
            name = name.strip().lower()
            if sep and name in windows:
                windows[name].append(_window(part.strip(), raw))
                continue
            if not sep or name not in ("data", "orders", "late", "unfilled", "seed"):
                raise ValueError(
                    f"bad fault spec {part.strip()!r}: expected data=RATE, orders=RATE,"
                    " late=SECONDS, unfilled=RATE, seed=N, data-outage=HH:MM-HH:MM or"
                    " data-stale=HH:MM-HH:MM"
                )
            try:
                values[name] = int(raw) if name == "seed" else float(raw)
            except ValueError:
                raise ValueError(
                    f"bad fault spec {part.strip()!r}: {raw.strip()!r} is not a number"
                ) from None
        if seed is not None:
            values["seed"] = seed
        return cls(
            data=float(values.get("data", 0.0)),
            orders=float(values.get("orders", 0.0)),
            seed=int(values.get("seed", 0)),
            data_outages=tuple(windows["data-outage"]),
            data_stale=tuple(windows["data-stale"]),
            late=float(values.get("late", 0.0)),
            unfilled=float(values.get("unfilled", 0.0)),
        )

    @property
    def active(self) -> bool:
        return (
            self.data > 0
            or self.orders > 0
            or self.late > 0
            or self.unfilled > 0
            or bool(self.data_outages or self.data_stale)
        )

    def data_outage_at(self, now: datetime) -> bool:
        """Is the market-data API down at `now` (a `data-outage` window)?"""
        return _inside(self.data_outages, now) is not None

    def data_frozen_at(self, now: datetime) -> datetime | None:
        """Inside a `data-stale` window: the window's start on `now`'s New York day (the feed
        shows only the bars closed by then); else None."""
        window = _inside(self.data_stale, now)
        if window is None:
            return None
        day = now.astimezone(NEW_YORK).date()
        return datetime.combine(day, window[0], NEW_YORK)

    def injector(self) -> FaultInjector:
        """A fresh, seeded sequence of decisions for one server."""
        return FaultInjector(self)

    def __str__(self) -> str:
        extra = "".join(
            f",{name}={value:g}"
            for name, value in (("late", self.late), ("unfilled", self.unfilled))
            if value
        )
        text = f"data={self.data:g},orders={self.orders:g}{extra},seed={self.seed}"
        for name, windows in (("data-outage", self.data_outages), ("data-stale", self.data_stale)):
            for start, end in windows:
                text += f",{name}={start:%H:%M}-{end:%H:%M}"
        return text


@dataclass
class FaultInjector:
    """Decides, request by request, which fault (if any) to inject; records what it injected."""

    plan: FaultPlan
    injected: list[tuple[str, Fault]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._data = random.Random(f"{self.plan.seed}:data")
        self._orders = random.Random(f"{self.plan.seed}:orders")
        self._unfilled = random.Random(f"{self.plan.seed}:unfilled")

    def for_data(self, path: str) -> Fault | None:
        """The fault for this market-data request, or None."""
        with self._lock:
            draw, pick = self._data.random(), self._data.randrange(len(DATA_FAULTS))
            if draw >= self.plan.data:
                return None
            fault = DATA_FAULTS[pick]
            self.injected.append((path, fault))
            return fault

    def for_order(self, path: str) -> Fault | None:
        """REPLY_LOST for this order submission, or None; the server applies it (and calls
        `record`) only if it accepts the order: a refusal is always answered."""
        with self._lock:
            return Fault.REPLY_LOST if self._orders.random() < self.plan.orders else None

    def leave_unfilled(self, path: str) -> bool:
        """Whether this accepted order is left unfilled until it expires (recorded)."""
        with self._lock:
            if self._unfilled.random() >= self.plan.unfilled:
                return False
            self.injected.append((path, Fault.UNFILLED))
            return True

    def record(self, path: str, fault: Fault) -> None:
        with self._lock:
            self.injected.append((path, fault))

    def counts(self) -> dict[str, int]:
        tally: dict[str, int] = {}
        for _, fault in self.injected:
            tally[fault.value] = tally.get(fault.value, 0) + 1
        return tally
