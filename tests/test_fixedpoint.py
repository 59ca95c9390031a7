"""hedger/core/fixedpoint.py: rounding helpers, and the mirrors of PerpMarket's math checked against the contract."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from web3.exceptions import ContractLogicError

from hedger.sim.deploy import MarketParams
from hedger.core.fixedpoint import (DAY, UNIT, fmt_units, from_e18_down, from_e18_up, market_fill_price,
                               market_funding_rate, market_funding_velocity, market_order_fee,
                               market_unrecorded_funding, mul_div_down, mul_div_up, ratio_e18, sdiv, to_e18)
from tests.conftest import USDC, WETH
from tests.test_contracts_market import (PRICE_SCALE, deploy_market, event, fund, m_index, read_state,
                                         trade_on)

INT256 = st.integers(min_value=-(2**255), max_value=2**255 - 1)
NONZERO = st.integers(min_value=-(10**30), max_value=10**30).filter(lambda x: x != 0)
NONNEG = st.integers(min_value=0, max_value=2**200)
DECIMALS = st.integers(min_value=0, max_value=18)


# --------------------------------------------------------------------------- sdiv

@pytest.mark.parametrize("a, b, trunc, floor", [(-7, 2, -3, -4), (7, -2, -3, -4), (-7, -2, 3, 3), (7, 2, 3, 3),
                                                (-6, 2, -3, -3), (0, -5, 0, 0), (-1, 10**18, 0, -1)])
def test_sdiv_truncates_where_python_floors(a, b, trunc, floor):
    assert sdiv(a, b) == trunc
    assert a // b == floor


def test_sdiv_by_zero():
    with pytest.raises(ZeroDivisionError):
        sdiv(1, 0)


@given(a=INT256, b=NONZERO)
def test_sdiv_is_truncated_division(a, b):
    q = sdiv(a, b)
    assert q == math.trunc(Fraction(a, b))
    r = a - q * b
    assert abs(r) < abs(b)
    assert r == 0 or (r > 0) == (a > 0)         # the remainder takes the dividend's sign (EVM SMOD)
    assert sdiv(-a, b) == -q == sdiv(a, -b)     # truncation is symmetric; flooring is not
    if r != 0 and (a < 0) != (b < 0):
        assert q == a // b + 1                  # exactly where Python's // differs
    else:
        assert q == a // b


# --------------------------------------------------------------------------- mul_div

@pytest.mark.parametrize("a, b, c, down, up", [(7, 3, 2, 10, 11), (6, 2, 3, 4, 4), (0, 5, 7, 0, 0), (1, 1, 3, 0, 1),
                                               (10**18, 3, 10**18, 3, 3)])
def test_mul_div_examples(a, b, c, down, up):
    assert mul_div_down(a, b, c) == down
    assert mul_div_up(a, b, c) == up


@pytest.mark.parametrize("args", [(-1, 1, 1), (1, -1, 1), (1, 1, 0), (1, 1, -1)])
def test_mul_div_refuses_negative_operands(args):
    with pytest.raises(ValueError):
        mul_div_down(*args)
    with pytest.raises(ValueError):
        mul_div_up(*args)


@given(a=NONNEG, b=NONNEG, c=st.integers(min_value=1, max_value=2**128))
def test_mul_div_bounds_the_exact_quotient(a, b, c):
    exact = Fraction(a * b, c)
    down, up = mul_div_down(a, b, c), mul_div_up(a, b, c)
    assert down == math.floor(exact) and up == math.ceil(exact)
    assert down <= exact <= up
    assert up - down == (0 if (a * b) % c == 0 else 1)


# --------------------------------------------------------------------------- decimals conversions

def test_conversion_examples():
    assert to_e18(1, 6) == 10**12
    assert to_e18(1_500_000, 6) == 15 * 10**17
    assert to_e18(5, 18) == 5
    # to native units: down floors, up ceils, including for negative values
    assert (from_e18_down(1, 6), from_e18_up(1, 6)) == (0, 1)
    assert (from_e18_down(-1, 6), from_e18_up(-1, 6)) == (-1, 0)
    assert (from_e18_down(10**12, 6), from_e18_up(10**12, 6)) == (1, 1)
    assert (from_e18_down(10**12 + 1, 6), from_e18_up(10**12 + 1, 6)) == (1, 2)
    assert (from_e18_down(-(10**12) - 1, 6), from_e18_up(-(10**12) - 1, 6)) == (-2, -1)
    # more than 18 decimals: scaling up is exact, scaling down truncates toward zero
    assert from_e18_down(3, 24) == from_e18_up(3, 24) == 3 * 10**6
    assert to_e18(1_999_999, 24) == 1
    assert to_e18(-1_999_999, 24) == -1


@given(x=INT256, d=DECIMALS)
def test_native_roundtrip_is_exact(x, d):
    assert from_e18_down(to_e18(x, d), d) == x == from_e18_up(to_e18(x, d), d)


@given(v=INT256, d=DECIMALS)
def test_from_e18_rounding_directions(v, d):
    scale = 10 ** (18 - d)
    down, up = from_e18_down(v, d), from_e18_up(v, d)
    assert down * scale <= v <= up * scale
    assert up - down == (0 if v % scale == 0 else 1)
    assert down == math.floor(Fraction(v, scale)) and up == math.ceil(Fraction(v, scale))


def test_ratio_and_format():
    assert ratio_e18(1, 3) == 333_333_333_333_333_333
    assert ratio_e18(5, 0) == 0
    assert fmt_units(-1_234_567, 6, 2) == "-1.23"
    assert fmt_units(1_234_567_890 * USDC, 6, 0) == "1,234,567,890"
    assert fmt_units(5, 18, 4) == "0.0000"


# --------------------------------------------------------------------------- mirrors (pure properties)

PRICES = st.integers(min_value=1, max_value=10**6 * UNIT)
SKEWS = st.integers(min_value=-(10**7) * UNIT, max_value=10**7 * UNIT)
SCALES = st.integers(min_value=1, max_value=10**7 * UNIT)
FEE = st.integers(min_value=0, max_value=UNIT // 10)


def test_fill_price_examples():
    p, s = 3000 * UNIT, 1000 * UNIT
    assert market_fill_price(p, 0, 0, s) == p
    assert market_fill_price(p, 0, 10 * UNIT, s) == 3015 * UNIT
    assert market_fill_price(p, 0, -10 * UNIT, s) == 2985 * UNIT
    # -(7e18 + 3) / 1000e18 truncates to -0.007 exactly; flooring would take one more wei off
    assert market_fill_price(p, -(7 * UNIT + 3), -(2 * UNIT + 1), s) == 2976 * UNIT


@given(price=PRICES, skew=SKEWS, delta=SKEWS, scale=SCALES)
def test_fill_price_is_antisymmetric(price, skew, delta, scale):
    """Truncation makes the premium exactly odd in (skew, delta); the floor version is off by wei."""
    up = market_fill_price(price, skew, delta, scale) - price
    down = market_fill_price(price, -skew, -delta, scale) - price
    assert up == -down
    exact = Fraction(price) * Fraction(2 * skew + delta, 2 * scale)
    assert abs(up - exact) <= price / UNIT + 2  # within the rounding of the two proportional skews


@given(skew=SKEWS, delta=SKEWS, fill=PRICES, taker=FEE, maker=FEE)
def test_order_fee_between_maker_and_taker(skew, delta, fill, taker, maker):
    fee = market_order_fee(skew, delta, fill, taker, maker)
    notional = abs(delta) * fill // UNIT
    lo, hi = sorted((notional * maker // UNIT, notional * taker // UNIT))
    assert lo - 1 <= fee <= hi + 1               # two floors instead of one in the flip case
    if skew == 0 or (skew > 0) == (delta > 0):
        assert fee == notional * taker // UNIT
    elif abs(delta) <= abs(skew):
        assert fee == notional * maker // UNIT


@given(skew=SKEWS, scale=SCALES, vmax=st.integers(min_value=0, max_value=100 * UNIT))
def test_velocity_is_clamped_and_odd(skew, scale, vmax):
    v = market_funding_velocity(skew, scale, vmax)
    assert abs(v) <= vmax
    assert market_funding_velocity(-skew, scale, vmax) == -v
    if abs(skew) >= scale:
        assert abs(v) == vmax
    assert v == 0 or (v > 0) == (skew > 0)


@given(rate=st.integers(min_value=-UNIT, max_value=UNIT), elapsed=st.integers(min_value=0, max_value=30 * DAY),
       price=PRICES)
def test_positive_funding_rate_lowers_the_index(rate, elapsed, price):
    """Positive rate: longs pay, so funding per unit of size (the index move) is negative."""
    u = market_unrecorded_funding(rate, rate, elapsed, price)
    assert u == 0 or (u < 0) == (rate > 0)
    assert market_unrecorded_funding(-rate, -rate, elapsed, price) == -u
    assert market_funding_rate(rate, 0, elapsed) == rate


# --------------------------------------------------------------------------- mirrors against the contract

SMALL_SCALE = 1000 * WETH
TRADERS = (3, 4, 5, 6, 7, 8, 9)
PART = st.integers(min_value=-600 * WETH, max_value=600 * WETH).filter(lambda x: x != 0)
ODD = st.integers(min_value=-(10**6), max_value=10**6)
DELTA = st.one_of(st.integers(min_value=-800 * WETH, max_value=800 * WETH), ODD,
                  st.integers(min_value=-5, max_value=5).map(lambda k: k * WETH + 1))
ONCHAIN = settings(max_examples=25, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def test_market_views_equal_the_mirrors(chain):
    """fillPrice, orderFee, currentFundingVelocity, currentFundingRate and fundingIndex, to the wei."""
    market = deploy_market(chain, MarketParams(skewScale=SMALL_SCALE))
    p = read_state(market).params
    for i in TRADERS:
        fund(chain, market.address, i, 10**9 * USDC)
    w3 = chain.w3
    checked = {"trades": 0, "nonpositive": 0}

    @ONCHAIN
    @given(parts=st.lists(PART, min_size=1, max_size=2), gap=st.integers(min_value=0, max_value=3000),
           tick=st.integers(min_value=100 * 10**8, max_value=5000 * 10**8), delta=DELTA,
           elapsed=st.integers(min_value=0, max_value=3 * DAY))
    @example(parts=[-(7 * WETH + 3)], gap=0, tick=3000 * 10**8, delta=-(2 * WETH + 1), elapsed=3601)
    @example(parts=[5 * WETH + 1, -(11 * WETH + 7)], gap=977, tick=2999_99999999, delta=3, elapsed=86_399)
    @example(parts=[600 * WETH, 600 * WETH - 1], gap=10, tick=1234_56789012, delta=-(400 * WETH + 5), elapsed=7)
    @example(parts=[-600 * WETH, -(599 * WETH + 9)], gap=1, tick=3000 * 10**8, delta=-(700 * WETH), elapsed=0)
    def check(parts, gap, tick, delta, elapsed):
        snap = w3.provider.make_request("evm_snapshot", [])["result"]
        try:
            chain.admin("PriceFeed", chain.d.oracle, "setAnswer", tick)
            price = tick * PRICE_SCALE
            for k, part in enumerate(parts):
                if k:
                    chain.advance(gap)
                trade_on(chain, market.address, TRADERS[k], part)
            skew = sum(parts)
            assert market.functions.marketSkew().call() == skew

            fill = market_fill_price(price, skew, delta, SMALL_SCALE)
            if fill <= 0:
                checked["nonpositive"] += 1
                with pytest.raises(ContractLogicError, match="fill price not positive"):
                    market.functions.fillPrice(delta).call()
            else:
                assert market.functions.fillPrice(delta).call() == [fill, False]
                fee = market_order_fee(skew, delta, fill, p["takerFee"], p["makerFee"])
                assert market.functions.orderFee(delta).call() == [fee, False]
                if delta != 0:
                    ev = event(market, trade_on(chain, market.address, TRADERS[-1], delta), "PositionModified")
                    assert (ev["fillPrice"], ev["fee"]) == (fill, fee)
                    skew += delta
                    checked["trades"] += 1

            velocity = market_funding_velocity(skew, SMALL_SCALE, p["maxFundingVelocity"])
            assert market.functions.currentFundingVelocity().call() == velocity
            chain.advance(elapsed)
            s, ts = read_state(market), chain.now()
            assert s.skew == skew
            rate = market_funding_rate(s.rate_last, velocity, ts - s.last_recomputed)
            assert market.functions.currentFundingRate().call() == rate
            assert market.functions.fundingIndex().call() == m_index(s, price, ts)
        finally:
            w3.provider.make_request("evm_revert", [snap])

    check()
    assert checked["trades"] >= 5               # the trade path was exercised, not only the views


# --------------------------------------------------------------------------- mirrors against recorded answers

# Answers of the deployed PerpMarket (skew scale 1,000 ETH, taker 0.06%, maker 0.02%, max funding
# velocity 9/day), recorded once on anvil by the views fillPrice, orderFee, currentFundingVelocity,
# currentFundingRate and fundingIndex (the slow test below checks the mirrors against the chain
# itself). They let the fast suite catch a mirror that drifts from the contract without a chain:
# the pure policy tests use these same mirrors and cannot.
# (price, skew, size delta, fill price, order fee, funding velocity)
RECORDED_FILLS = [
    (3000000000000000000000, -7000000000000000003, -2000000000000000001, 2976000000000000000000, 3571200000000000001, -63000000000000000),
    (2999999999990000000000, -6000000000000000006, 3, 2981999999990060000000, 1, -54000000000000000),
    (1234567890120000000000, 1199999999999999999999, -400000000000000000005, 2469135780239999998765, 197530862419199999903, 9000000000000000000),
    (3000000000000000000000, -599000000000000000009, -7000000000000000000, 1192500000000000000000, 5008500000000000000, -5391000000000000000),
    (1777777777770000000000, -123000000000000000456, 250000000000000000789, 1781333333325540000000, 179558399999214432517, -1107000000000000000),
    (100000000010000000000, 333000000000000000333, -500000000000000000001, 108300000010830000050, 18064440001806443993, 2997000000000000000),
    (4321123456780000000000, -1000000000000000001, 999999999999999999, 4318962895051610000000, 863792579010321999, -9000000000000000),
    (2500000000000000000000, -400000000000000000000, -100000000000000000017, 1375000000000000000000, 82500000000000000014, -3600000000000000000),
]
# (rate last, velocity, seconds since the last recompute, rate now, price, funding index move)
RECORDED_FUNDING = [
    (0, -63000000000000000, 3601, -2625729166666666, 3000000000000000000000, 164153658492474000),
    (-2625729166666666, -54000000000000000, 4001, -5126354166666666, 3000000000000000000000, 538473705150462000),
    (0, -54000000000000000, 86399, -53999375000000000, 2999999999990000000000, 80998125010580700249),
    (-53999375000000000, -45000000000000000, 4001, -56083229166666666, 2999999999990000000000, 7646536445648699545),
    (0, 9000000000000000000, 7, 729166666666666, 1234567890120000000000, -36466668243302),
    (729166666666666, 9000000000000000000, 4001, 417499999999999999, 1234567890120000000000, -11955124605400047677),
    (0, -5391000000000000000, 1, -62395833333333, 3000000000000000000000, 1083260994000),
    (-62395833333333, -5382000000000000000, 4002, -249353645833333333, 3000000000000000000000, 17329218728298609000),
    (0, -1107000000000000000, 12345, -158170312500000000, 1777777777770000000000, 20088606047365815459),
    (-158170312500000000, -1098000000000000000, 4001, -209016354166666666, 1777777777770000000000, 15114340054803558317),
    (0, 2997000000000000000, 200000, 6937500000000000000, 100000000010000000000, -802951388969184027688),
    (6937500000000000000, 3006000000000000000, 4001, 7076701458333333333, 100000000010000000000, -32448391227082609122),
    (0, -9000000000000000, 59, -6145833333333, 4321123456780000000000, 9067461631351),
    (-6145833333333, 0, 4001, -6145833333333, 4321123456780000000000, 1229793694638310),
    (0, -3600000000000000000, 259200, -10800000000000000000, 2500000000000000000000, 40500000000000000000000),
    (-10800000000000000000, -3590999999999999991, 4001, -10966291562499999999, 2500000000000000000000, 1259938260149920427500),
]


@pytest.mark.parametrize("price, skew, delta, fill, fee, velocity", RECORDED_FILLS)
def test_mirrors_give_the_recorded_contract_answers(price, skew, delta, fill, fee, velocity):
    assert market_fill_price(price, skew, delta, SMALL_SCALE) == fill
    assert market_order_fee(skew, delta, fill, 6 * 10**14, 2 * 10**14) == fee
    assert market_funding_velocity(skew, SMALL_SCALE, 9 * UNIT) == velocity


@pytest.mark.parametrize("rate_last, velocity, elapsed, rate_now, price, index_move", RECORDED_FUNDING)
def test_funding_mirrors_give_the_recorded_contract_answers(rate_last, velocity, elapsed, rate_now, price,
                                                            index_move):
    assert market_funding_rate(rate_last, velocity, elapsed) == rate_now
    assert market_unrecorded_funding(rate_last, rate_now, elapsed, price) == index_move
