"""Uniswap v3 math (hedger/protocols/uniswap_v3/math.py): published vectors and properties, no chain.

Vectors come from Uniswap's own tests (v3-core test/TickMath.spec.ts, SqrtPriceMath.spec.ts,
Tick.spec.ts; the v3-sdk sqrtPriceMath test) and are quoted with their source. The properties
check each function against an independent reference (exact rationals, a brute-force search,
high-precision decimals) rather than against itself.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from fractions import Fraction
from math import ceil, floor

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from hedger.protocols.uniswap_v3.math import (MAX_SQRT_RATIO, MAX_TICK, MIN_SQRT_RATIO, MIN_TICK, Q96, Q128,
                                              UINT128_MAX, UINT256_MAX, UniswapMathError, amount0_delta,
                                              amount1_delta, amounts_for_liquidity, asset_amount_of_position,
                                              check_slot0, fee_growth_inside, fees_owed, mean_tick,
                                              price_e18_at_tick, quote_at_tick, sqrt_ratio_at_tick,
                                              tick_at_sqrt_ratio)

ticks = st.integers(MIN_TICK, MAX_TICK)
sqrt_prices = st.integers(MIN_SQRT_RATIO, MAX_SQRT_RATIO - 1)
liquidities = st.integers(0, UINT128_MAX)
u256 = st.integers(0, UINT256_MAX)
decimals = st.integers(0, 24)


def encode_price_sqrt(reserve1: int, reserve0: int) -> int:
    """floor(sqrt(reserve1 / reserve0) * 2**96) for ratios whose root is exact (as in Uniswap's tests)."""
    with localcontext() as ctx:
        ctx.prec = 80
        return int((Decimal(reserve1) / Decimal(reserve0)).sqrt() * Decimal(Q96))


def brute_tick(sqrt_price_x96: int) -> int:
    """The greatest tick with sqrt_ratio_at_tick(tick) <= price, by binary search (the definition)."""
    lo, hi = MIN_TICK, MAX_TICK
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sqrt_ratio_at_tick(mid) <= sqrt_price_x96:
            lo = mid
        else:
            hi = mid - 1
    return lo


# ---------------------------------------------------------------- TickMath


def test_sqrt_ratio_at_tick_published_values():
    # v3-core test/TickMath.spec.ts and TickMath.sol's MIN/MAX_SQRT_RATIO
    assert sqrt_ratio_at_tick(0) == 2**96
    assert sqrt_ratio_at_tick(MIN_TICK) == 4295128739 == MIN_SQRT_RATIO
    assert sqrt_ratio_at_tick(MIN_TICK + 1) == 4295343490
    assert sqrt_ratio_at_tick(MAX_TICK - 1) == 1461373636630004318706518188784493106690254656249
    assert sqrt_ratio_at_tick(MAX_TICK) == 1461446703485210103287273052203988822378723970342 == MAX_SQRT_RATIO
    # v3-sdk sqrtPriceMath test: X96(A) = getSqrtRatioAtTick(-276310), X96(B) = getSqrtRatioAtTick(-276300)
    assert sqrt_ratio_at_tick(-276310) == 79283743674911602647011
    assert sqrt_ratio_at_tick(-276300) == 79323393475916303018909
    # TickMath.spec.ts: the min tick is below sqrt(1/2**127), the max tick above sqrt(2**127)
    assert sqrt_ratio_at_tick(MIN_TICK) < encode_price_sqrt(1, 2**127)
    assert sqrt_ratio_at_tick(MAX_TICK) > encode_price_sqrt(2**127, 1)
    # TickMath.spec.ts: ticks 13863 / 27726 are sqrt ratios of ~2 / ~4, and their negatives ~1/2 / ~1/4 (1 bip)
    for tick, exact in ((13863, 2 * Q96), (-13863, Q96 // 2), (27726, 4 * Q96), (-27726, Q96 // 4)):
        assert abs(sqrt_ratio_at_tick(tick) - exact) <= exact // 10_000


@pytest.mark.parametrize("tick", [MIN_TICK - 1, MAX_TICK + 1, -(2**23), 2**23 - 1])
def test_sqrt_ratio_at_tick_out_of_range_is_refused(tick):
    with pytest.raises(UniswapMathError, match=r"tick=.*'T'"):
        sqrt_ratio_at_tick(tick)


@pytest.mark.parametrize("bad", [True, 1.0, "0", None])
def test_sqrt_ratio_at_tick_refuses_non_integers(bad):
    with pytest.raises(UniswapMathError, match="tick must be an integer"):
        sqrt_ratio_at_tick(bad)


@pytest.mark.parametrize("tick", [50, 100, 250, 500, 1_000, 2_500, 3_000, 4_000, 5_000, 50_000, 150_000,
                                  250_000, 500_000, 738_203])
def test_sqrt_ratio_at_tick_within_a_hundredth_of_a_bip(tick):
    # TickMath.spec.ts: "is at most off by 1/100th of a bips", both signs
    for t in (tick, -tick):
        with localcontext() as ctx:
            ctx.prec = 80
            exact = (Decimal("1.0001") ** t).sqrt() * Decimal(2**96)
            assert abs(Decimal(sqrt_ratio_at_tick(t)) - exact) / exact < Decimal("0.000001")


def test_tick_at_sqrt_ratio_published_values():
    # v3-core test/TickMath.spec.ts
    assert tick_at_sqrt_ratio(MIN_SQRT_RATIO) == MIN_TICK
    assert tick_at_sqrt_ratio(4295343490) == MIN_TICK + 1
    assert tick_at_sqrt_ratio(1461373636630004318706518188784493106690254656249) == MAX_TICK - 1
    assert tick_at_sqrt_ratio(MAX_SQRT_RATIO - 1) == MAX_TICK - 1
    assert tick_at_sqrt_ratio(2**96) == 0
    assert tick_at_sqrt_ratio(2**96 - 1) == -1


@pytest.mark.parametrize("price", [MIN_SQRT_RATIO - 1, MAX_SQRT_RATIO, 0, 2**160])
def test_tick_at_sqrt_ratio_out_of_range_is_refused(price):
    with pytest.raises(UniswapMathError, match=r"sqrt_price_x96=.*'R'"):
        tick_at_sqrt_ratio(price)


@given(ticks)
@example(MIN_TICK)
@example(MAX_TICK - 1)
@example(0)
def test_tick_sqrt_ratio_round_trip(tick):
    price = sqrt_ratio_at_tick(tick)
    if tick < MAX_TICK:  # MAX_SQRT_RATIO itself is outside getTickAtSqrtRatio's domain
        assert tick_at_sqrt_ratio(price) == tick
        assert tick_at_sqrt_ratio(sqrt_ratio_at_tick(tick + 1) - 1) == tick
    if tick > MIN_TICK:
        assert tick_at_sqrt_ratio(price - 1) == tick - 1
    assert price < sqrt_ratio_at_tick(tick + 1) if tick < MAX_TICK else price == MAX_SQRT_RATIO


@given(sqrt_prices)
@example(MIN_SQRT_RATIO)
@example(MAX_SQRT_RATIO - 1)
@example(12857036465196691992791697221653775109723)  # TickMath.spec.ts "arbitrary price"
@example(5192296858534827628530496329220095)  # TickMath.spec.ts "accuracy"
def test_tick_at_sqrt_ratio_is_the_greatest_tick_at_or_below(price):
    assert tick_at_sqrt_ratio(price) == brute_tick(price)


# ---------------------------------------------------------------- SqrtPriceMath


def test_amount_deltas_published_values():
    one, p121 = encode_price_sqrt(1, 1), encode_price_sqrt(121, 100)
    assert (one, p121) == (2**96, 11 * 2**96 // 10)
    e18 = 10**18
    # v3-core test/SqrtPriceMath.spec.ts: "returns 0.1 amount1 for price of 1 to 1.21"
    assert amount0_delta(one, p121, e18, True) == 90909090909090910
    assert amount0_delta(one, p121, e18, False) == 90909090909090909
    assert amount1_delta(one, p121, e18, True) == 100000000000000000
    assert amount1_delta(one, p121, e18, False) == 99999999999999999
    # the order of the two prices does not matter
    assert amount0_delta(p121, one, e18, False) == 90909090909090909
    # "returns 0 if liquidity is 0" / "if prices are equal"
    assert amount0_delta(one, encode_price_sqrt(2, 1), 0, True) == 0
    assert amount1_delta(one, encode_price_sqrt(2, 1), 0, True) == 0
    assert amount0_delta(one, one, e18, True) == 0
    # "works for prices that overflow"
    hi_a, hi_b = encode_price_sqrt(2**90, 1), encode_price_sqrt(2**96, 1)
    assert amount0_delta(hi_a, hi_b, e18, True) == amount0_delta(hi_a, hi_b, e18, False) + 1
    # "sqrtP * sqrtQ overflows"
    assert amount0_delta(1025574284609383582644711336373707553698163132913,
                         1025574284609383690408304870162715216695788925244,
                         50015962439936049619261659728067971248, True) == 406
    # v3-sdk sqrtPriceMath test: L = 100e12 between ticks -276310 and -276300
    a, b = sqrt_ratio_at_tick(-276310), sqrt_ratio_at_tick(-276300)
    assert amount0_delta(a, b, 100 * 10**12, False) == 49949961958869841
    assert amount0_delta(a, b, 100 * 10**12, True) == 49949961958869842


def test_amount0_delta_rounds_up_both_divisions():
    # L * 2**96 * (7 - 3) / 7 is not whole but its floor is a multiple of 3: rounding only the
    # second division up would give the exact quotient's floor, not its ceiling
    assert amount0_delta(3, 7, 1, True) == ceil(Fraction(2**96 * 4, 21)) == amount0_delta(3, 7, 1, False) + 1


def test_amount0_delta_refuses_a_zero_price():
    with pytest.raises(UniswapMathError, match="sqrt_ratio_a_x96 must be positive"):
        amount0_delta(0, 2**96, 1, False)


@given(sqrt_prices, sqrt_prices, liquidities)
def test_amount_deltas_are_the_exact_rationals_rounded(a, b, liquidity):
    lo, hi = min(a, b), max(a, b)
    exact0 = Fraction(liquidity * Q96 * (hi - lo), lo * hi)
    exact1 = Fraction(liquidity * (hi - lo), Q96)
    assert amount0_delta(a, b, liquidity, False) == floor(exact0)
    assert amount0_delta(a, b, liquidity, True) == ceil(exact0)
    assert amount1_delta(a, b, liquidity, False) == floor(exact1)
    assert amount1_delta(a, b, liquidity, True) == ceil(exact1)


# ---------------------------------------------------------------- position amounts


def test_amounts_for_liquidity_published_values():
    # the v3-sdk vector as a position: price at or below the range -> all token0
    a = sqrt_ratio_at_tick(-276310)
    assert amounts_for_liquidity(a, -276310, -276300, 100 * 10**12) == (49949961958869841, 0)
    assert amounts_for_liquidity(MIN_SQRT_RATIO, -276310, -276300, 100 * 10**12) == (49949961958869841, 0)
    # at the top of the range and above -> all token1, rounded down like decreaseLiquidity
    b = sqrt_ratio_at_tick(-276300)
    expected1 = 100 * 10**12 * (b - a) // Q96
    assert amounts_for_liquidity(b, -276310, -276300, 100 * 10**12) == (0, expected1)
    assert amounts_for_liquidity(MAX_SQRT_RATIO, -276310, -276300, 100 * 10**12) == (0, expected1)
    # 1.0 inside [1/1.21, 1.21) with L = 1e18: both halves of the SqrtPriceMath vector, rounded down
    lower, upper = tick_at_sqrt_ratio(encode_price_sqrt(100, 121)), tick_at_sqrt_ratio(encode_price_sqrt(121, 100))
    amount0, amount1 = amounts_for_liquidity(2**96, lower, upper, 10**18)
    assert amount0 == amount0_delta(2**96, sqrt_ratio_at_tick(upper), 10**18, False)
    assert amount1 == amount1_delta(sqrt_ratio_at_tick(lower), 2**96, 10**18, False)


@pytest.mark.parametrize("lower, upper", [(10, 10), (10, -10), (MIN_TICK - 1, 0), (0, MAX_TICK + 1)])
def test_amounts_for_liquidity_refuses_a_bad_range(lower, upper):
    with pytest.raises(UniswapMathError, match="tick_lower|tick_upper"):
        amounts_for_liquidity(2**96, lower, upper, 1)


def test_amounts_for_liquidity_refuses_a_price_no_pool_has():
    with pytest.raises(UniswapMathError, match="sqrt_price_x96"):
        amounts_for_liquidity(MIN_SQRT_RATIO - 1, -10, 10, 1)


@given(st.tuples(ticks, ticks), sqrt_prices, sqrt_prices, liquidities)
def test_amounts_are_monotone_in_price(range_ticks, p, q, liquidity):
    lower, upper = sorted(range_ticks)
    assume(lower < upper)
    low, high = min(p, q), max(p, q)
    a0_low, a1_low = amounts_for_liquidity(low, lower, upper, liquidity)
    a0_high, a1_high = amounts_for_liquidity(high, lower, upper, liquidity)
    assert a0_high <= a0_low  # a rising price sells token0...
    assert a1_high >= a1_low  # ...for token1


@given(st.tuples(ticks, ticks), sqrt_prices, liquidities)
def test_below_range_all_token0_above_range_all_token1(range_ticks, price, liquidity):
    lower, upper = sorted(range_ticks)
    assume(lower < upper)
    sqrt_lower, sqrt_upper = sqrt_ratio_at_tick(lower), sqrt_ratio_at_tick(upper)
    amount0, amount1 = amounts_for_liquidity(price, lower, upper, liquidity)
    whole0 = amount0_delta(sqrt_lower, sqrt_upper, liquidity, False)
    whole1 = amount1_delta(sqrt_lower, sqrt_upper, liquidity, False)
    if price <= sqrt_lower:
        assert (amount0, amount1) == (whole0, 0)
    elif price >= sqrt_upper:
        assert (amount0, amount1) == (0, whole1)
    else:
        assert amount0 <= whole0 and amount1 <= whole1


def burn_amounts_by_pool_tick(price, tick, lower, upper, liquidity):
    """UniswapV3Pool._modifyPosition with a negative delta: it branches on slot0.tick, not the price."""
    sqrt_lower, sqrt_upper = sqrt_ratio_at_tick(lower), sqrt_ratio_at_tick(upper)
    if tick < lower:
        return amount0_delta(sqrt_lower, sqrt_upper, liquidity, False), 0
    if tick < upper:
        return amount0_delta(price, sqrt_upper, liquidity, False), amount1_delta(sqrt_lower, price, liquidity, False)
    return 0, amount1_delta(sqrt_lower, sqrt_upper, liquidity, False)


@given(st.tuples(ticks, ticks), st.integers(MIN_TICK + 1, MAX_TICK - 1), sqrt_prices, liquidities)
def test_amounts_branching_on_price_equal_the_pools_branching_on_its_tick(range_ticks, boundary, price, liquidity):
    lower, upper = sorted(range_ticks)
    assume(lower < upper)
    # any slot0 the pool can hold: the tick of the price, or the state a swap going down leaves
    # when it stops exactly on a tick (price at tick t, slot0.tick = t - 1)
    for p, t in ((price, tick_at_sqrt_ratio(price)), (sqrt_ratio_at_tick(boundary), boundary - 1),
                 (sqrt_ratio_at_tick(lower), lower - 1), (sqrt_ratio_at_tick(upper), upper - 1)):
        if MIN_TICK <= t:
            check_slot0(p, t)
            assert amounts_for_liquidity(p, lower, upper, liquidity) == burn_amounts_by_pool_tick(
                p, t, lower, upper, liquidity)


@given(st.tuples(ticks, ticks, ticks), liquidities)
def test_decrease_never_pays_more_than_mint_takes(three_ticks, liquidity):
    # mint rounds up (getAmount*Delta(..., roundUp=True)), burn rounds down: at most 1 apart per token
    lower, upper = sorted(three_ticks[:2])
    assume(lower < upper)
    price = sqrt_ratio_at_tick(three_ticks[2])
    sqrt_lower, sqrt_upper = sqrt_ratio_at_tick(lower), sqrt_ratio_at_tick(upper)
    clamped = min(max(price, sqrt_lower), sqrt_upper)
    mint0 = amount0_delta(clamped, sqrt_upper, liquidity, True)
    mint1 = amount1_delta(sqrt_lower, clamped, liquidity, True)
    amount0, amount1 = amounts_for_liquidity(price, lower, upper, liquidity)
    assert mint0 - 1 <= amount0 <= mint0 and mint1 - 1 <= amount1 <= mint1


# ---------------------------------------------------------------- fees


@pytest.mark.parametrize("current, lower_out, upper_out, expected", [
    # v3-core test/Tick.spec.ts #getFeeGrowthInside, range [-2, 2), global (15, 15)
    (0, (0, 0), (0, 0), (15, 15)),  # "returns all for two uninitialized ticks if tick is inside"
    (4, (0, 0), (0, 0), (0, 0)),  # "returns 0 for two uninitialized ticks if tick is above"
    (-4, (0, 0), (0, 0), (0, 0)),  # "returns 0 for two uninitialized ticks if tick is below"
    (0, (0, 0), (2, 3), (13, 12)),  # "subtracts upper tick if below"
    (0, (2, 3), (0, 0), (13, 12)),  # "subtracts lower tick if above"
    (0, (2, 3), (4, 1), (9, 11)),  # "subtracts upper and lower tick if inside"
    (0, (UINT256_MAX - 3, UINT256_MAX - 2), (3, 5), (16, 13)),  # "works correctly with overflow on inside tick"
])
def test_fee_growth_inside_published_values(current, lower_out, upper_out, expected):
    got = tuple(fee_growth_inside(current, -2, 2, 15, lower_out[i], upper_out[i]) for i in (0, 1))
    assert got == expected


def fee_state(**overrides):
    state = dict(liquidity=10**18, tick_current=0, tick_lower=-60, tick_upper=60,
                 fee_growth_global_x128=(0, 0), lower_fee_growth_outside_x128=(0, 0),
                 upper_fee_growth_outside_x128=(0, 0), fee_growth_inside_last_x128=(0, 0), tokens_owed=(0, 0))
    state.update(overrides)
    return state


def test_fees_owed_worked_example():
    # 1e18 liquidity in range while 0.5 token0 and 2 token1 of fees per unit of liquidity accrue
    state = fee_state(fee_growth_global_x128=(Q128 // 2, 2 * Q128), tokens_owed=(7, 9))
    assert fees_owed(**state) == (7 + 10**18 // 2, 9 + 2 * 10**18)
    # below the range (the pool's tick, not its price, decides) nothing accrued inside
    assert fees_owed(**{**state, "tick_current": -61}) == (7, 9)
    # the manager's uint128 cast and sum wrap as the contract's do
    wrapped = fee_state(liquidity=UINT128_MAX, fee_growth_global_x128=(2 * Q128, 0), tokens_owed=(5, 0))
    assert fees_owed(**wrapped)[0] == (5 + 2 * UINT128_MAX) % 2**128


def test_fees_accrue_at_the_lower_tick_but_not_at_the_upper_tick():
    # a position covers [tick_lower, tick_upper): Tick.getFeeGrowthInside's >= and <
    state = fee_state(fee_growth_global_x128=(Q128, Q128))
    assert fees_owed(**{**state, "tick_current": -60}) == (10**18, 10**18)
    assert fees_owed(**{**state, "tick_current": 59}) == (10**18, 10**18)
    assert fees_owed(**{**state, "tick_current": 60}) == (0, 0)
    assert fees_owed(**{**state, "tick_current": -61}) == (0, 0)


def test_fees_owed_refuses_bad_pairs():
    with pytest.raises(UniswapMathError, match="tokens_owed"):
        fees_owed(**fee_state(tokens_owed=(1,)))
    with pytest.raises(UniswapMathError, match=r"fee_growth_global_x128\[1\]"):
        fees_owed(**fee_state(fee_growth_global_x128=(0, -1)))


@given(st.tuples(u256, u256), st.tuples(u256, u256), st.tuples(u256, u256), st.tuples(u256, u256),
       liquidities, st.integers(0, 2**200), st.integers(0, 2**200))
def test_fees_owed_is_growth_inside_times_liquidity_whatever_the_wraparound(
        global0, lower_out, upper_out, owed, liquidity, growth0, growth1):
    """From any starting counters (wrapped or not), fees earned in range are floor(growth * L / 2**128)."""
    # the position was last touched now (tick 0, inside [-60, 60)): its last value is the current inside value
    last = tuple(fee_growth_inside(0, -60, 60, global0[i], lower_out[i], upper_out[i]) for i in (0, 1))
    owed = (owed[0] % 2**128, owed[1] % 2**128)
    start = fee_state(liquidity=liquidity, fee_growth_global_x128=global0, lower_fee_growth_outside_x128=lower_out,
                      upper_fee_growth_outside_x128=upper_out, fee_growth_inside_last_x128=last, tokens_owed=owed)
    assert fees_owed(**start) == owed
    grown = ((global0[0] + growth0) % 2**256, (global0[1] + growth1) % 2**256)
    in_range = fees_owed(**{**start, "fee_growth_global_x128": grown})
    assert in_range == ((owed[0] + growth0 * liquidity // Q128) % 2**128,
                        (owed[1] + growth1 * liquidity // Q128) % 2**128)
    # the price crossed the upper tick (its outside value flipped to global - outside) and then
    # the fees grew: earned above the range, so not by this position
    above = {**start, "tick_current": 61, "fee_growth_global_x128": grown,
             "upper_fee_growth_outside_x128": ((global0[0] - upper_out[0]) % 2**256,
                                               (global0[1] - upper_out[1]) % 2**256)}
    assert fees_owed(**above) == owed


# ---------------------------------------------------------------- TWAP


@pytest.mark.parametrize("cumulatives, seconds, expected", [
    ((0, 7), 2, 3),
    ((0, -7), 2, -4),  # rounds toward negative infinity, as OracleLibrary.consult
    ((0, -8), 2, -4),
    ((1000, 1000), 1800, 0),
    ((-5_000_000, -5_000_000 + 201_000 * 1800), 1800, 201_000),
    ((2**55 - 5, -(2**55) + 5), 5, 2),  # the int56 cumulative wrapped: +10 over 5 s
])
def test_mean_tick_vectors(cumulatives, seconds, expected):
    assert mean_tick(cumulatives, seconds) == expected


@given(st.integers(-(2**40), 2**40), st.integers(MIN_TICK, MAX_TICK), st.integers(1, 2**32 - 1),
       st.integers(0, 2**32 - 1))
def test_mean_tick_floors_the_exact_mean(start, tick, seconds, remainder):
    end = start + tick * seconds + remainder % seconds
    assume(-(2**55) <= end < 2**55)
    assert mean_tick((start, end), seconds) == floor(Fraction(end - start, seconds)) == tick


@pytest.mark.parametrize("cumulatives, seconds, field", [
    ((0, 1), 0, "seconds"),
    ((0, 1), 2**32, "seconds"),
    ((0,), 10, "tick_cumulatives"),
    ((0, 2**55), 10, r"tick_cumulatives\[1\]"),
    ((0, 10 * (MAX_TICK + 1)), 10, "mean tick"),
])
def test_mean_tick_refuses_bad_input(cumulatives, seconds, field):
    with pytest.raises(UniswapMathError, match=field):
        mean_tick(cumulatives, seconds)


# ---------------------------------------------------------------- prices


def test_price_published_values():
    assert price_e18_at_tick(0, 18, 18, True) == price_e18_at_tick(0, 18, 18, False) == 10**18
    assert price_e18_at_tick(0, 6, 18, False) == 10**30  # raw 1:1 with a 10**12 decimals gap
    # TickMath.spec.ts: the sqrt ratio at tick 13863 is ~2 (within 1 bip), so the price is ~4
    assert abs(price_e18_at_tick(13863, 18, 18, True) - 4 * 10**18) <= 8 * 10**14
    assert abs(price_e18_at_tick(-13863, 18, 18, True) - 10**18 // 4) <= 10**14 // 2
    # USDC (6) / WETH (18): tick 200820 is ETH at ~1900.79 USDC (uniswapv3-book discussion #58),
    # with USDC as token0 (ETH is token1) or, mirrored, WETH as token0 at tick -200820
    for price in (price_e18_at_tick(200820, 6, 18, False), price_e18_at_tick(-200820, 18, 6, True)):
        assert abs(price - 1900_79 * 10**16) < 1900 * 10**14  # 1 bip


@given(ticks, decimals, decimals)
def test_prices_for_both_token_orders_are_reciprocal(tick, d0, d1):
    as_token0 = price_e18_at_tick(tick, d0, d1, True)
    as_token1 = price_e18_at_tick(tick, d0, d1, False)
    # both are floors of exact values whose product is exactly 10**36
    assert as_token0 * as_token1 <= 10**36 < (as_token0 + 1) * (as_token1 + 1)


@given(ticks, decimals, decimals)
def test_price_is_the_exact_ratio_floored(tick, d0, d1):
    ratio = Fraction(sqrt_ratio_at_tick(tick) ** 2, 2**192)  # token1 per token0, raw
    assert price_e18_at_tick(tick, d0, d1, True) == floor(ratio * 10**18 * 10**d0 / 10**d1)
    assert price_e18_at_tick(tick, d0, d1, False) == floor(10**18 * 10**d1 / (ratio * 10**d0))


@given(ticks, decimals, decimals, st.booleans())
def test_price_matches_oracle_library_quote_where_it_is_exact(tick, d_asset, d_quote, asset_is_token0):
    assume(sqrt_ratio_at_tick(tick) <= UINT128_MAX and 18 + d_asset - d_quote >= 0)
    base = 10 ** (18 + d_asset - d_quote)
    assume(base <= UINT128_MAX)
    d0, d1 = (d_asset, d_quote) if asset_is_token0 else (d_quote, d_asset)
    assert price_e18_at_tick(tick, d0, d1, asset_is_token0) == quote_at_tick(tick, base, asset_is_token0)


@given(ticks, st.integers(0, UINT128_MAX), st.booleans())
@example(MAX_TICK, UINT128_MAX, True)  # the sqrt ratio > 2**128 branch, where ratioX128 is floored
def test_quote_at_tick_follows_the_two_branches_of_get_quote_at_tick(tick, base, base_is_token0):
    s = sqrt_ratio_at_tick(tick)
    if s <= UINT128_MAX:
        expected = s * s * base // 2**192 if base_is_token0 else 2**192 * base // (s * s)
    else:
        r128 = s * s // 2**64
        expected = r128 * base // 2**128 if base_is_token0 else 2**128 * base // r128
    assert quote_at_tick(tick, base, base_is_token0) == expected


def test_price_refuses_bad_decimals_and_order():
    with pytest.raises(UniswapMathError, match="decimals1"):
        price_e18_at_tick(0, 18, -1, True)
    with pytest.raises(UniswapMathError, match="asset_is_token0"):
        price_e18_at_tick(0, 18, 6, 1)


# ---------------------------------------------------------------- the asset held by a position


def position(tick_current, lower, upper, liquidity, asset_is_token0, **fees):
    state = fee_state(liquidity=liquidity, tick_current=tick_current, tick_lower=lower, tick_upper=upper, **fees)
    return asset_amount_of_position(sqrt_price_x96=sqrt_ratio_at_tick(tick_current),
                                    asset_is_token0=asset_is_token0, **state)


def test_asset_amount_of_position_principal_plus_fees_for_both_orders():
    liquidity = 10**18
    fees = dict(fee_growth_global_x128=(Q128 // 4, Q128 // 8), tokens_owed=(3, 4))
    for asset_is_token0, i in ((True, 0), (False, 1)):
        got = position(0, -600, 600, liquidity, asset_is_token0, **fees)
        principal = amounts_for_liquidity(2**96, -600, 600, liquidity)[i]
        owed = fees_owed(**fee_state(liquidity=liquidity, tick_lower=-600, tick_upper=600, **fees))[i]
        assert got == principal + owed and owed == (3, 4)[i] + liquidity // (4, 8)[i]
    # out of range: all of one token, none of the other (fees still owed)
    assert position(-700, -600, 600, liquidity, False) == 0
    assert position(600, -600, 600, liquidity, True) == 0
    assert position(-700, -600, 600, liquidity, True) == amount0_delta(
        sqrt_ratio_at_tick(-600), sqrt_ratio_at_tick(600), liquidity, False)


@given(st.tuples(st.integers(-200_000, 200_000), st.integers(-200_000, 200_000), st.integers(-200_000, 200_000)),
       st.integers(1, 10**30))
def test_asset_amount_is_the_same_for_the_mirrored_token_order(three_ticks, liquidity):
    """The same position in a pool whose token order is reversed (ticks negated) holds the same asset."""
    lower, current, upper = sorted(three_ticks)
    assume(lower < current < upper)
    as_token0 = position(current, lower, upper, liquidity, True)
    as_token1 = position(-current, -upper, -lower, liquidity, False)
    # the mirrored pool's sqrt prices are the reciprocals up to TickMath's rounding (~1e-30 relative)
    assert abs(as_token0 - as_token1) <= 2 + as_token0 // 10**20


def test_asset_amount_refuses_a_tick_that_does_not_go_with_the_price():
    state = fee_state()
    with pytest.raises(UniswapMathError, match="tick_current=5 does not go with sqrt_price_x96"):
        asset_amount_of_position(sqrt_price_x96=2**96, asset_is_token0=True, **{**state, "tick_current": 5})


def test_check_slot0_accepts_the_swap_boundary_state():
    # a swap going down that stops exactly on tick t leaves tick = t - 1 with the price at tick t
    check_slot0(sqrt_ratio_at_tick(100), 99)
    check_slot0(sqrt_ratio_at_tick(100), 100)
    with pytest.raises(UniswapMathError, match="tick_current=98"):
        check_slot0(sqrt_ratio_at_tick(100), 98)


def test_asset_amount_refuses_a_total_past_uint128():
    with pytest.raises(UniswapMathError, match="exceeds uint128"):
        position(-700, -600, 600, 10**18, True, tokens_owed=(UINT128_MAX, 0))
