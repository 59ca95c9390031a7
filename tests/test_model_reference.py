"""The reference market's model (``hedger/protocols/reference/model.py``) against the contract's
own views and events, on anvil.

The model is built from a snapshot the keeper reads (as in a cycle); it predicts the fill, fee,
margin, leverage and liquidation price after a deposit or a trade, and how much may be
withdrawn. Each prediction is then compared with what the market reports once the action is
mined. ``tests/test_policy_chain.py`` checks the same figures through whole hedger cycles; this
file asks the model directly, on a skewed market (maker and taker fees, a skew premium), in both
order modes, and across zero (two legs).
"""

from __future__ import annotations

from typing import Any

import pytest
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD

from hedger.core.model import model_for
from hedger.core.types import UNIT
from hedger.protocols.reference.model import ReferenceModel
from tests.conftest import USDC, WETH, Hedge

# the model values the account as read; the market has since accrued the funding of the seconds
# between that read and the mined action (and, on a two-step market, the order delay)
REL = 10**12            # margin, liquidation price, leverage: agree to 1e-6 relative
ABS = 10**12            # liquidation distance: agree to 1e-6 of the price


def model(hedge: Hedge, two_step: bool) -> ReferenceModel:
    k = hedge.keeper(HEDGER_ORDER_MODE="delayed" if two_step else "direct")
    snap = k.read()
    assert snap.venue == "reference"
    mdl = model_for(snap)
    assert isinstance(mdl, ReferenceModel)
    return mdl


def views(hedge: Hedge) -> dict[str, int]:
    m = hedge.chain.market.functions
    a = hedge.address
    size = m.positions(a).call()[1]
    margin = m.remainingMargin(a).call()[0]
    price = m.assetPrice().call()[0]
    return dict(size=size, margin=margin, price=price, liq=m.liquidationPrice(a).call()[0],
                accessible=m.accessibleMargin(a).call()[0],
                leverage=abs(size) * price // UNIT * UNIT // margin if margin else 0)


def modified(hedge: Hedge, receipt: Any) -> list[dict[str, Any]]:
    if not isinstance(receipt, dict) and not hasattr(receipt, "logs"):
        receipt = hedge.chain.w3.eth.get_transaction_receipt(receipt)
    return [ev["args"] for ev in hedge.chain.market.events.PositionModified().process_receipt(receipt, errors=DISCARD)
            if ev["args"]["account"] == hedge.address and ev["args"]["sizeDelta"] != 0]


def trade(hedge: Hedge, delta: int, two_step: bool, delay: int = 0) -> dict[str, Any]:
    """Trade ``delta`` as the hedged account (submitted, then filled ``delay`` seconds later by the
    protocol keeper on a two-step market): its ``PositionModified`` event."""
    c = hedge.chain
    if not two_step:
        return modified(hedge, c.trade(1, delta))[0]
    c.call_as(1, "PerpMarket", c.d.market, "submitDelayedOrder", delta, 2**255 if delta > 0 else 0)
    c.advance(delay)
    (tx,) = hedge.fill_orders()
    return modified(hedge, tx)[0]


def assert_close(predicted: Any, v: dict[str, int]) -> None:
    assert predicted.size == v["size"]
    assert abs(predicted.margin - v["margin"]) * UNIT <= REL * v["margin"], (predicted.margin, v["margin"])
    assert abs(predicted.liquidation_price - v["liq"]) * UNIT <= REL * v["price"], (predicted.liquidation_price, v["liq"])
    assert abs(predicted.leverage - v["leverage"]) * UNIT <= REL * v["leverage"], (predicted.leverage, v["leverage"])
    # the liquidation distance is the liquidation price's distance from the market's price
    dist = abs(v["liq"] - v["price"]) * UNIT // v["price"]
    assert v["liq"] > 0, "a position the test can liquidate by a price move"
    assert abs(predicted.liq_distance - dist) <= ABS, (predicted.liq_distance, dist)


@pytest.fixture()
def skewed(hedge: Hedge) -> Hedge:
    """Others hold 20,000 ETH long: a 2% skew premium, and a short narrows the skew (maker fee)."""
    hedge.chain.deposit(3, 30_000_000 * USDC)
    hedge.chain.trade(3, 20_000 * WETH)
    return hedge


@pytest.mark.parametrize("two_step", [False, True], ids=["direct", "two-step"])
def test_deposit_trade_and_cross_zero_as_the_market_computes_them(skewed: Hedge, two_step: bool) -> None:
    h = skewed
    mdl = model(h, two_step)
    assert mdl.market_price == views(h)["price"] == 3000 * UNIT
    assert mdl.trades_are_orders is two_step and mdl.collateral_decimals == 6

    # a deposit: margin arrives in 18 decimals, no position yet
    expected = mdl.after(0, 10_000 * USDC)
    h.chain.call_as(1, "ReferenceToken", h.chain.d.collateral, "approve", h.chain.d.market, 10_000 * USDC)
    h.chain.call_as(1, "PerpMarket", h.chain.d.market, "transferMargin", 10_000 * USDC)
    v = views(h)
    assert expected.margin == v["margin"] == 10_000 * UNIT and expected.leverage == 0 and v["liq"] == 0

    # a short into the long skew: fill, fee (maker; plus the keeper fee on a two-step market)
    mdl = model(h, two_step)
    expected = mdl.after(-2 * WETH, 0)
    assert mdl.fill(-2 * WETH) == (expected.fill_price, expected.fee)
    delay = mdl.market.min_order_delay
    ev = trade(h, -2 * WETH, two_step, delay)
    assert ev["fillPrice"] == expected.fill_price > 3000 * UNIT     # the skew premium
    assert ev["fee"] + ev["keeperFee"] == expected.fee
    assert (ev["keeperFee"] > 0) is two_step
    assert_close(expected, views(h))

    # across zero, sent as two trades (as the planner does): each leg filled and charged on its own
    mdl = model(h, two_step)
    expected = mdl.after(10 * WETH, 0)
    assert len(expected.leg_fills) == 2
    legs = [trade(h, 2 * WETH, two_step, delay), trade(h, 8 * WETH, two_step, delay)]
    assert [e["fillPrice"] for e in legs] == list(expected.leg_fills)
    assert sum(e["fee"] + e["keeperFee"] for e in legs) == expected.fee
    assert_close(expected, views(h))


def test_largest_withdrawal_is_what_the_market_lets_go(hedge: Hedge) -> None:
    """``max_withdrawal`` (native units) after a deposit and a trade: a unit less goes through,
    two units more are refused by the market's initial-margin check."""
    c, market = hedge.chain, hedge.chain.market.functions
    c.call_as(1, "ReferenceToken", c.d.collateral, "approve", c.d.market, 10_000 * USDC)
    c.call_as(1, "PerpMarket", c.d.market, "transferMargin", 10_000 * USDC)
    mdl = model(hedge, False)
    assert mdl.max_withdrawal() == 10_000 * USDC        # no position: everything
    trade(hedge, -60 * WETH, False)                     # 180,000 USD at 50x: 3,600 USD initial margin
    mdl = model(hedge, False)
    w = mdl.max_withdrawal()
    assert w == views(hedge)["accessible"] // 10**12
    assert 6_000 * USDC < w < 6_400 * USDC
    market.transferMargin(-(w - 1)).call({"from": hedge.address})
    with pytest.raises(ContractLogicError, match="initial margin"):
        market.transferMargin(-(w + 2)).call({"from": hedge.address})
    # and the model's own opening check refuses a trade the market would refuse
    assert not mdl.opening_allowed(mdl.after(-200 * WETH, 0))
    assert mdl.opening_allowed(mdl.after(-WETH, 0))


# ---- pure: the opening checks at their edges (no chain; run by scripts/mutants.py) ----------

def _opening(size: int, margin: int) -> bool:
    from tests.snapshots import make_snapshot
    mdl = model_for(make_snapshot(margin=margin))
    return mdl.opening_allowed(mdl.after(size, 0))


def test_opening_needs_initial_margin_with_a_cushion() -> None:
    """10 ETH at 3,000 USD: 600 USD of initial margin at 50x, 612 with the 2% cushion (the fill
    costs the trade 18 USD of taker fee and 0.45 USD of skew premium, taken from the margin)."""
    cost = 18 * UNIT + 45 * UNIT // 100
    assert _opening(-10 * WETH, 612 * UNIT + cost)
    assert not _opening(-10 * WETH, 611 * UNIT + cost)
    assert not _opening(-10 * WETH, 601 * UNIT + cost)     # enough for the market, not with the cushion
    assert not _opening(-WETH // 100, 40 * UNIT)           # below the minimum initial margin (40 USD)


def test_opening_refuses_a_position_liquidatable_at_once() -> None:
    """20,000 ETH at 3,000 USD (60M USD): 1.2M USD of initial margin, but 2.325M USD of liquidation
    margin with the skew premium; the trade itself costs 636k USD (fee and fill premium)."""
    assert not _opening(-20_000 * WETH, 2_500_000 * UNIT)     # 1.864M left: initial margin, liquidatable
    assert _opening(-20_000 * WETH, 3_500_000 * UNIT)


# --------------------------------------------------------------------------------------------
# The distance band's translations (issue 10): pure, against the model's own after()
# --------------------------------------------------------------------------------------------

from dataclasses import replace  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

from hedger.core.model import INFINITE  # noqa: E402
from tests.test_policy import snapshots  # noqa: E402

_PROPS = settings(max_examples=200, deadline=None)
_SIZES = st.integers(1, 20_000 * WETH).flatmap(lambda n: st.sampled_from([n, -n]))
_LEVERAGES = st.integers(UNIT // 10, 100 * UNIT)
_DISTANCES = st.integers(0, UNIT)


def _with(mdl: ReferenceModel, size: int, margin: int) -> ReferenceModel:
    return replace(mdl, account=replace(mdl.account, size=size, margin=margin))


@_PROPS
@given(s=snapshots(pending=None), size=_SIZES, distance=_DISTANCES)
def test_margin_for_distance_gives_that_distance(s: Any, size: int, distance: int) -> None:
    """``after()`` of an account holding ``margin_for_distance`` reports that distance (exactly from
    a notional of 1 USD; a dust position's rounding can only add), and one wei of margin less
    reports less (it is the least such margin)."""
    mdl = model_for(s)
    assert isinstance(mdl, ReferenceModel)
    margin = mdl.margin_for_distance(size, distance)
    got = _with(mdl, size, margin).after(0, 0).liq_distance
    assert got >= distance
    if abs(size) * mdl.market_price >= UNIT * UNIT:         # a notional of 1 USD or more: exactly
        assert got == distance
    assert _with(mdl, size, margin - 1).after(0, 0).liq_distance < distance
    assert mdl.margin_for_distance(0, distance) == 0


@_PROPS
@given(s=snapshots(pending=None), size=_SIZES, lev=_LEVERAGES, margin=st.integers(1, 10**12 * UNIT))
def test_distance_at_leverage_is_the_leverages_distance(s: Any, size: int, lev: int, margin: int) -> None:
    """The distance of the position held with margin notional / leverage (rounded up by at most one
    unit), and a dividing line: an account at least that far from liquidation is at most at that
    leverage, one nearer at least at it."""
    mdl = model_for(s)
    assert isinstance(mdl, ReferenceModel)
    d = mdl.distance_at_leverage(size, lev)
    notional = abs(size) * mdl.market_price // UNIT
    if notional == 0:
        assert d == INFINITE
        return
    at = _with(mdl, size, -(-notional * UNIT // lev)).after(0, 0)
    assert at.leverage <= lev and d - at.liq_distance in (0, 1)
    pt = _with(mdl, size, margin).after(0, 0)
    if pt.liq_distance >= d:
        assert pt.leverage <= lev
    else:
        assert pt.leverage >= lev
    assert mdl.distance_at_leverage(size, lev + UNIT) <= d          # more leverage, nearer liquidation
    assert mdl.distance_at_leverage(size, 0) == INFINITE


@_PROPS
@given(s=snapshots(pending=None), native=st.integers(-10**30, 10**30))
def test_reference_collateral_is_one_usd_a_token(s: Any, native: int) -> None:
    """The reference market credits a whole token as 1 USD whatever the snapshot's price: the old
    scale by decimals, both ways."""
    mdl = model_for(replace(s, collateral_price=2_000 * UNIT))
    dec = mdl.collateral_decimals
    assert mdl.collateral_usd(native) == native * 10 ** (18 - dec)
    usd = abs(native)
    assert mdl.collateral_native(usd) == usd // 10 ** (18 - dec)
    assert mdl.collateral_native(usd, round_up=True) == -(-usd // 10 ** (18 - dec))
