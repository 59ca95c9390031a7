"""The reference market's formulas as the policy's market model (pure, no I/O).

``contracts/PerpMarket.vy`` has Synthetix PerpsV2's shape: a skew-adjusted fill price, maker/
taker fees, a keeper fee per two-step order, margin valued at the market's own price, a
liquidation margin (buffer ratio + clamped keeper fee) plus a skew premium, and opening checks
(initial margin at the market's maximum leverage, not liquidatable). These mirrors use the
fixed-point helpers of ``hedger.core.fixedpoint`` and are checked against the contract's own
views on anvil (``tests/test_model_reference.py``, ``tests/test_policy_chain.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from hedger.core.fixedpoint import UNIT, market_fill_price, market_order_fee, sdiv
from hedger.core.model import INFINITE, MarketModel, Minimums, PostTrade, leverage, register_model
from hedger.core.types import AccountState, MarketState, Snapshot
from hedger.decide.planner import split_trade

OPENING_CUSHION_PCT = 102   # opening checks with 2% to spare: the fill may sit off the mark price


@dataclass(frozen=True, kw_only=True)
class ReferenceMarketState(MarketState):
    """The reference market's parameters and state (Synthetix PerpsV2's list), all E18 unless
    named otherwise, beside what every venue's reading says."""

    skew: int
    skew_scale: int
    funding_rate: int          # per day; positive: longs pay shorts
    funding_velocity: int
    taker_fee: int
    maker_fee: int
    max_leverage: int          # the protocol's hard limit
    min_initial_margin: int
    liquidation_buffer_ratio: int
    liquidation_fee_ratio: int
    liquidation_premium_multiplier: int
    min_keeper_fee: int
    max_keeper_fee: int
    order_keeper_fee: int      # charged to the trader for a two-step order
    min_order_delay: int
    max_order_delay: int


@dataclass(frozen=True)
class ReferenceModel(MarketModel):
    """The reference market and the hedged account on it, valued at ``price`` (the market's own)."""

    market: ReferenceMarketState
    account: AccountState
    price: int

    collateral_moves = "direct"     # transferMargin, in the same block as any trade
    orders_in_flight = 1            # delayedOrders holds one order per account
    can_hold_long = True

    # collateral_price stays 1.0 whatever the snapshot says: the market credits margin in USD, one
    # USD per whole collateral token (transferMargin scales the amount by its decimals)

    @property
    def collateral_decimals(self) -> int:  # type: ignore[override]
        return self.market.collateral_decimals

    @property
    def trades_are_orders(self) -> bool:  # type: ignore[override]
        return self.market.two_step

    @property
    def market_price(self) -> int:
        return self.price

    def _maintenance(self, size: int) -> int:
        """What a position of ``size`` is liquidated at (E18 USD of margin): PerpsV2's liquidation
        margin (buffer ratio of the notional + the keeper fee, clamped) plus the skew premium."""
        m = self.market
        notional = abs(size) * self.price // UNIT
        liq_fee = min(max(notional * m.liquidation_fee_ratio // UNIT, m.min_keeper_fee), m.max_keeper_fee)
        liq_margin = notional * m.liquidation_buffer_ratio // UNIT + liq_fee
        liq_premium = notional * abs(size) // m.skew_scale * m.liquidation_premium_multiplier // UNIT
        return liq_margin + liq_premium

    def _trade(self, delta: int) -> tuple[int, int, int, tuple[int, ...]]:
        """(average fill, fee, premium cost, leg fills) of trading ``delta`` from the account's
        size: a trade crossing zero is two legs (close, then open), each filled and charged on its
        own, the skew moved by the first before the second."""
        m, price = self.market, self.price
        fee, premium_cost = 0, 0
        legs: list[int] = []
        skew = m.skew
        for leg in split_trade(self.account.size, delta):
            if leg == 0:
                continue
            leg_fill = market_fill_price(price, skew, leg, m.skew_scale)
            fee += market_order_fee(skew, leg, leg_fill, m.taker_fee, m.maker_fee)
            if m.two_step:
                fee += m.order_keeper_fee
            # realised at the fill price, valued at the market's price: the premium is a cost
            premium_cost += sdiv(leg * (leg_fill - price), UNIT)
            legs.append(leg_fill)
            skew += leg
        fill = price
        if delta != 0:
            fill = legs[0] if len(legs) == 1 else market_fill_price(price, m.skew, delta, m.skew_scale)
        return fill, fee, premium_cost, tuple(legs)

    def fill(self, size_delta: int) -> tuple[int, int]:
        fill, fee, _, _ = self._trade(size_delta)
        return fill, fee

    def after(self, size_delta: int, collateral_delta_native: int) -> PostTrade:
        """Everything at the market's price: the fill is skew-adjusted from it, and margin,
        notional, leverage and liquidation are the market's own figures (what it liquidates on)."""
        m, price = self.market, self.price
        fill, fee, premium_cost, legs = self._trade(size_delta)
        size = self.account.size + size_delta
        margin = self.account.margin + self.collateral_usd(collateral_delta_native) - premium_cost - fee
        notional = abs(size) * price // UNIT
        lev = leverage(size, price, margin)
        if notional == 0:
            dist, liq_price = INFINITE, 0
        else:
            maintenance = self._maintenance(size)
            dist = (margin - maintenance) * UNIT // notional
            liq_price = max(price + sdiv((maintenance - margin) * UNIT, size), 0)
        return PostTrade(size=size, margin=margin, notional=notional, leverage=lev, liq_distance=dist,
                         fill_price=fill, fee=fee, leg_fills=legs if len(legs) == 2 else (),
                         liquidation_price=liq_price)

    def max_withdrawal(self) -> int:
        """``accessibleMargin``: margin above the initial margin, in native units (rounded down)."""
        return self.collateral_native(max(self.account.accessible_margin, 0))

    def minimums(self) -> Minimums:
        return Minimums(collateral=self.market.min_initial_margin, order=0)

    def carry_rate_per_day(self, size: int) -> int:
        """Funding: a positive rate is paid by longs to shorts."""
        return -self.market.funding_rate if size < 0 else self.market.funding_rate

    def margin_for_leverage(self, notional: int, leverage: int) -> int:
        return notional * UNIT // leverage

    def distance_at_leverage(self, size: int, leverage: int) -> int:
        """``after()``'s distance of a position of ``size`` whose margin is notional / ``leverage``,
        rounded up (margin and distance): an account ``after()`` reports at least this far from
        liquidation is at most at ``leverage``."""
        notional = abs(size) * self.price // UNIT
        if notional == 0 or leverage <= 0:
            return INFINITE
        return -(-(-(-notional * UNIT // leverage) - self._maintenance(size)) * UNIT // notional)

    def margin_for_distance(self, size: int, distance: int) -> int:
        """Liquidation margin + premium + ``distance`` of the notional (rounded up): ``after()``
        then reports exactly ``distance`` (its floor division gives back what was rounded up)."""
        notional = abs(size) * self.price // UNIT
        if notional == 0:
            return 0
        return -(-distance * notional // UNIT) + self._maintenance(size)

    def opening_allowed(self, pt: PostTrade) -> bool:
        """Initial margin at the market's maximum leverage (at least its minimum initial margin)
        and not liquidatable, as ``_trade`` checks a growing position, with the cushion."""
        m = self.market
        required = max(pt.notional * UNIT // m.max_leverage, m.min_initial_margin) * OPENING_CUSHION_PCT // 100
        return pt.margin >= required and pt.liq_distance > 0


@register_model("reference")
def model_for(s: Snapshot) -> ReferenceModel:
    """The model of a snapshot read from the reference market, at the market's own price (the
    oracle's when the market reports none)."""
    price = s.market.price if s.market.price > 0 else s.oracle.price_e18
    return ReferenceModel(market=s.market, account=s.account, price=price)
