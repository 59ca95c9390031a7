"""GMX v2's position math (hedger.protocols.gmx_v2.model) against GMX's own tests, plus properties.

The numeric cases are values asserted by gmx-synthetics' test suite (file and case named on each);
inputs are the market state those tests build (open interest, impact pool, prices, factors).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hedger.protocols.gmx_v2 import model as m
from hedger.protocols.gmx_v2.model import (
    FLOAT_PRECISION as USD,
    ImpactParams,
    LiquidationMarket,
    Position,
)

ETH = 10**18
ETH_5000 = 5000 * 10**12                 # $5,000 per ETH, per wei, x 1e30
USDC_1 = 10**24                          # $1 per USDC unit (6 decimals), x 1e30

# test/exchange/PositionPriceImpact/PairMarket.ts sets these for ETH/USD:
# positionImpactFactor positive 5e-9, negative 1e-8, exponent 2
PAIR_IMPACT = ImpactParams(factor_positive=5 * 10**21, factor_negative=10**22, exponent_positive=2 * USD)

PROPS = settings(max_examples=200, deadline=None)


# --- gmx-synthetics test/exchange/PositionPriceImpact/PairMarket.ts, "price impact pair market" ---
# each increase in that test's order, with the open interest and impact pool it finds:
# (size USD, is_long, long OI, short OI, impact pool wei) ->
# (priceImpactUsd, pending impact amount added, execution price) from its PositionIncrease events
# and pendingImpactAmount reads
PAIR_INCREASES = [
    # user0 long 200k on an empty market: negative impact, stored as pending, size in tokens 40.00
    ((200_000, True, 0, 0, 0),
     (-399999999999999992588018713340000, -79999999999999999, 5010020040080160)),
    # user1 long 200k: imbalance 200k -> 400k
    ((200_000, True, 200_000, 0, 0),
     (-1199999999999999977764056140040000, -239999999999999996, 5030181086519114)),
    # short 10k improves the balance, but the impact pool is empty: capped at 0
    ((10_000, False, 400_000, 0, 0), (0, 0, 5000000000000000)),
    # short 500k crosses over (+800 - 100), capped by the pool of 0.0158 ETH = $79
    ((500_000, False, 400_000, 0, 15800000000000001),
     (79000000000000005000000000000000, 15800000000000001, 5000790124839724)),
    # short 100k on the heavier side: -300
    ((100_000, False, 400_000, 500_000, 15800000000000001),
     (-299999999999999994441014035010000, -59999999999999999, 4985044865403788)),
    # long 200k brings the imbalance to 0: +200, capped by the pool at $79
    ((200_000, True, 400_000, 600_000, 15800000000000001),
     (79000000000000005000000000000000, 15800000000000001, 4998025779816972)),
    # long 100k from balance: -100
    ((100_000, True, 600_000, 600_000, 15800000000000001),
     (-99999999999999998147004678330000, -20000000000000000, 5005005005005005)),
]


@pytest.mark.parametrize("inputs,expected", PAIR_INCREASES)
def test_increase_matches_gmx_pair_market(inputs: tuple, expected: tuple) -> None:
    size, is_long, long_oi, short_oi, pool = inputs
    fill = m.increase_execution(size * USD, is_long, ETH_5000, ETH_5000, long_oi * USD, short_oi * USD, pool,
                                PAIR_IMPACT)
    assert (fill.price_impact_usd, fill.price_impact_amount, fill.execution_price) == expected
    # the impact no longer changes the size in tokens: it is pending on the position
    base = size * USD // ETH_5000 if is_long else -(-size * USD // ETH_5000)   # long down, short up
    assert fill.size_delta_in_tokens == base


def test_pending_impact_accumulates_as_in_gmx_pair_market() -> None:
    # same test: user0's long ends with pendingImpactAmount -0.08 + 0.0158 - 0.02 = -0.0842 ETH and the
    # short with 0.0158 - 0.06 = -0.0442 ETH
    long_pending = sum(m.increase_execution(s * USD, True, ETH_5000, ETH_5000, lo * USD, sh * USD, pool,
                                            PAIR_IMPACT).price_impact_amount
                       for (s, is_long, lo, sh, pool), _ in PAIR_INCREASES[5:] if is_long)
    assert -79999999999999999 + long_pending == -84199999999999998
    short_pending = sum(exp[1] for (_, is_long, *_), exp in PAIR_INCREASES[3:5])
    assert short_pending == -44199999999999998


def test_decrease_short_negative_impact_matches_gmx_pair_market() -> None:
    # same test, "decrease short position, negative price impact": the 10k short (no pending impact)
    # closes while longs are 400k: executionPrice 5039.5, priceImpactUsd -79, the pool gains 0.0158 ETH
    short = Position(is_long=False, size_in_usd=10_000 * USD, size_in_tokens=2 * ETH, collateral_amount=10 * ETH)
    fill = m.decrease_execution(short, 10_000 * USD, ETH_5000, ETH_5000, 400_000 * USD, 10_000 * USD, 0, PAIR_IMPACT)
    assert fill.execution_price == 5039500000000000
    assert fill.price_impact_usd == -79000000000000000652818973670000
    assert fill.proportional_pending_impact_usd == 0
    assert -fill.total_impact_amount == 15800000000000001          # impact pool 0 -> 15800000000000001


def test_decrease_realises_pending_impact_as_in_gmx_pair_market() -> None:
    # same test, "decrease long position, positive price impact": user0's long (500k, 100 ETH, pending
    # -0.0842 ETH) closes 100k with longs 700k / shorts 600k: executionPrice 5002.4999..., own impact
    # +50, proportionalImpactPendingUsd -84.2, the pool gains 0.00684 ETH (0.0158 -> 0.02264) and the
    # position keeps -0.06736 ETH pending
    long = Position(is_long=True, size_in_usd=500_000 * USD, size_in_tokens=100 * ETH, collateral_amount=30 * ETH,
                    pending_impact_amount=-84199999999999998)
    fill = m.decrease_execution(long, 100_000 * USD, ETH_5000, ETH_5000, 700_000 * USD, 600_000 * USD,
                                15800000000000001, PAIR_IMPACT)
    assert fill.execution_price == 5002499999999999
    assert fill.price_impact_usd == 49999999999999999073502339165000
    assert fill.proportional_pending_impact_usd == -84199999999999995000000000000000
    assert 15800000000000001 - fill.total_impact_amount == 22640000000000001
    assert long.pending_impact_amount - fill.proportional_pending_impact_amount == -67359999999999999


def test_synthetic_market_matches_gmx() -> None:
    # gmx-synthetics test/exchange/PositionPriceImpact/SyntheticMarket.ts, "price impact synthetic market":
    # SOL (9 decimals) at $50, long 200k: executionPrice 50.1002004008..., priceImpactUsd -400,
    # pendingImpactAmount -8 SOL
    sol_50 = 50 * 10**30 // 10**9
    fill = m.increase_execution(200_000 * USD, True, sol_50, sol_50, 0, 0, 0, PAIR_IMPACT)
    assert fill.execution_price == 50100200400801603206412
    assert fill.price_impact_usd == -399999999999999992588018713340000
    assert fill.price_impact_amount == -8000000000
    # closing it: the decrease's own positive impact is capped at 0 by the empty pool (execution at 50)
    # and the -8 SOL pending go to the pool
    position = Position(True, 200_000 * USD, fill.size_delta_in_tokens, 10 * ETH,
                        pending_impact_amount=fill.price_impact_amount)
    close = m.decrease_execution(position, 200_000 * USD, sol_50, sol_50, 200_000 * USD, 0, 0, PAIR_IMPACT)
    assert close.execution_price == 50 * 10**21
    assert close.price_impact_usd == 0
    assert -close.total_impact_amount == 8000000000


def test_position_fees_follow_the_balance_as_in_gmx() -> None:
    # gmx-synthetics test/guardian/testFees.ts, "Positive & negative impact fees for positions": fee
    # factors 0.1% (balance worsened) / 0.05% (improved), impact 5e-9 / 1e-8, exponent 2, USDC collateral
    worse, better = 10**27, 5 * 10**26
    # long 50k on an empty book: fee $50, impact ~ -$25 stored as -0.005 ETH pending, 10 ETH of size
    fill = m.increase_execution(50_000 * USD, True, ETH_5000, ETH_5000, 0, 0, 0, PAIR_IMPACT)
    fee = m.position_fee_usd(50_000 * USD, fill.balance_was_improved, better, worse)
    assert m.usd_to_collateral_amount(fee, USDC_1) == 50 * 10**6
    assert abs(fill.price_impact_usd + 25 * USD) <= 10**17
    assert fill.price_impact_amount == -5 * 10**15 and fill.size_delta_in_tokens == 10 * ETH
    # short 50k balances it: fee $25, positive impact capped at 0 by the empty pool
    fill = m.increase_execution(50_000 * USD, False, ETH_5000, ETH_5000, 50_000 * USD, 0, 0, PAIR_IMPACT)
    fee = m.position_fee_usd(50_000 * USD, fill.balance_was_improved, better, worse)
    assert m.usd_to_collateral_amount(fee, USDC_1) == 25 * 10**6 and fill.price_impact_usd == 0
    # closing half the short unbalances it again: fee $25, impact ~ -$6.25, the pool gains 0.00125 ETH
    short = Position(False, 50_000 * USD, 10 * ETH, (25_000 - 25) * 10**6)
    close = m.decrease_execution(short, 25_000 * USD, ETH_5000, ETH_5000, 50_000 * USD, 50_000 * USD, 0, PAIR_IMPACT)
    fee = m.position_fee_usd(25_000 * USD, close.balance_was_improved, better, worse)
    assert m.usd_to_collateral_amount(fee, USDC_1) == 25 * 10**6
    assert abs(close.price_impact_usd + 625 * 10**28) <= 10**17
    assert -close.total_impact_amount == 125 * 10**13


def test_borrowing_fees_match_gmx() -> None:
    # gmx-synthetics test/exchange/BorrowingFees.ts, "borrowing fees vary with time": borrowing factor
    # 1e-7 for longs, exponent 1, a 6M pool with 1000 ETH ($5M) on the long side; a 200k long for 14
    # days pays $967.68, then with a second 200k long for 14 more days $2903.04 in all (the test allows
    # 0.01 for block time) and the second position $1935.36
    fortnight = 14 * 24 * 3600
    pool_long_usd = 1000 * ETH * ETH_5000
    rate_1 = m.borrowing_factor_per_second(200_000 * USD, pool_long_usd, 10**23)
    cumulative_1 = m.next_cumulative_borrowing_factor(0, rate_1, fortnight)
    assert m.borrowing_fee_usd(200_000 * USD, cumulative_1, 0) == 967_680 * 10**27
    rate_2 = m.borrowing_factor_per_second(400_000 * USD, pool_long_usd, 10**23)
    cumulative_2 = m.next_cumulative_borrowing_factor(cumulative_1, rate_2, fortnight)
    assert abs(m.borrowing_fee_usd(200_000 * USD, cumulative_2, 0) - 2_903_043_200 * 10**24) <= 10**28
    assert m.borrowing_fee_usd(200_000 * USD, cumulative_2, cumulative_1) == 1_935_360 * 10**27


def test_liquidation_matches_gmx() -> None:
    # gmx-synthetics test/exchange/LiquidationOrder.ts, "executeLiquidation": a 200k long at $5,000 with
    # 10 WETH as collateral is not liquidatable at $4,200 (PositionShouldNotBeLiquidated) and is at $4,000
    position = Position(True, 200_000 * USD, 40 * ETH, 10 * ETH)
    market = LiquidationMarket(collateral_price_min=4200 * 10**12, long_open_interest=200_000 * USD,
                               short_open_interest=0, impact=ImpactParams(0, 0),
                               position_fee_factor_improved=0, position_fee_factor_not_improved=0,
                               min_collateral_usd=USD, min_collateral_factor=10**28)   # 1 USD, 1%
    assert not m.is_liquidatable(position, market, 4200 * 10**12)
    at_4000 = replace(market, collateral_price_min=4000 * 10**12)
    check = m.liquidation_check(position, at_4000, 4000 * 10**12)
    assert check.liquidatable and check.remaining_collateral_usd == 0


# gmx-synthetics test/guardian/testLiquidation.ts: a 450k SOL short (30,000 SOL at $15, SOL with 9
# decimals) backed by 1 WETH, in a market whose min collateral factor is 1% ("100x is 4.5k Collateral")
SOL_DECIMALS = 9
SOL_SHORT = Position(False, 450_000 * USD, 30_000 * 10**SOL_DECIMALS, ETH)
SOL_MARKET = LiquidationMarket(collateral_price_min=ETH_5000, long_open_interest=0,
                               short_open_interest=450_000 * USD, impact=ImpactParams(0, 0),
                               position_fee_factor_improved=0, position_fee_factor_not_improved=0,
                               min_collateral_usd=USD, min_collateral_factor=10**28)


def _sol(dollars_milli: int) -> int:
    return dollars_milli * 10**27 // 10**SOL_DECIMALS          # $x.xxx per SOL, per smallest unit


def test_short_liquidated_when_the_index_rises_as_in_gmx() -> None:
    # "Liquidate short position because index token price increases": not at $15.016 (-$480 of
    # $5,000), liquidated at $15.017 (-$510 leaves $4,490 < 1% of 450k)
    assert not m.is_liquidatable(SOL_SHORT, SOL_MARKET, _sol(15_016))
    check = m.liquidation_check(SOL_SHORT, SOL_MARKET, _sol(15_017))
    assert check.liquidatable and check.reason == "min collateral for leverage"
    assert check.pnl_usd == -510 * USD
    # and the solved liquidation price lies between the two ($15.01666...: $500 of loss)
    price = m.liquidation_price(SOL_SHORT, SOL_MARKET)
    assert price is not None and _sol(15_016) < price <= _sol(15_017)
    assert price == -(-(450_000 + 500) * USD // (30_000 * 10**SOL_DECIMALS))


def test_short_liquidated_when_the_collateral_falls_as_in_gmx() -> None:
    # same file, "Liquidate short position because collateral depreciates": the WETH collateral at
    # $4,501 still covers 1% of 450k, at $4,499 it does not
    sol_15 = _sol(15_000)
    assert not m.is_liquidatable(SOL_SHORT, replace(SOL_MARKET, collateral_price_min=4501 * 10**12), sol_15)
    assert m.is_liquidatable(SOL_SHORT, replace(SOL_MARKET, collateral_price_min=4499 * 10**12), sol_15)


def test_min_collateral_usd_as_in_gmx() -> None:
    # same file, "liquidate from the minCollateralUsd": a $1 long with 1.5 USDC is liquidated when USDC
    # falls to $0.50 ($0.75 left, under the $1 MIN_COLLATERAL_USD)
    position = Position(True, USD, USD // _sol(15_000), 1_500_000)
    market = replace(SOL_MARKET, collateral_price_min=USDC_1, long_open_interest=USD, short_open_interest=0)
    assert not m.is_liquidatable(position, market, _sol(15_000))
    check = m.liquidation_check(position, replace(market, collateral_price_min=USDC_1 // 2), _sol(15_000))
    assert check.reason == "min collateral"


# --- the liquidation rule as PositionUtils.isPositionLiquidatable states it ---

def _short(collateral_usdc: int = 5_000, size: int = 100_000, pending: int = 0) -> Position:
    return Position(False, size * USD, -(-size * USD // ETH_5000), collateral_usdc * 10**6,
                    pending_impact_amount=pending)


def _usdc_market(**kw: int) -> LiquidationMarket:
    base = dict(collateral_price_min=USDC_1, long_open_interest=1_000_000 * USD, short_open_interest=1_000_000 * USD,
                impact=PAIR_IMPACT, position_fee_factor_improved=4 * 10**26, position_fee_factor_not_improved=6 * 10**26,
                min_collateral_usd=USD, min_collateral_factor=5 * 10**27)
    base.update(kw)
    return LiquidationMarket(**base)     # type: ignore[arg-type]


def test_remaining_collateral_counts_pnl_fees_impact_and_pending() -> None:
    # short 100k at 5000 with $5,000 USDC, pending -0.01 ETH ($50); balanced book of 1M each side:
    # closing worsens it by 100k -> impact -1e-8 x 100k^2 = -$100; close fee 0.06% = $60
    position = _short(pending=-10**16)
    check = m.liquidation_check(position, _usdc_market(), ETH_5000)
    assert check.pnl_usd == 0
    near = 10**16                        # PRBMath's pow: -1e-8 x (1e35)^2 is off by ~2e15 of 1e32
    assert abs(check.price_impact_usd + 150 * USD) < near
    assert check.collateral_cost_usd == 60 * USD
    assert abs(check.remaining_collateral_usd - (5_000 - 150 - 60) * USD) < near
    assert not check.liquidatable


def test_min_collateral_usd_and_factor_both_apply() -> None:
    position = _short(collateral_usdc=600)          # $600 on 100k: 0.6% before costs
    loose = _usdc_market(impact=ImpactParams(0, 0), position_fee_factor_not_improved=0, position_fee_factor_improved=0)
    assert not m.is_liquidatable(position, loose, ETH_5000)
    tight_factor = replace(loose, min_collateral_factor=7 * 10**27)          # 0.7% of 100k = $700
    assert m.liquidation_check(position, tight_factor, ETH_5000).reason == "min collateral for leverage"
    tight_usd = replace(loose, min_collateral_usd=601 * USD)
    assert m.liquidation_check(position, tight_usd, ETH_5000).reason == "min collateral"


def test_negative_impact_in_the_rule_is_capped_for_liquidations() -> None:
    position = _short(pending=-10 * ETH)             # $50,000 pending: absurd, capped at 1% of size
    capped = _usdc_market(impact=replace(PAIR_IMPACT, max_factor_for_liquidations=10**28))
    assert m.liquidation_check(position, capped, ETH_5000).price_impact_usd == -1_000 * USD


def test_a_positive_impact_is_capped_at_the_max_factor_of_the_size() -> None:
    # a short of 400k against 400k of longs earns +800 (PairMarket.ts); MAX_POSITION_IMPACT_FACTOR
    # positive of 0.1% caps it at $400 of the 400k (MarketUtils.capPositiveImpactUsdByMaxPositionImpact)
    capped = replace(PAIR_IMPACT, max_factor_positive=10**27)
    free = m.increase_execution(400_000 * USD, False, ETH_5000, ETH_5000, 400_000 * USD, 0, 10 * ETH, PAIR_IMPACT)
    fill = m.increase_execution(400_000 * USD, False, ETH_5000, ETH_5000, 400_000 * USD, 0, 10 * ETH, capped)
    assert free.price_impact_usd > 400 * USD and fill.price_impact_usd == 400 * USD


def test_a_shorts_size_in_tokens_rounds_up_and_a_longs_down() -> None:
    # $1,000.000000000000000000000000000001 at $5,000 per ETH is not a whole number of wei
    size = 1_000 * USD + 1
    short = m.increase_execution(size, False, ETH_5000, ETH_5000, 0, 0, 0, replace(PAIR_IMPACT, factor_negative=0))
    long = m.increase_execution(size, True, ETH_5000, ETH_5000, 0, 0, 0, replace(PAIR_IMPACT, factor_negative=0))
    assert short.size_delta_in_tokens == size // ETH_5000 + 1 and long.size_delta_in_tokens == size // ETH_5000


def test_a_decreases_negative_impact_beyond_the_cap_is_left_claimable() -> None:
    # closing 100k of a short with $5,000 of pending negative impact, MAX_POSITION_IMPACT_FACTOR
    # negative 0.5%: $500 is realised now, the rest claimable later (DecreasePositionCollateralUtils)
    capped = replace(PAIR_IMPACT, factor_negative=0, factor_positive=0, max_factor_negative=5 * 10**27)
    position = _short(pending=-ETH)
    dec = m.decrease_execution(position, 100_000 * USD, ETH_5000, ETH_5000, 0, 100_000 * USD, 0, capped)
    assert dec.proportional_pending_impact_usd == -5_000 * USD
    assert dec.total_impact_usd == -500 * USD and dec.price_impact_diff_usd == 4_500 * USD


def test_the_rule_counts_the_borrowing_a_position_owes() -> None:
    # borrowing since the position's last update: size x (the market's cumulative factor - the
    # position's), 0.003 - 0.001 of 100k = $200 (MarketUtils.getBorrowingFees)
    position = replace(_short(), borrowing_factor=10**27)
    market = _usdc_market(cumulative_borrowing_factor=3 * 10**27)
    owed = m.liquidation_check(position, market, ETH_5000)
    settled = m.liquidation_check(replace(position, borrowing_factor=3 * 10**27), market, ETH_5000)
    assert owed.collateral_cost_usd - settled.collateral_cost_usd == 200 * USD
    assert settled.remaining_collateral_usd - owed.remaining_collateral_usd == 200 * USD


def test_impact_a_close_would_earn_never_helps_a_position_survive() -> None:
    # shorts outweigh longs: closing this short improves the balance and would be paid impact, but
    # the liquidation rule counts impact only against the position (never above 0)
    position = _short()
    market = _usdc_market(long_open_interest=0, short_open_interest=1_000_000 * USD)
    earned, _ = m.price_impact_usd(0, 1_000_000 * USD, -100_000 * USD, False, PAIR_IMPACT)
    impact, improved = m.close_price_impact_usd(position, market, ETH_5000, ETH_5000)
    assert earned > 0 and improved and impact == 0
    check = m.liquidation_check(position, market, ETH_5000)
    assert check.price_impact_usd == 0
    assert check.remaining_collateral_usd == 5_000 * USD - check.collateral_cost_usd


# --- properties ---

prices = st.integers(min_value=1000 * 10**12, max_value=20_000 * 10**12)


@st.composite
def positions(draw: st.DrawFn) -> Position:
    is_long = draw(st.booleans())
    size = draw(st.integers(min_value=1_000, max_value=5_000_000)) * USD
    entry = draw(prices)
    tokens = size // entry
    collateral = draw(st.integers(min_value=size // 100 // USDC_1, max_value=size // USDC_1))   # 1x..100x
    pending = draw(st.integers(min_value=-tokens // 100, max_value=tokens // 200))
    return Position(is_long, size, tokens, collateral, pending_impact_amount=pending)


@st.composite
def markets(draw: st.DrawFn) -> LiquidationMarket:
    return _usdc_market(
        long_open_interest=draw(st.integers(min_value=0, max_value=50_000_000)) * USD,
        short_open_interest=draw(st.integers(min_value=0, max_value=50_000_000)) * USD,
        impact=ImpactParams(draw(st.integers(0, 10**22)), draw(st.integers(0, 10**22)),
                            max_factor_for_liquidations=draw(st.integers(0, 10**28))),
        min_collateral_usd=draw(st.integers(0, 10)) * USD,
        min_collateral_factor=draw(st.integers(10**27, 5 * 10**28)))


def _holding(market: LiquidationMarket, position: Position) -> LiquidationMarket:
    """The market's open interest includes the position (closing it cannot make it negative)."""
    side = "long_open_interest" if position.is_long else "short_open_interest"
    return replace(market, **{side: getattr(market, side) + position.size_in_usd})


@PROPS
@given(position=positions(), market=markets())
def test_liquidation_price_is_where_the_rule_flips(position: Position, market: LiquidationMarket) -> None:
    market = _holding(market, position)
    price = m.liquidation_price(position, market)
    if price is None:
        # only a long can be unliquidatable at every positive price (or a position liquidatable at all)
        assert position.is_long or m.is_liquidatable(position, market, 1)
        return
    assert m.is_liquidatable(position, market, price)
    beyond_safe = price + 1 if position.is_long else price - 1
    if beyond_safe > 0:
        assert not m.is_liquidatable(position, market, beyond_safe)


@PROPS
@given(position=positions(), p1=prices, p2=prices)
def test_short_pnl_falls_as_price_rises_and_long_pnl_rises(position: Position, p1: int, p2: int) -> None:
    lo, hi = sorted((p1, p2))
    pnl_lo, _ = m.position_pnl_usd(position, lo)
    pnl_hi, _ = m.position_pnl_usd(position, hi)
    assert (pnl_hi >= pnl_lo) if position.is_long else (pnl_hi <= pnl_lo)


@PROPS
@given(size=st.integers(0, 10**40), improved=st.booleans(), f1=st.integers(0, 10**28), f2=st.integers(0, 10**28),
       cum=st.integers(0, 10**30), pos_factor=st.integers(0, 10**30), per_size=st.integers(0, 10**50),
       position=positions(), market=markets(), price=prices)
def test_fees_are_never_negative(size: int, improved: bool, f1: int, f2: int, cum: int, pos_factor: int,
                                 per_size: int, position: Position, market: LiquidationMarket, price: int) -> None:
    assert m.position_fee_usd(size, improved, f1, f2) >= 0
    lo, hi = sorted((cum, pos_factor))
    assert m.borrowing_fee_usd(size, hi, lo) >= 0
    assert m.funding_fee_amount(per_size, per_size // 2, size) >= 0
    assert m.liquidation_check(position, _holding(market, position), price).collateral_cost_usd >= 0


@PROPS
@given(long_oi=st.integers(0, 10**7), short_oi=st.integers(0, 10**7), delta=st.integers(1, 10**7),
       is_long=st.booleans())
def test_impact_sign_follows_the_balance(long_oi: int, short_oi: int, delta: int, is_long: bool) -> None:
    impact, improved = m.price_impact_usd(long_oi * USD, short_oi * USD, delta * USD, is_long, PAIR_IMPACT)
    same_side = (long_oi <= short_oi) == ((long_oi + (delta if is_long else 0)) <= (short_oi + (0 if is_long else delta)))
    if same_side:
        assert (impact >= 0) if improved else (impact <= 0)
    # opening and closing straight back never earns: the positive factor never exceeds the negative one
    back, _ = m.price_impact_usd(long_oi * USD + (delta * USD if is_long else 0),
                                 short_oi * USD + (0 if is_long else delta * USD), -delta * USD, is_long, PAIR_IMPACT)
    assert impact + back <= 10**20        # PRBMath's pow is exact to ~1e-17 relative


@PROPS
@given(x=st.integers(1, 10**9), exponent=st.sampled_from([1, 2, 3]))
def test_exponent_factor_is_close_to_the_exact_power(x: int, exponent: int) -> None:
    exact = (x * USD) ** exponent // USD ** (exponent - 1)
    got = m.apply_exponent_factor(x * USD, exponent * USD)
    assert abs(got - exact) <= exact // 10**15 + 1


def test_bad_input_names_the_field() -> None:
    with pytest.raises(ValueError, match="size_delta_usd"):
        m.increase_execution(0, True, ETH_5000, ETH_5000, 0, 0, 0, PAIR_IMPACT)
    with pytest.raises(ValueError, match="usd_delta"):
        m.price_impact_usd(0, 0, -USD, True, PAIR_IMPACT)
    with pytest.raises(ValueError, match="collateral_price_min"):
        _usdc_market(collateral_price_min=0)
    with pytest.raises(ValueError, match="cumulative_borrowing_factor"):
        m.borrowing_fee_usd(USD, 1, 2)
    with pytest.raises(ValueError, match="size_in_usd"):
        Position(True, -1, 1, 1)


@PROPS
@given(paying_oi=st.integers(1, 10**8), receiving_oi=st.integers(1, 10**8),
       factor=st.integers(0, 10**22), seconds=st.integers(0, 30 * 86400))
def test_funding_paid_by_one_side_is_what_the_other_receives(paying_oi: int, receiving_oi: int, factor: int,
                                                             seconds: int) -> None:
    paid = m.funding_fee_usd_for_period(paying_oi * USD, factor, seconds, True, paying_oi * USD, receiving_oi * USD)
    received = m.funding_fee_usd_for_period(receiving_oi * USD, factor, seconds, False, paying_oi * USD,
                                            receiving_oi * USD)
    assert paid <= 0 <= received
    assert received <= -paid <= received + receiving_oi * USD // 10**20 + 1    # rounding only, never more out than in
    assert m.funding_usd_for_period(paying_oi * USD, factor, seconds) == -paid


# --- the policy's measure on GMX (issue 10): distance to liquidation, collateral at its price ---

DIST = st.integers(0, 9 * 10**17)           # up to 90% of the price, E18


@settings(max_examples=60, deadline=None)
@given(position=positions(), market=markets(), distance=DIST)
def test_collateral_for_distance_puts_liquidation_that_far(position: Position, market: LiquidationMarket,
                                                          distance: int) -> None:
    """GMX's own rule, after: with ``collateral_for_distance`` the position survives the price moving
    ``distance`` against it (its liquidation distance is at least that); with one unit less it does
    not (at most that): the least such collateral."""
    market = _holding(market, position)
    price = ETH_5000
    amount = m.collateral_for_distance(position, market, price, distance)
    moved = m._price_moved_against(position, price, distance)
    held = replace(position, collateral_amount=amount)
    assert not m.is_liquidatable(held, market, moved)
    got = m.liquidation_distance(held, market, price)
    assert got is None or got >= distance
    if amount > 0:
        less = replace(position, collateral_amount=amount - 1)
        assert m.is_liquidatable(less, market, moved)
        assert (m.liquidation_distance(less, market, price) or 0) <= distance


def test_collateral_for_distance_on_the_sol_short_of_gmx() -> None:
    """The 450k SOL short of gmx-synthetics' testLiquidation.ts is liquidated $500 of loss from $5,000
    of WETH (1% min collateral factor): 1 WETH puts liquidation at $15.01666, 0.111% away; the
    collateral for 10% away covers the 45k loss of a 10% rise plus the 4.5k floor: 9.9 WETH."""
    sol_15 = _sol(15_000)
    assert m.liquidation_distance(SOL_SHORT, SOL_MARKET, sol_15) == 1_111_111_111_111_111
    amount = m.collateral_for_distance(SOL_SHORT, SOL_MARKET, sol_15, 10**17)
    assert amount == 99 * ETH // 10
    assert m.liquidation_distance(replace(SOL_SHORT, collateral_amount=amount), SOL_MARKET, sol_15) == 10**17


def test_distance_at_leverage_on_gmx() -> None:
    """10x on the 450k SOL short is 45k of collateral (9 WETH): 9% from liquidation (45k less the 4.5k
    floor is 40.5k of loss, 9% of 450k); 100x (4.5k) sits on the 1% floor: 0."""
    sol_15 = _sol(15_000)
    assert m.distance_at_leverage(SOL_SHORT, SOL_MARKET, sol_15, 10 * ETH) == 9 * 10**16
    assert m.distance_at_leverage(SOL_SHORT, SOL_MARKET, sol_15, 100 * ETH) == 0
    with pytest.raises(ValueError, match="leverage"):
        m.distance_at_leverage(SOL_SHORT, SOL_MARKET, sol_15, 0)


@PROPS
@given(amount=st.integers(0, 10**30), price=st.integers(1, 10**24), decimals=st.sampled_from([6, 8, 18]))
def test_collateral_valued_at_its_price(amount: int, price: int, decimals: int) -> None:
    """A token worth ``price`` (E18 USD) a whole unit: 2 WETH at 2,000 USD is 4,000 USD, and the
    amount for a value rounds down, or up for a deposit that must cover it."""
    usd = m.collateral_usd_e18(amount, price, decimals)
    assert m.collateral_amount_e18(usd, price, decimals) <= amount
    up = m.collateral_amount_e18(usd, price, decimals, round_up=True)
    assert m.collateral_usd_e18(up, price, decimals) >= usd and up <= amount
    assert m.collateral_usd_e18(2 * ETH, 2_000 * ETH, 18) == 4_000 * ETH
    assert m.collateral_amount_e18(15_000 * ETH, 2_000 * ETH, 18, round_up=True) == 15 * ETH // 2
