"""A fault plan for the local Alpaca: the failures the real one has, at a chosen rate, seeded.

``FaultPlan.parse("data=0.1,orders=0.1,seed=7")``: that fraction of market-data requests is
answered 429 (with rate-limit headers), 500, or stalled past the client's timeout; that fraction
of accepted order submissions is recorded by the server and then loses its reply (the connection
is dropped without an answer). Each kind draws from its own generator seeded by ``seed``, so the
same plan over the same sequence of requests injects the same faults.

Two more for the money path: ``late=SECONDS`` runs the server's clock that many seconds ahead of
the replay (every dispatch reaches the broker that late), and ``unfilled=RATE`` leaves that
fraction of accepted orders unfilled until they expire at their session's close (as a halted or
illiquid symbol's market order does).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from enum import StrEnum


class Fault(StrEnum):
    RATE_LIMITED = "429"
    SERVER_ERROR = "500"
    STALLED = "stall"
    REPLY_LOST = "reply_lost"
    UNFILLED = "unfilled"


DATA_FAULTS = (Fault.RATE_LIMITED, Fault.SERVER_ERROR, Fault.STALLED)
# How long a stalled reply waits: past the client's timeout (ALPACA_HTTP_TIMEOUT), not forever.
DEFAULT_STALL_SECONDS = 2.5
# The X-RateLimit-Reset an injected 429 announces: this many wall-clock seconds ahead.
DEFAULT_RESET_SECONDS = 1


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
        for part in spec.split(","):
            if not part.strip():
                continue
            name, sep, raw = part.partition("=")
            name = name.strip().lower()
            if not sep or name not in ("data", "orders", "late", "unfilled", "seed"):
                raise ValueError(
                    f"bad fault spec {part.strip()!r}: expected data=RATE, orders=RATE,"
                    " late=SECONDS, unfilled=RATE or seed=N"
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
            late=float(values.get("late", 0.0)),
            unfilled=float(values.get("unfilled", 0.0)),
        )

    @property
    def active(self) -> bool:
        return self.data > 0 or self.orders > 0 or self.late > 0 or self.unfilled > 0

    def injector(self) -> FaultInjector:
        """A fresh, seeded sequence of decisions for one server."""
        return FaultInjector(self)

    def __str__(self) -> str:
        extra = "".join(
            f",{name}={value:g}"
            for name, value in (("late", self.late), ("unfilled", self.unfilled))
            if value
        )
        return f"data={self.data:g},orders={self.orders:g}{extra},seed={self.seed}"


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
