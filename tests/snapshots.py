"""Builders of realistic :class:`hedger.core.types.Snapshot` objects for the pure-core tests (no chain).

Defaults: ETH at 3000 USD from an 8-decimal Chainlink-style feed updated a
minute ago, an L2 sequencer up for two hours, and the reference market with
the parameters of :class:`hedger.sim.deploy.MarketParams` (skew scale 1e6 ETH,
taker 0.06%, maker 0.02%, 50x, liquidation buffer 0.75%, liquidation fee
0.02% clamped to [4, 100] USD, premium multiplier 1.5625, min initial margin
40 USD, order keeper fee 2 USD on a two-step market only, 6-decimal
collateral). Everything can be overridden by keyword.

Units: ``eth("1.5")`` and ``usd("3000")`` give E18 integers, ``usdc("50000")``
native 6-decimal collateral units; decimal strings are converted exactly.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from hedger.core.types import UNIT, AccountState, ChainView, Exposure, FeedRound, Order, OrderKind, OrderState, Snapshot
from hedger.protocols.reference.model import ReferenceMarketState  # (also registers the "reference" market model)

NOW = 1_700_000_000
FEED_DECIMALS = 8
COLLATERAL_DECIMALS = 6

MARKET_ADDRESS = "0x" + "11" * 20
FEED_ADDRESS = "0x" + "22" * 20
SEQUENCER_ADDRESS = "0x" + "33" * 20
ACCOUNT_ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"


def _exact(x: int | str | Decimal, decimals: int) -> int:
    v = Decimal(x) * (10 ** decimals)
    if v != v.to_integral_value():
        raise ValueError(f"{x} has more than {decimals} decimals")
    return int(v)


def eth(x: int | str | Decimal) -> int:
    """Asset units -> E18."""
    return _exact(x, 18)


def usd(x: int | str | Decimal) -> int:
    """USD -> E18."""
    return _exact(x, 18)


def frac(x: int | str | Decimal) -> int:
    """A fraction or leverage -> E18 (``frac("0.05")``, ``frac(3)``)."""
    return _exact(x, 18)


def usdc(x: int | str | Decimal) -> int:
    """USD -> native 6-decimal collateral units."""
    return _exact(x, COLLATERAL_DECIMALS)


# Reference market parameters (hedger/sim/deploy.py MarketParams), E18.
SKEW_SCALE = eth(1_000_000)
TAKER_FEE = frac("0.0006")
MAKER_FEE = frac("0.0002")
MAX_LEVERAGE = frac(50)
LIQ_BUFFER_RATIO = frac("0.0075")
LIQ_FEE_RATIO = frac("0.0002")
LIQ_PREMIUM_MULTIPLIER = frac("1.5625")
MIN_KEEPER_FEE = usd(4)
MAX_KEEPER_FEE = usd(100)
MIN_INITIAL_MARGIN = usd(40)
ORDER_KEEPER_FEE = usd(2)
MIN_ORDER_DELAY = 15
MAX_ORDER_DELAY = 120


def liquidation_margin(size: int, price: int, m: ReferenceMarketState) -> int:
    """The contract's liquidation margin plus premium for a position (E18), at ``price``."""
    notional = abs(size) * price // UNIT
    if notional == 0:
        return 0
    fee = min(max(notional * m.liquidation_fee_ratio // UNIT, m.min_keeper_fee), m.max_keeper_fee)
    premium = notional * abs(size) // m.skew_scale * m.liquidation_premium_multiplier // UNIT
    return notional * m.liquidation_buffer_ratio // UNIT + fee + premium


def initial_margin_required(size: int, price: int, m: ReferenceMarketState) -> int:
    if size == 0:
        return 0
    return max(abs(size) * price // UNIT * UNIT // m.max_leverage, m.min_initial_margin)


def pending_order(size_delta: int, submitted_at: int, *, desired_fill_price: int = 0,
                  min_delay: int = MIN_ORDER_DELAY, max_delay: int = MAX_ORDER_DELAY, key: str = "",
                  kind: OrderKind | None = None, collateral_delta: int = 0,
                  state: OrderState = OrderState.PENDING) -> Order:
    """A two-step order (the reference market's: keyed by the account, unless ``key`` is given)."""
    if kind is None:
        kind = OrderKind.INCREASE if size_delta != 0 else \
            (OrderKind.COLLATERAL_IN if collateral_delta >= 0 else OrderKind.COLLATERAL_OUT)
    return Order(key=key or ACCOUNT_ADDRESS, kind=kind, size_delta=size_delta, collateral_delta=collateral_delta,
                 acceptable_price=desired_fill_price, submitted_at=submitted_at,
                 executable_at=submitted_at + min_delay, expires_at=submitted_at + max_delay, state=state)


def make_snapshot(
    *,
    # chain
    now: int = NOW,
    wall_clock: int | None = None,
    chain_id: int = 10,
    block_number: int = 123_456,
    # price feed
    price: int = usd(3000),             # E18; converted to the feed's decimals
    answer: int | None = None,          # raw feed answer, overrides ``price``
    feed_decimals: int = FEED_DECIMALS,
    round_id: int = 1,
    updated_at: int | None = None,      # default: a minute before ``now``
    # sequencer (None: no sequencer feed, an L1)
    sequencer: bool = True,
    sequencer_answer: int = 0,
    sequencer_started_at: int | None = None,   # default: two hours before ``now``
    # market
    market_price: int | None = None,    # default: the feed's price
    price_invalid: bool = False,
    skew: int = 0,
    funding_rate: int = 0,
    funding_velocity: int = 0,
    two_step: bool = False,
    order_keeper_fee: int | None = None,   # default: 2 USD when two_step, else 0
    collateral_decimals: int = COLLATERAL_DECIMALS,
    market: dict[str, Any] | None = None,  # any other ReferenceMarketState field
    # account
    size: int = 0,                      # E18 signed
    margin: int = 0,                    # E18 remaining margin
    accessible_margin: int | None = None,   # default: as the contract computes it
    liquidation_price: int | None = None,   # default: as the contract computes it (no funding)
    wallet: int = 0,                    # native collateral units
    allowance: int = 0,
    pending: Order | None = None,       # one order (the reference market's delayed order)
    orders: tuple[Order, ...] = (),     # or several
    # exposure
    spot: int = 0,                      # native spot units (18 decimals by default)
    spot_decimals: int = 18,
    extra: int = 0,                     # E18
    last_rebalance_at: int | None = None,
) -> Snapshot:
    if answer is None:
        answer = price // 10 ** (18 - feed_decimals) if feed_decimals <= 18 else price * 10 ** (feed_decimals - 18)
    if updated_at is None:
        updated_at = now - 60
    oracle = FeedRound(address=FEED_ADDRESS, decimals=feed_decimals, round_id=round_id, answer=answer,
                       started_at=updated_at, updated_at=updated_at, description="ETH / USD")
    seq = None
    if sequencer:
        started = now - 7200 if sequencer_started_at is None else sequencer_started_at
        seq = FeedRound(address=SEQUENCER_ADDRESS, decimals=0, round_id=1, answer=sequencer_answer,
                        started_at=started, updated_at=started, description="L2 Sequencer Uptime Status Feed")
    chain = ChainView(chain_id=chain_id, block_number=block_number, block_timestamp=now,
                      wall_clock=now if wall_clock is None else wall_clock, genesis_hash="0x" + "00" * 32)
    mkt = ReferenceMarketState(
        address=MARKET_ADDRESS, price=oracle.price_e18 if market_price is None else market_price,
        price_invalid=price_invalid, skew=skew, skew_scale=SKEW_SCALE, funding_rate=funding_rate,
        funding_velocity=funding_velocity, taker_fee=TAKER_FEE, maker_fee=MAKER_FEE, max_leverage=MAX_LEVERAGE,
        min_initial_margin=MIN_INITIAL_MARGIN, liquidation_buffer_ratio=LIQ_BUFFER_RATIO,
        liquidation_fee_ratio=LIQ_FEE_RATIO, liquidation_premium_multiplier=LIQ_PREMIUM_MULTIPLIER,
        min_keeper_fee=MIN_KEEPER_FEE, max_keeper_fee=MAX_KEEPER_FEE,
        order_keeper_fee=(ORDER_KEEPER_FEE if two_step else 0) if order_keeper_fee is None else order_keeper_fee,
        min_order_delay=MIN_ORDER_DELAY, max_order_delay=MAX_ORDER_DELAY,
        collateral_decimals=collateral_decimals, two_step=two_step)
    if market:
        mkt = replace(mkt, **market)
    px = oracle.price_e18
    if accessible_margin is None:
        accessible_margin = max(margin - initial_margin_required(size, px, mkt), 0) if margin > 0 else 0
    if liquidation_price is None:
        if size == 0 or px <= 0:
            liquidation_price = 0
        else:
            need = liquidation_margin(size, px, mkt) - margin
            q = abs(need * UNIT) // abs(size)
            liquidation_price = max(px + (q if (need >= 0) == (size > 0) else -q), 0)
    acct = AccountState(address=ACCOUNT_ADDRESS, size=size, margin=margin, accessible_margin=accessible_margin,
                        liquidation_price=liquidation_price, accrued_funding=0, pnl=0,
                        orders=orders + ((pending,) if pending is not None else ()),
                        collateral_wallet=wallet, collateral_allowance=allowance)
    expo = Exposure(spot_balance=spot, spot_decimals=spot_decimals, extra=extra)
    return Snapshot(chain=chain, oracle=oracle, sequencer=seq, market=mkt, account=acct, exposure=expo,
                    last_rebalance_at=last_rebalance_at)


# ---- small editing helpers for an existing snapshot ----

def with_oracle(s: Snapshot, **kw: Any) -> Snapshot:
    return replace(s, oracle=replace(s.oracle, **kw))


def with_chain(s: Snapshot, **kw: Any) -> Snapshot:
    return replace(s, chain=replace(s.chain, **kw))


def with_market(s: Snapshot, **kw: Any) -> Snapshot:
    return replace(s, market=replace(s.market, **kw))


def with_account(s: Snapshot, **kw: Any) -> Snapshot:
    return replace(s, account=replace(s.account, **kw))


def with_sequencer(s: Snapshot, **kw: Any) -> Snapshot:
    assert s.sequencer is not None
    return replace(s, sequencer=replace(s.sequencer, **kw))
