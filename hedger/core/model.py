"""A venue's market model: what the policy asks a venue, in venue-neutral units. Pure.

Each venue (``hedger/protocols/<venue>/model.py``) implements :class:`MarketModel` from one
cycle's reads; the policy (``hedger.decide.policy``) asks it and knows no venue's formulas.
Units: sizes are E18 asset units (signed, negative short), money E18 USD, collateral moves
native units of the collateral token, fractions and leverage E18.

A snapshot names its venue (``Snapshot.venue``); :func:`model_for` builds that venue's model
from it with the builder the venue registered (:func:`register_model`). The model is rebuilt
from the snapshot each time it is asked for, so a snapshot edited with ``dataclasses.replace``
(another wallet, another price) is never answered by a model of the old one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Literal

from hedger.core.fixedpoint import sdiv

if TYPE_CHECKING:
    from hedger.core.types import Snapshot

UNIT = 10**18
INFINITE = 2**255    # leverage without margin, liquidation distance without a position


@dataclass(frozen=True)
class PostTrade:
    """The account as the venue would hold it after a trade and a collateral move (E18), valued
    at the venue's own price (the one that liquidates)."""

    size: int
    margin: int          # remaining margin (equity) at the market's price
    notional: int
    leverage: int        # the venue's display measure; INFINITE when margin <= 0 with a position
    liq_distance: int    # fraction of the price before liquidation; INFINITE without a position
    fill_price: int      # the whole trade's average fill (one leg: its fill)
    fee: int             # every fee the trade is charged (trading, keeper)
    leg_fills: tuple[int, ...] = ()   # a trade crossing zero: the close's and the opening's fills
    liquidation_price: int = 0        # the price at which the position is liquidated; 0 without one


@dataclass(frozen=True)
class Minimums:
    """The venue's floors: the least collateral a position needs (E18 USD) and the smallest order
    (E18 asset units, 0: none)."""

    collateral: int
    order: int = 0


def leverage(size: int, price: int, margin: int) -> int:
    """Notional over margin (E18): 0 without a position, INFINITE with one and no margin."""
    notional = abs(size) * price // UNIT
    if notional == 0:
        return 0
    if margin <= 0:
        return INFINITE
    return notional * UNIT // margin


class MarketModel(ABC):
    """One venue's market and the hedged account on it, as one cycle read them."""

    collateral_decimals: int                 # decimals of the collateral token (native units)
    collateral_moves: Literal["direct", "order"] = "direct"   # a deposit is a direct call, or an order
    trades_are_orders: bool = False          # a trade is an order a keeper fills later (two-step)
    orders_in_flight: int = 1                # size orders that may be pending at once
    collateral_orders_in_flight: int = 0     # collateral-only orders that may be pending at once (0: none)
    can_hold_long: bool = True               # negative exposure can be hedged with a long

    @property
    @abstractmethod
    def market_price(self) -> int:
        """The price the venue values positions at (the one that liquidates), E18."""

    @abstractmethod
    def fill(self, size_delta: int) -> tuple[int, int]:
        """Expected (average fill price, fee) of trading ``size_delta`` now, E18."""

    @abstractmethod
    def after(self, size_delta: int, collateral_delta_native: int) -> PostTrade:
        """The account after trading ``size_delta`` and moving ``collateral_delta_native`` (+ in, - out)."""

    @abstractmethod
    def max_withdrawal(self) -> int:
        """The largest withdrawal (native units) the venue allows from the account as it stands."""

    @abstractmethod
    def minimums(self) -> Minimums:
        """The venue's minimum collateral and minimum order."""

    @abstractmethod
    def carry_rate_per_day(self, size: int) -> int:
        """Signed fraction of its notional a position on ``size``'s side pays a day (negative: earns), E18."""

    def carry_per_day(self, size: int) -> int:
        """Signed E18 USD a position of ``size`` pays a day at the market's price (funding for a perp)."""
        return sdiv(abs(size) * self.market_price // UNIT * self.carry_rate_per_day(size), UNIT)

    @abstractmethod
    def margin_for_leverage(self, notional: int, leverage: int) -> int:
        """The margin (E18 USD) that puts a position of ``notional`` at the operator's ``leverage``."""

    @abstractmethod
    def distance_at_leverage(self, size: int, leverage: int) -> int:
        """The liquidation distance (E18 fraction of the market's price) of a position of ``size``
        held with margin = its notional / ``leverage``: how the operator's leverage settings become
        the policy's distance band on this venue. INFINITE without a position or at leverage 0;
        negative when such a position would already be liquidatable."""

    @abstractmethod
    def margin_for_distance(self, size: int, distance: int) -> int:
        """The least margin (E18 USD, at the market's price) that puts the liquidation of a position
        of ``size`` ``distance`` (E18 fraction) away from the market's price: ``after()`` of such an
        account reports at least that distance (up to rounding). 0 without a position."""

    @property
    def collateral_price(self) -> int:
        """What the venue credits one whole collateral token as (E18 USD); 1.0 unless a venue says."""
        return UNIT

    def collateral_usd(self, native: int) -> int:
        """E18 USD the venue credits for ``native`` units of the collateral token (signed, toward zero)."""
        v = abs(native) * self.collateral_price // 10 ** self.collateral_decimals
        return v if native >= 0 else -v

    def collateral_native(self, usd: int, round_up: bool = False) -> int:
        """Native units of the collateral token worth ``usd`` (E18, >= 0) to the venue: rounded down,
        or up (``round_up``: the least amount worth at least ``usd``, for a deposit that must cover it)."""
        num, den = usd * 10 ** self.collateral_decimals, self.collateral_price
        return -(-num // den) if round_up else num // den

    def claimable_usd(self) -> int:
        """E18 USD the venue holds for the account to claim by a transaction (GMX v2: funding
        received and capped price impact, never added to collateral). Default: none."""
        return 0

    def position_drift(self, seconds: int) -> int:
        """How far (E18 asset units) the position may move by itself in ``seconds`` (a lending
        venue's debt accrues interest), so that reconciliation does not take it for a change
        made outside the hedger. Default: none (a perp's size moves only by trades)."""
        return 0

    def reduction_budget(self) -> int | None:
        """Collateral (native units) that can pay for shrinking the position in one action, or None
        when shrinking needs none (a perp's reduction releases margin). A lending venue buys the
        borrowed asset back with collateral withdrawn from the pool, which the pool allows only while
        the account stays healthy: the policy then shrinks by what this budget buys, over cycles."""
        return None

    def account_refusal(self) -> str | None:
        """Why the venue's account cannot be hedged as read (a state the model cannot judge), or
        None: a refusal (exit 9), nothing sent. Default: none."""
        return None

    def venue_refusal(self, pt: PostTrade) -> str | None:
        """Why the venue itself refuses to grow the position to ``pt`` whatever the collateral (a
        reserve paused, frozen or out of liquidity), or None: a refusal, nothing sent. Default: none."""
        return None

    @abstractmethod
    def opening_allowed(self, pt: PostTrade) -> bool:
        """Would the venue let a position open or grow to ``pt`` (its own margin checks, with a cushion)?"""


ModelBuilder = Callable[["Snapshot"], MarketModel]
_BUILDERS: dict[str, ModelBuilder] = {}


def register_model(venue: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator: ``builder(snapshot) -> MarketModel`` answers for snapshots of ``venue``."""
    def deco(builder: ModelBuilder) -> ModelBuilder:
        _BUILDERS[venue] = builder
        return builder
    return deco


def model_for(s: "Snapshot") -> MarketModel:
    """The market model of the venue ``s`` was read from, built from ``s``."""
    try:
        builder = _BUILDERS[s.venue]
    except KeyError:
        known = ", ".join(sorted(_BUILDERS)) or "none"
        raise LookupError(f"Snapshot.venue {s.venue!r} has no market model registered (registered: {known}); "
                          f"fix: import its package (hedger.protocols registers every venue)") from None
    return builder(s)
