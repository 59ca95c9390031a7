"""Contract tests of contracts/PerpMarket.vy: economics, two-step orders and units.

Exact expectations come from the Python mirrors in hedger/core/fixedpoint.py (and a
small mirror of the margin/liquidation math below). Where a test needs the
block time to be known exactly it pins it (``at_time``): anvil evaluates
``eth_call``/``eth_estimateGas`` at the latest block, so mining an empty block
at T and pinning the next block to T makes a transaction and the views around
it all see ``block.timestamp == T``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import pytest
from web3.logs import DISCARD

from hedger.sim.deploy import MarketParams, deploy_contract, transact
from hedger.core.errors import SimulationFailed
from hedger.chain.executor import KeySigner, TxSender
from hedger.core.secrets import Secret
from hedger.core.fixedpoint import (UNIT, market_fill_price, market_funding_rate, market_funding_velocity,
                               market_order_fee, market_unrecorded_funding, sdiv)
from hedger.sim.localchain import dev_account
from tests.conftest import USDC, WETH

USD = UNIT
USDC_SCALE = 10**12          # 18-decimal accounting per native USDC unit
PRICE_SCALE = 10**10         # 18-decimal price per 8-decimal feed unit
PARAM_NAMES = [f.name for f in fields(MarketParams)]
KEEPER = 5


# --------------------------------------------------------------------------- helpers

def addr(i: int) -> str:
    return dev_account(i).address


@dataclass(frozen=True)
class Pos:
    margin: int
    size: int
    lastPrice: int
    lastFundingEntry: int


@dataclass(frozen=True)
class State:
    """What the market's funding math reads, at one block."""
    params: dict[str, int]
    skew: int
    rate_last: int
    index_last: int
    last_recomputed: int


def position(market: Any, i: int, block: Any = "latest") -> Pos:
    return Pos(*market.functions.positions(addr(i)).call(block_identifier=block))


def read_state(market: Any, block: Any = "latest") -> State:
    f = market.functions
    return State(params=dict(zip(PARAM_NAMES, f.params().call(block_identifier=block))),
                 skew=f.marketSkew().call(block_identifier=block),
                 rate_last=f.fundingRateLast().call(block_identifier=block),
                 index_last=f.fundingIndexLast().call(block_identifier=block),
                 last_recomputed=f.fundingLastRecomputed().call(block_identifier=block))


def oracle_price(market: Any) -> int:
    price, invalid = market.functions.assetPrice().call()
    assert not invalid
    return price


def at_time(chain: Any, ts: int) -> None:
    """Mine an empty block at ``ts`` and make the next block carry ``ts`` too."""
    assert ts >= chain.now(), "time only moves forward"
    chain.w3.provider.make_request("evm_mine", [ts])
    chain.w3.provider.make_request("evm_setNextBlockTimestamp", [ts])


def pin_next(chain: Any, ts: int) -> None:
    chain.w3.provider.make_request("evm_setNextBlockTimestamp", [ts])


def block_ts(chain: Any, receipt: dict[str, Any]) -> int:
    return int(chain.w3.eth.get_block(receipt["blockNumber"])["timestamp"])


def event(contract: Any, receipt: dict[str, Any], name: str) -> Any:
    evs = getattr(contract.events, name)().process_receipt(receipt, errors=DISCARD)
    assert len(evs) == 1, f"expected one {name}, got {len(evs)}"
    return evs[0]["args"]


_SENDERS: dict[tuple[int, int], TxSender] = {}


def send(chain: Any, i: int, name: str, address: str, fn: str, *args: Any) -> dict[str, Any]:
    """``chain.call_as`` with a wider gas margin.

    TxSender estimates gas at the latest block. When that block has the same
    timestamp as the market's last funding recompute, the simulated recompute
    rewrites its slots with the same values (cheap), while the mined
    transaction lands a second later and really writes them (up to ~44k more
    gas when they go from zero to non-zero): with the default 20% margin that
    can run out of gas. A revert in simulation still raises SimulationFailed.
    """
    key = (id(chain.w3), i)
    if key not in _SENDERS:
        _SENDERS[key] = TxSender(chain.w3, KeySigner(Secret(dev_account(i).key.hex())), gas_margin_bps=10_000)
    return transact(_SENDERS[key], name, address, fn, *args)


def fund(chain: Any, market: str, i: int, amount: int, token: str | None = None) -> dict[str, Any]:
    """Mint ``amount`` native units of the collateral to account i and deposit them into ``market``."""
    token = token or chain.d.collateral
    chain.admin("ReferenceToken", token, "mint", addr(i), amount)
    send(chain, i, "ReferenceToken", token, "approve", market, amount)
    return send(chain, i, "PerpMarket", market, "transferMargin", amount)


def trade_on(chain: Any, market: str, i: int, size_delta: int, bound: int | None = None) -> dict[str, Any]:
    if bound is None:
        bound = 2**255 if size_delta > 0 else 0
    return send(chain, i, "PerpMarket", market, "modifyPosition", size_delta, bound)


def deposit(chain: Any, i: int, amount: int) -> dict[str, Any]:
    return fund(chain, chain.d.market, i, amount)


def trade(chain: Any, i: int, size_delta: int, bound: int | None = None) -> dict[str, Any]:
    return trade_on(chain, chain.d.market, i, size_delta, bound)


def deploy_market(chain: Any, params: MarketParams, collateral: str | None = None,
                  feed: str | None = None) -> Any:
    address = deploy_contract(chain.deployer, "PerpMarket", collateral or chain.d.collateral,
                              feed or chain.d.oracle, params.as_tuple())
    return chain.contract("PerpMarket", address)


def set_feed_answer(chain: Any, answer: int, feed: str | None = None) -> dict[str, Any]:
    return chain.admin("PriceFeed", feed or chain.d.oracle, "setAnswer", answer)


def usdc_balance(chain: Any, who: str) -> int:
    return chain.usdc.functions.balanceOf(who).call()


# ---- a mirror of the margin and liquidation math, on top of hedger.core.fixedpoint

def m_notional(size: int, price: int) -> int:
    return abs(size) * price // UNIT


def m_index(st: State, price: int, ts: int) -> int:
    p = st.params
    elapsed = ts - st.last_recomputed
    velocity = market_funding_velocity(st.skew, p["skewScale"], p["maxFundingVelocity"])
    rate_now = market_funding_rate(st.rate_last, velocity, elapsed)
    return st.index_last + market_unrecorded_funding(st.rate_last, rate_now, elapsed, price)


def m_accrued(st: State, pos: Pos, price: int, ts: int) -> int:
    if pos.size == 0:
        return 0
    return sdiv(pos.size * (m_index(st, price, ts) - pos.lastFundingEntry), UNIT)


def m_pnl(pos: Pos, price: int) -> int:
    return sdiv(pos.size * (price - pos.lastPrice), UNIT)


def m_liq_fee(st: State, size: int, price: int) -> int:
    p = st.params
    return min(max(m_notional(size, price) * p["liquidationFeeRatio"] // UNIT, p["minKeeperFee"]),
               p["maxKeeperFee"])


def m_liq_margin(st: State, size: int, price: int) -> int:
    return m_notional(size, price) * st.params["liquidationBufferRatio"] // UNIT + m_liq_fee(st, size, price)


def m_liq_premium(st: State, size: int, price: int) -> int:
    p = st.params
    return m_notional(size, price) * abs(size) // p["skewScale"] * p["liquidationPremiumMultiplier"] // UNIT


def m_remaining(st: State, pos: Pos, price: int, ts: int) -> int:
    return pos.margin + m_pnl(pos, price) + m_accrued(st, pos, price, ts)


def m_can_liquidate(st: State, pos: Pos, price: int, ts: int) -> bool:
    if pos.size == 0:
        return False
    rem = m_remaining(st, pos, price, ts) - m_liq_premium(st, pos.size, price)
    return rem <= m_liq_margin(st, pos.size, price)


def m_initial_margin(st: State, size: int, price: int) -> int:
    if size == 0:
        return 0
    return max(m_notional(size, price) * UNIT // st.params["maxLeverage"], st.params["minInitialMargin"])


def threshold_tick(st: State, pos: Pos, ts: int) -> int:
    """The 8-decimal feed answer at which the position first becomes liquidatable, by the mirror.

    Long: liquidatable iff answer <= result. Short: liquidatable iff answer >= result.
    """
    lo, hi = 1, 10**8 * 10**8   # 1e-8 USD .. 100M USD
    liq = (lambda t: m_can_liquidate(st, pos, t * PRICE_SCALE, ts))
    if pos.size > 0:            # largest liquidatable tick
        assert liq(lo) and not liq(hi)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if liq(mid) else (lo, mid)
        return lo
    assert not liq(lo) and liq(hi)  # smallest liquidatable tick
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if liq(mid) else (mid, hi)
    return hi


# --------------------------------------------------------------------------- funding

@pytest.mark.parametrize("net", ["short", "long"])
def test_funding_direction(chain, net):
    """Net-short skew: negative rate, longs receive and shorts pay. Net-long: the reverse."""
    m = chain.market
    deposit(chain, 1, 100_000 * USDC)
    deposit(chain, 2, 100_000 * USDC)
    long_size, short_size = (20 * WETH, 100 * WETH) if net == "short" else (100 * WETH, 20 * WETH)
    trade(chain, 1, long_size)
    trade(chain, 2, -short_size)
    skew = m.functions.marketSkew().call()
    assert skew == long_size - short_size
    velocity = m.functions.currentFundingVelocity().call()
    chain.advance(3600)
    chain.set_price(3000)
    rate = m.functions.currentFundingRate().call()
    f_long, _ = m.functions.accruedFunding(addr(1)).call()
    f_short, _ = m.functions.accruedFunding(addr(2)).call()
    if net == "short":
        assert velocity < 0 and rate < 0
        assert f_long > 0 and f_short < 0       # shorts pay longs
    else:
        assert velocity > 0 and rate > 0
        assert f_long < 0 and f_short > 0       # longs pay shorts
    # per unit of size, both sides see the same index move since they are both open
    st, price, ts = read_state(m), oracle_price(m), chain.now()
    assert f_long == m_accrued(st, position(m, 1), price, ts)
    assert f_short == m_accrued(st, position(m, 2), price, ts)


def test_funding_accrues_over_time_and_matches_mirror(chain):
    m = chain.market
    deposit(chain, 1, 100_000 * USDC)
    trade(chain, 1, 100 * WETH)                  # skew +100: longs pay
    seen = []
    for _ in range(3):
        chain.advance(3600)
        chain.set_price(3000)                   # keeps the feed fresh, mines a block
        st, price, ts = read_state(m), oracle_price(m), chain.now()
        elapsed = ts - st.last_recomputed
        velocity = market_funding_velocity(st.skew, st.params["skewScale"], st.params["maxFundingVelocity"])
        assert m.functions.currentFundingVelocity().call() == velocity == 100 * WETH * UNIT // (10**6 * WETH) * 9
        assert m.functions.currentFundingRate().call() == market_funding_rate(st.rate_last, velocity, elapsed)
        assert m.functions.fundingIndex().call() == m_index(st, price, ts)
        accrued, invalid = m.functions.accruedFunding(addr(1)).call()
        assert not invalid
        assert accrued == m_accrued(st, position(m, 1), price, ts)      # to the wei
        seen.append((elapsed, accrued))
    (t1, f1), (t2, f2), (t3, f3) = seen
    assert f1 < 0 and f2 < f1 and f3 < f2       # grows with elapsed time
    # the rate rises linearly from ~0, so funding grows ~quadratically: f(2h)/f(1h) ~ 4
    assert 3.5 < f2 / f1 < 4.5
    assert 8.0 < f3 / f1 < 10.0


def test_margin_transfer_settles_funding_once(chain):
    """Depositing into an open position settles funding up to now; a later price move must not
    re-price the funding accrued before the deposit (the market recomputes funding first)."""
    m = chain.market
    deposit(chain, 1, 100_000 * USDC)
    trade(chain, 1, 100 * WETH)
    chain.advance(86_400)
    chain.set_price(3000)
    chain.mint_usdc(addr(1), USDC)
    send(chain, 1, "ReferenceToken", chain.d.collateral, "approve", chain.d.market, USDC)
    t = chain.now() + 5
    st_before, pos_before = read_state(m), position(m, 1)
    at_time(chain, t)
    send(chain, 1, "PerpMarket", chain.d.market, "transferMargin", USDC)
    price = 3000 * USD
    # funding and PnL up to t went into margin, exactly
    assert position(m, 1).margin == m_remaining(st_before, pos_before, price, t) + USDC * USDC_SCALE
    assert m_accrued(st_before, pos_before, price, t) < -100 * USD   # a day at this skew is material
    pin_next(chain, t)
    chain.set_price(6000)                        # same second: no time has passed since the deposit
    assert chain.now() == t
    accrued, _ = m.functions.accruedFunding(addr(1)).call()
    assert accrued == 0
    # and from then on funding accrues at the new price as the mirror says
    chain.advance(600)
    chain.set_price(6000)
    st, ts = read_state(m), chain.now()
    accrued, _ = m.functions.accruedFunding(addr(1)).call()
    assert accrued == m_accrued(st, position(m, 1), 6000 * USD, ts)
    assert -10 * USD < accrued < 0              # ten minutes of funding, not a re-priced day


def test_remaining_margin_includes_pnl_and_funding(chain):
    m = chain.market
    deposit(chain, 1, 10_000 * USDC)
    trade(chain, 1, 50 * WETH)
    pos = position(m, 1)
    chain.advance(6 * 3600)
    chain.set_price(3100)
    remaining, invalid = m.functions.remainingMargin(addr(1)).call()
    pnl, _ = m.functions.profitLoss(addr(1)).call()
    funding, _ = m.functions.accruedFunding(addr(1)).call()
    assert not invalid
    assert pnl == sdiv(50 * WETH * (3100 * USD - pos.lastPrice), UNIT)
    assert 4_990 * USD < pnl < 5_000 * USD      # fill was a hair above 3000
    assert funding < 0                          # net long pays
    assert remaining == pos.margin + pnl + funding
    assert remaining == m_remaining(read_state(m), pos, 3100 * USD, chain.now())
    # closing realises PnL at the fill price and funding, minus the fee
    t = chain.now() + 3
    st = read_state(m)
    at_time(chain, t)
    r = trade(chain, 1, -50 * WETH)
    ev = event(m, r, "PositionModified")
    fill = market_fill_price(3100 * USD, st.skew, -50 * WETH, st.params["skewScale"])
    fee = market_order_fee(st.skew, -50 * WETH, fill, st.params["takerFee"], st.params["makerFee"])
    assert ev["fillPrice"] == fill and ev["fee"] == fee and ev["size"] == 0
    assert ev["margin"] == pos.margin + m_pnl(pos, fill) + m_accrued(st, pos, 3100 * USD, t) - fee
    assert position(m, 1).margin == ev["margin"]


# --------------------------------------------------------------------------- fees and fill price

def test_taker_maker_and_flip_fees(chain):
    m = chain.market
    p = read_state(m).params
    taker, maker = p["takerFee"], p["makerFee"]
    for i in (1, 2, 3, 4):
        deposit(chain, i, 10_000 * USDC)

    def do(i: int, delta: int) -> tuple[Any, int]:
        skew = m.functions.marketSkew().call()
        quoted_fee, _ = m.functions.orderFee(delta).call()
        ev = event(m, trade(chain, i, delta), "PositionModified")
        assert ev["fee"] == quoted_fee
        assert ev["fee"] == market_order_fee(skew, delta, ev["fillPrice"], taker, maker)
        assert ev["margin"] == 10_000 * USD - ev["fee"]          # new positions: margin only pays the fee
        assert position(m, i).margin == ev["margin"]
        return ev, skew

    ev, skew = do(1, 10 * WETH)                 # widens (from zero): taker
    assert skew == 0
    assert ev["fee"] == m_notional(10 * WETH, ev["fillPrice"]) * taker // UNIT
    assert ev["fee"] != m_notional(10 * WETH, ev["fillPrice"]) * maker // UNIT

    ev, skew = do(2, -4 * WETH)                 # narrows +10 -> +6: maker
    assert skew == 10 * WETH
    assert ev["fee"] == m_notional(4 * WETH, ev["fillPrice"]) * maker // UNIT

    ev, skew = do(3, -10 * WETH)                # flips +6 -> -4: 6 maker + 4 taker
    assert skew == 6 * WETH
    fill = ev["fillPrice"]
    notional = m_notional(10 * WETH, fill)
    maker_part = m_notional(6 * WETH, fill)
    assert ev["fee"] == maker_part * maker // UNIT + (notional - maker_part) * taker // UNIT
    assert notional * maker // UNIT < ev["fee"] < notional * taker // UNIT

    ev, skew = do(4, 4 * WETH)                  # exactly closes the skew -4 -> 0: maker
    assert skew == -4 * WETH
    assert ev["fee"] == m_notional(4 * WETH, ev["fillPrice"]) * maker // UNIT
    assert m.functions.marketSkew().call() == 0
    assert m.functions.feesCollected().call() > 0


def floor_fill_price(price: int, skew: int, size_delta: int, skew_scale: int) -> int:
    """market_fill_price written with Python's flooring //: wrong for negative skews."""
    pd_before = skew * UNIT // skew_scale
    pd_after = (skew + size_delta) * UNIT // skew_scale
    return price + price * (pd_before + pd_after) // (2 * UNIT)


@pytest.mark.parametrize("skew, delta", [(-(7 * WETH + 3), -(2 * WETH + 1)),
                                         (-(7 * WETH + 3), 5 * WETH),
                                         (13 * WETH + 7, -(20 * WETH + 1))])
def test_fill_price_matches_mirror_on_negative_skew(chain, skew, delta):
    small = deploy_market(chain, MarketParams(skewScale=1000 * WETH))
    fund(chain, small.address, 3, 1_000_000 * USDC)
    fund(chain, small.address, 4, 1_000_000 * USDC)
    trade_on(chain, small.address, 3, skew)
    assert small.functions.marketSkew().call() == skew
    price, scale = 3000 * USD, 1000 * WETH
    expected = market_fill_price(price, skew, delta, scale)
    quoted, invalid = small.functions.fillPrice(delta).call()
    assert not invalid
    assert quoted == expected
    # the mirror's truncating division matters: flooring gives another number
    assert floor_fill_price(price, skew, delta, scale) != quoted
    ev = event(small, trade_on(chain, small.address, 4, delta), "PositionModified")
    assert ev["fillPrice"] == expected
    # and the premium is visible on this small-skewScale market
    assert abs(expected - price) > USD


def test_desired_fill_price_binds(chain):
    small = deploy_market(chain, MarketParams(skewScale=1000 * WETH))
    fund(chain, small.address, 1, 100_000 * USDC)
    buy = 10 * WETH
    fill, _ = small.functions.fillPrice(buy).call()
    assert fill == 3015 * USD                   # 3000 * (1 + (0 + 0.01) / 2)
    with pytest.raises(SimulationFailed, match="fill price exceeds desired"):
        trade_on(chain, small.address, 1, buy, fill - 1)
    assert event(small, trade_on(chain, small.address, 1, buy, fill), "PositionModified")["fillPrice"] == fill
    sell = -5 * WETH
    fill, _ = small.functions.fillPrice(sell).call()
    assert fill == 30225 * USD // 10            # 3000 * (1 + (0.01 + 0.005) / 2)
    with pytest.raises(SimulationFailed, match="fill price exceeds desired"):
        trade_on(chain, small.address, 1, sell, fill + 1)
    assert event(small, trade_on(chain, small.address, 1, sell, fill), "PositionModified")["fillPrice"] == fill
    assert position(small, 1).size == 5 * WETH


# --------------------------------------------------------------------------- margin checks

def test_withdrawal_below_initial_margin_refused(chain):
    m = chain.market
    deposit(chain, 1, 1_000 * USDC)
    trade(chain, 1, 10 * WETH)                   # notional ~30,000: initial margin 600 at 50x
    t = chain.now() + 2
    at_time(chain, t)                           # views, the refused and the accepted withdrawal at one time
    st, price = read_state(m), oracle_price(m)
    imr = m_initial_margin(st, 10 * WETH, price)
    assert imr == 600 * USD
    remaining, _ = m.functions.remainingMargin(addr(1)).call()
    accessible, _ = m.functions.accessibleMargin(addr(1)).call()
    assert accessible == remaining - imr
    too_much = accessible // USDC_SCALE + 1
    with pytest.raises(SimulationFailed, match="withdrawal below initial margin"):
        send(chain, 1, "PerpMarket", chain.d.market, "transferMargin", -too_much)
    pin_next(chain, t)
    send(chain, 1, "PerpMarket", chain.d.market, "transferMargin", -(too_much - 1))
    assert usdc_balance(chain, addr(1)) == too_much - 1

    # a small position needs the 40 USD minimum, not notional / maxLeverage
    deposit(chain, 2, 50 * USDC)
    trade(chain, 2, WETH // 100)                 # notional 30 USD: 0.6 USD at 50x, but min 40
    assert m_initial_margin(st, WETH // 100, price) == 40 * USD
    with pytest.raises(SimulationFailed, match="withdrawal below initial margin"):
        send(chain, 2, "PerpMarket", chain.d.market, "transferMargin", -10 * USDC)   # leaves 39.98
    send(chain, 2, "PerpMarket", chain.d.market, "transferMargin", -9 * USDC)        # leaves 40.98


def test_max_leverage_refused(chain):
    m = chain.market
    deposit(chain, 1, 1_000 * USDC)
    with pytest.raises(SimulationFailed, match="max leverage exceeded"):
        trade(chain, 1, 17 * WETH)               # needs 1,020; has 1,000 - fee
    trade(chain, 1, 16 * WETH)                   # needs 960; has 1,000 - 28.8
    # once under initial margin, growing is refused but reducing is allowed
    chain.set_price(2970)
    st, pos = read_state(m), position(m, 1)
    assert m_remaining(st, pos, 2970 * USD, chain.now()) < m_initial_margin(st, pos.size, 2970 * USD)
    assert not m.functions.canLiquidate(addr(1)).call()
    with pytest.raises(SimulationFailed, match="max leverage exceeded"):
        trade(chain, 1, WETH)
    trade(chain, 1, -WETH)
    assert position(m, 1).size == 15 * WETH
    # below the 40 USD minimum initial margin nothing can be opened
    deposit(chain, 2, 39 * USDC)
    with pytest.raises(SimulationFailed, match="max leverage exceeded"):
        trade(chain, 2, WETH // 1000)


def test_cannot_open_an_immediately_liquidatable_position(chain):
    """The post-trade check marks the new position to the oracle price, as canLiquidate does:
    a long filled at a large premium starts with a loss of size * (fill - price)."""
    small = deploy_market(chain, MarketParams(skewScale=1000 * WETH))
    st, price = read_state(small), 3000 * USD
    fund(chain, small.address, 3, 50_000 * USDC)
    size = 100 * WETH
    fill = market_fill_price(price, 0, size, st.params["skewScale"])
    assert fill == 3150 * USD
    fee = market_order_fee(0, size, fill, st.params["takerFee"], st.params["makerFee"])
    um = 50_000 * USD - fee
    new_pos = Pos(um, size, fill, st.index_last)
    # margin alone clears the buffer, the premium and the initial margin...
    assert um > m_liq_margin(st, size, price) + m_liq_premium(st, size, price)
    assert um >= m_initial_margin(st, size, price)
    # ...but marked to the oracle price the position is liquidatable at once
    assert m_can_liquidate(st, new_pos, price, chain.now())
    with pytest.raises(SimulationFailed, match="position would be liquidatable"):
        trade_on(chain, small.address, 3, size)
    assert position(small, 3).size == 0
    # half the size is fine and not liquidatable
    trade_on(chain, small.address, 3, size // 2)
    assert small.functions.canLiquidate(addr(3)).call() is False


def test_accessible_margin_and_withdraw_all(chain):
    m = chain.market
    # no position: everything is accessible and comes back to the native unit
    deposit(chain, 1, 1_000 * USDC)
    assert m.functions.accessibleMargin(addr(1)).call() == [1_000 * USD, False]
    send(chain, 1, "PerpMarket", chain.d.market, "withdrawAllMargin")
    assert usdc_balance(chain, addr(1)) == 1_000 * USDC
    assert (position(m, 1).margin, position(m, 1).size) == (0, 0)
    with pytest.raises(SimulationFailed, match="no accessible margin"):
        send(chain, 1, "PerpMarket", chain.d.market, "withdrawAllMargin")

    # with a position: all but the initial margin, rounded down to native units
    deposit(chain, 2, 1_000 * USDC)
    trade(chain, 2, 10 * WETH)
    remaining, _ = m.functions.remainingMargin(addr(2)).call()
    accessible, _ = m.functions.accessibleMargin(addr(2)).call()
    imr = m_initial_margin(read_state(m), 10 * WETH, oracle_price(m))
    assert accessible == remaining - imr > 0
    r = send(chain, 2, "PerpMarket", chain.d.market, "withdrawAllMargin")
    ev = event(m, r, "MarginTransferred")
    amount = -ev["marginDelta"]
    assert usdc_balance(chain, addr(2)) == amount
    assert amount == (ev["margin"] + amount * USDC_SCALE - imr) // USDC_SCALE
    assert abs(amount - accessible // USDC_SCALE) <= 1
    remaining_after, _ = m.functions.remainingMargin(addr(2)).call()
    assert 0 <= remaining_after - imr < USDC_SCALE
    with pytest.raises(SimulationFailed, match="withdrawal below initial margin"):
        send(chain, 2, "PerpMarket", chain.d.market, "transferMargin", -1)


# --------------------------------------------------------------------------- stale feed

def test_stale_or_future_feed_refuses_trading(chain):
    m = chain.market
    deposit(chain, 1, 1_000 * USDC)
    chain.advance(3601)
    assert m.functions.assetPrice().call() == [3000 * USD, True]
    with pytest.raises(SimulationFailed, match="stale or invalid price"):
        trade(chain, 1, WETH)
    with pytest.raises(SimulationFailed, match="stale or invalid price"):
        send(chain, 1, "PerpMarket", chain.d.market, "transferMargin", -USDC)
    chain.set_price(3000)
    trade(chain, 1, WETH)

    # updatedAt in the future
    now = chain.now()
    chain.admin("PriceFeed", chain.d.oracle, "setRoundTimestamps", now + 600, now + 600)
    assert m.functions.assetPrice().call()[1] is True
    with pytest.raises(SimulationFailed, match="stale or invalid price"):
        trade(chain, 1, WETH)

    # exactly maxOracleAge old is still fine; one second more is not
    t = chain.now() + 2
    at_time(chain, t)
    chain.admin("PriceFeed", chain.d.oracle, "setRoundTimestamps", t - 3600, t - 3600)
    assert chain.now() == t
    assert m.functions.assetPrice().call() == [3000 * USD, False]
    chain.w3.provider.make_request("evm_mine", [t + 1])
    assert m.functions.assetPrice().call() == [3000 * USD, True]
    with pytest.raises(SimulationFailed, match="stale or invalid price"):
        trade(chain, 1, WETH)

    # a non-positive answer is invalid too
    chain.set_price(0)
    assert m.functions.assetPrice().call() == [0, True]
    with pytest.raises(SimulationFailed, match="stale or invalid price"):
        trade(chain, 1, -WETH)


# --------------------------------------------------------------------------- liquidation

def test_liquidation_threshold_and_keeper_fee(chain):
    m = chain.market
    deposit(chain, 1, 1_000 * USDC)
    trade(chain, 1, 10 * WETH)                   # ~30x long
    deposit(chain, 2, 1_000 * USDC)
    trade(chain, 2, -WETH)                       # a healthy short
    st, pos = read_state(m), position(m, 1)
    t = chain.now() + 5
    tick = threshold_tick(st, pos, t)           # liquidatable iff answer <= tick, at time t
    assert 2_900 * 10**8 < tick < 2_940 * 10**8

    at_time(chain, t)
    set_feed_answer(chain, tick + 1)            # one 1e-8 USD tick above the threshold
    assert chain.now() == t
    assert m.functions.canLiquidate(addr(1)).call() is False
    with pytest.raises(SimulationFailed, match="cannot liquidate"):
        send(chain, KEEPER, "PerpMarket", chain.d.market, "liquidate", addr(1))

    pin_next(chain, t)
    set_feed_answer(chain, tick)                # at the threshold
    assert chain.now() == t
    assert m.functions.canLiquidate(addr(1)).call() is True
    assert m.functions.canLiquidate(addr(2)).call() is False
    with pytest.raises(SimulationFailed, match="cannot liquidate"):
        send(chain, KEEPER, "PerpMarket", chain.d.market, "liquidate", addr(2))

    price = tick * PRICE_SCALE
    fee = m_liq_fee(st, pos.size, price)
    assert fee == m_notional(pos.size, price) * 2 // 10_000 > 4 * USD
    keeper_before = usdc_balance(chain, addr(KEEPER))
    market_before = usdc_balance(chain, chain.d.market)
    pin_next(chain, t)
    r = send(chain, KEEPER, "PerpMarket", chain.d.market, "liquidate", addr(1))
    ev = event(m, r, "PositionLiquidated")
    assert ev["liquidator"] == addr(KEEPER) and ev["size"] == 10 * WETH and ev["price"] == price
    assert ev["fee"] == fee
    assert ev["remainingMargin"] == m_remaining(st, pos, price, t)
    assert usdc_balance(chain, addr(KEEPER)) - keeper_before == fee // USDC_SCALE
    assert market_before - usdc_balance(chain, chain.d.market) == fee // USDC_SCALE
    assert position(m, 1) == Pos(0, 0, 0, 0)
    assert m.functions.marketSkew().call() == -WETH
    assert m.functions.marketSizes().call() == [0, WETH]
    with pytest.raises(SimulationFailed, match="cannot liquidate"):
        send(chain, KEEPER, "PerpMarket", chain.d.market, "liquidate", addr(1))


@pytest.mark.parametrize("side", [1, -1])
def test_liquidation_price_consistent_with_can_liquidate(chain, side):
    m = chain.market
    deposit(chain, 1, 1_000 * USDC)
    trade(chain, 1, side * 10 * WETH)
    liq_price, invalid = m.functions.liquidationPrice(addr(1)).call()
    assert not invalid
    # the view's approximation (margins at today's price) is within 0.1% of the exact threshold
    exact = threshold_tick(read_state(m), position(m, 1), chain.now()) * PRICE_SCALE
    assert abs(exact - liq_price) * 1000 < liq_price
    safer, past = (1.005, 0.995) if side > 0 else (0.995, 1.005)
    chain.set_price(liq_price * safer / USD)
    assert m.functions.canLiquidate(addr(1)).call() is False
    chain.set_price(liq_price * past / USD)
    assert m.functions.canLiquidate(addr(1)).call() is True


# --------------------------------------------------------------------------- delayed orders

def test_delayed_order_lifecycle(chain):
    m = chain.market
    st = read_state(m)
    deposit(chain, 1, 1_000 * USDC)
    r = send(chain, 1, "PerpMarket", chain.d.market, "submitDelayedOrder", WETH, 3100 * USD)
    sub = block_ts(chain, r)
    assert tuple(m.functions.delayedOrders(addr(1)).call()) == (WETH, 3100 * USD, 2 * USD, sub)
    ev = event(m, r, "DelayedOrderSubmitted")
    assert (ev["executableAt"], ev["expiresAt"]) == (sub + 15, sub + 120)

    with pytest.raises(SimulationFailed, match="order too early"):
        send(chain, KEEPER, "PerpMarket", chain.d.market, "executeDelayedOrder", addr(1))
    with pytest.raises(SimulationFailed, match="delayed order pending"):
        send(chain, 1, "PerpMarket", chain.d.market, "submitDelayedOrder", WETH, 3100 * USD)
    with pytest.raises(SimulationFailed, match="delayed order pending"):
        trade(chain, 1, WETH)

    chain.set_price(3010)
    at_time(chain, sub + 14)
    with pytest.raises(SimulationFailed, match="order too early"):
        send(chain, KEEPER, "PerpMarket", chain.d.market, "executeDelayedOrder", addr(1))

    at_time(chain, sub + 15)
    margin_before = position(m, 1).margin
    keeper_before = usdc_balance(chain, addr(KEEPER))
    r = send(chain, KEEPER, "PerpMarket", chain.d.market, "executeDelayedOrder", addr(1))
    fill = market_fill_price(3010 * USD, 0, WETH, st.params["skewScale"])
    fee = market_order_fee(0, WETH, fill, st.params["takerFee"], st.params["makerFee"])
    ev = event(m, r, "PositionModified")
    assert (ev["sizeDelta"], ev["fillPrice"], ev["fee"], ev["keeperFee"]) == (WETH, fill, fee, 2 * USD)
    assert position(m, 1) == Pos(margin_before - fee - 2 * USD, WETH, fill, m.functions.fundingIndexLast().call())
    assert usdc_balance(chain, addr(KEEPER)) - keeper_before == 2 * 10**6
    assert tuple(m.functions.delayedOrders(addr(1)).call()) == (0, 0, 0, 0)
    removed = event(m, r, "DelayedOrderRemoved")
    assert removed["executed"] is True and removed["keeper"] == addr(KEEPER)
    with pytest.raises(SimulationFailed, match="no delayed order"):
        send(chain, KEEPER, "PerpMarket", chain.d.market, "executeDelayedOrder", addr(1))
    trade(chain, 1, WETH)                         # nothing pending any more
    # an account without margin cannot even pay the keeper
    with pytest.raises(SimulationFailed, match="insufficient margin for keeper fee"):
        send(chain, 3, "PerpMarket", chain.d.market, "submitDelayedOrder", WETH, 3100 * USD)


@pytest.mark.parametrize("side", [1, -1])
def test_delayed_order_fill_breach_keeps_order(chain, side):
    m = chain.market
    deposit(chain, 1, 1_000 * USDC)
    delta, desired = (WETH, 3005 * USD) if side > 0 else (-WETH, 2995 * USD)
    r = send(chain, 1, "PerpMarket", chain.d.market, "submitDelayedOrder", delta, desired)
    sub = block_ts(chain, r)
    chain.advance(20)
    chain.set_price(3100 if side > 0 else 2900)  # fill now beyond the bound
    with pytest.raises(SimulationFailed, match="fill price exceeds desired"):
        send(chain, KEEPER, "PerpMarket", chain.d.market, "executeDelayedOrder", addr(1))
    assert tuple(m.functions.delayedOrders(addr(1)).call()) == (delta, desired, 2 * USD, sub)
    assert position(m, 1).size == 0
    chain.set_price(3000)                        # price comes back
    at_time(chain, sub + 120)                    # last second it may be executed
    keeper_before = usdc_balance(chain, addr(KEEPER))
    r = send(chain, KEEPER, "PerpMarket", chain.d.market, "executeDelayedOrder", addr(1))
    ev = event(m, r, "PositionModified")
    assert (ev["fillPrice"] <= desired) if side > 0 else (ev["fillPrice"] >= desired)
    assert position(m, 1).size == delta
    assert usdc_balance(chain, addr(KEEPER)) - keeper_before == 2 * 10**6


def test_delayed_order_expiry_and_cancel(chain):
    m = chain.market
    deposit(chain, 1, 1_000 * USDC)
    r = send(chain, 1, "PerpMarket", chain.d.market, "submitDelayedOrder", -WETH, 0)
    sub = block_ts(chain, r)
    margin = position(m, 1).margin
    with pytest.raises(SimulationFailed, match="order not expired"):
        send(chain, 6, "PerpMarket", chain.d.market, "cancelDelayedOrder", addr(1))
    at_time(chain, sub + 120)
    with pytest.raises(SimulationFailed, match="order not expired"):
        send(chain, 6, "PerpMarket", chain.d.market, "cancelDelayedOrder", addr(1))
    at_time(chain, sub + 121)
    with pytest.raises(SimulationFailed, match="order expired"):
        send(chain, KEEPER, "PerpMarket", chain.d.market, "executeDelayedOrder", addr(1))
    r = send(chain, 6, "PerpMarket", chain.d.market, "cancelDelayedOrder", addr(1))
    ev = event(m, r, "DelayedOrderRemoved")
    assert ev["executed"] is False and ev["keeper"] == addr(6) and ev["sizeDelta"] == -WETH
    assert tuple(m.functions.delayedOrders(addr(1)).call()) == (0, 0, 0, 0)
    assert position(m, 1).margin == margin      # no keeper fee for a cancelled order
    with pytest.raises(SimulationFailed, match="no delayed order"):
        send(chain, 6, "PerpMarket", chain.d.market, "cancelDelayedOrder", addr(1))
    send(chain, 1, "PerpMarket", chain.d.market, "submitDelayedOrder", -WETH, 0)


# --------------------------------------------------------------------------- units

def test_native_collateral_units(chain):
    m = chain.market
    assert chain.usdc.functions.decimals().call() == 6
    assert m.functions.collateralScale().call() == USDC_SCALE
    assert m.functions.priceScale().call() == PRICE_SCALE
    assert m.functions.assetPrice().call() == [3000 * USD, False]
    pool = usdc_balance(chain, chain.d.market)      # the market's own liquidity
    r = fund(chain, chain.d.market, 1, 1_000 * USDC)
    ev = event(m, r, "MarginTransferred")
    assert (ev["marginDelta"], ev["margin"]) == (1_000 * USDC, 1_000 * USD)
    assert m.functions.remainingMargin(addr(1)).call() == [1_000 * USD, False]
    assert usdc_balance(chain, chain.d.market) - pool == 1_000 * USDC
    send(chain, 1, "PerpMarket", chain.d.market, "transferMargin", -1)   # one native unit
    assert m.functions.remainingMargin(addr(1)).call() == [1_000 * USD - USDC_SCALE, False]
    assert usdc_balance(chain, addr(1)) == 1


def test_18_decimal_market_has_the_same_economics(chain):
    """The same history on an 18-decimal collateral/feed market gives the same 18-decimal numbers."""
    dai = deploy_contract(chain.deployer, "ReferenceToken", "Dai (reference)", "DAI", 18)
    feed = deploy_contract(chain.deployer, "PriceFeed", 18, "ETH / USD", 1)
    set_feed_answer(chain, 3000 * 10**18, feed)
    m18 = deploy_market(chain, MarketParams(), collateral=dai, feed=feed)
    m6 = chain.market
    dai_c = chain.contract("ReferenceToken", dai)
    assert m18.functions.collateralScale().call() == 1
    assert m18.functions.priceScale().call() == 1
    assert m18.functions.assetPrice().call() == m6.functions.assetPrice().call() == [3000 * USD, False]

    fund(chain, m18.address, 1, 1_000 * 10**18, token=dai)
    fund(chain, chain.d.market, 1, 1_000 * USDC)
    assert m18.functions.remainingMargin(addr(1)).call() == [1_000 * USD, False]

    def both(t: int, i: int, fn: str, *args: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        at_time(chain, t)
        r6 = send(chain, i, "PerpMarket", chain.d.market, fn, *args)
        pin_next(chain, t)
        r18 = send(chain, i, "PerpMarket", m18.address, fn, *args)
        return r6, r18

    t = chain.now() + 10
    r6, r18 = both(t, 1, "modifyPosition", 10 * WETH, 2**255)
    assert event(m6, r6, "PositionModified") == event(m18, r18, "PositionModified")
    r6, r18 = both(t + 600, 1, "submitDelayedOrder", -4 * WETH, 0)
    dai_keeper, usdc_keeper = dai_c.functions.balanceOf(addr(KEEPER)).call(), usdc_balance(chain, addr(KEEPER))
    r6, r18 = both(t + 630, KEEPER, "executeDelayedOrder", addr(1))
    e6, e18 = event(m6, r6, "PositionModified"), event(m18, r18, "PositionModified")
    assert e6 == e18 and e6["keeperFee"] == 2 * USD
    assert dai_c.functions.balanceOf(addr(KEEPER)).call() - dai_keeper == 2 * 10**18
    assert usdc_balance(chain, addr(KEEPER)) - usdc_keeper == 2 * 10**6
    at_time(chain, t + 4000)
    for fn in ("remainingMargin", "accruedFunding", "profitLoss", "accessibleMargin", "liquidationPrice"):
        assert getattr(m6.functions, fn)(addr(1)).call() == getattr(m18.functions, fn)(addr(1)).call(), fn
    funding, _ = m18.functions.accruedFunding(addr(1)).call()
    assert funding != 0
    accessible, _ = m18.functions.accessibleMargin(addr(1)).call()
    dai_before, usdc_before = dai_c.functions.balanceOf(addr(1)).call(), usdc_balance(chain, addr(1))
    set_feed_answer(chain, 3000 * 10**18, feed)  # both feeds fresh, same second
    pin_next(chain, chain.now())
    chain.set_price(3000)
    r6, r18 = both(chain.now(), 1, "withdrawAllMargin")
    got18 = dai_c.functions.balanceOf(addr(1)).call() - dai_before
    got6 = usdc_balance(chain, addr(1)) - usdc_before
    assert got18 == -event(m18, r18, "MarginTransferred")["marginDelta"]
    assert got6 == got18 // USDC_SCALE         # same 18-decimal amount, rounded down to native units
    assert got18 == accessible


def test_market_runtime_size_under_eip170(chain):
    code = chain.w3.eth.get_code(chain.d.market)
    assert 0 < len(code) < 24_576, f"PerpMarket runtime is {len(code)} bytes"
