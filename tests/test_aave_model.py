"""The Aave v3 borrow-and-sell market model (issue 12), pure: health factor, liquidation price,
largest withdrawal, carry and the reserve's refusals, and the policy's refusal of a long on it.
The same model is checked against the real Aave v3 on anvil in ``test_aave_model_chain.py``."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hedger.core.model import INFINITE, model_for
from hedger.core.types import DecisionKind, PolicyParams, RefusalKind
from hedger.decide import policy
from hedger.protocols.aave_v3.model import AaveAccountState, AaveMarketState, AaveModel
from tests.snapshots import eth, frac, make_snapshot, usd, usdc

RAY = 10**27
P = usd(3000)


def market(**kw: object) -> AaveMarketState:
    base = dict(address="0x" + "aa" * 20, price=P, price_invalid=False, collateral_decimals=6, two_step=False,
                asset_decimals=18, collateral_price=usd(1), liquidation_threshold_bps=8000, ltv_bps=7700,
                borrow_rate_ray=3 * RAY // 100, supply_rate_ray=4 * RAY // 100, asset_available=eth(1000),
                borrow_cap_room=None, supply_cap_room=None, collateral_available=usdc(10_000_000))
    base.update(kw)
    return AaveMarketState(**base)   # type: ignore[arg-type]


def account(supplied: int, debt: int, **kw: object) -> AaveAccountState:
    base = dict(address="0x" + "bb" * 20, size=-debt, margin=0, accessible_margin=0, liquidation_price=0,
                accrued_funding=0, pnl=0, orders=(), collateral_wallet=0, collateral_allowance=0,
                supplied=supplied, debt=debt)
    base.update(kw)
    return AaveAccountState(**base)   # type: ignore[arg-type]


def model(supplied: int = usdc(16_000), debt: int = eth(2), **kw: object) -> AaveModel:
    return AaveModel(market=market(**kw), account=account(supplied, debt))


def test_health_factor_liquidation_price_and_distance_by_aaves_rule() -> None:
    m = model()                       # 16,000 USDC against 2 WETH at 3,000: HF = 16,000 x 0.8 / 6,000
    pt = m.after(0, 0)
    assert m.health_after(pt) == 16_000 * 8000 * 10**18 // (10_000 * 6_000)
    assert pt.size == -eth(2) and pt.notional == usd(6000) and pt.margin == usd(10_000)
    assert pt.liquidation_price == usd(16_000) * 8 // 10 // 2        # 6,400: where HF reaches 1
    assert pt.liq_distance == (usd(6400) - P) * 10**18 // P            # 113%: HF - 1
    assert m.health_after(pt) - 10**18 == pt.liq_distance


@given(supplied=st.integers(usdc(1), usdc(10**8)), debt=st.integers(1, eth(10**4)),
       delta=st.integers(-eth(100), eth(100)), move=st.integers(-usdc(10**6), usdc(10**6)))
def test_distance_is_the_health_factor_less_one_after_any_action(supplied: int, debt: int, delta: int,
                                                                    move: int) -> None:
    m = model(supplied, debt)
    pt = m.after(delta, move)
    if -pt.size <= 0 or pt.margin + pt.notional <= 0:
        return
    hf = m.health_after(pt)
    # the two are computed by two roundings of one rule: equal to within the E18 rounding of each
    assert abs((hf - 10**18) - pt.liq_distance) <= max(10, hf // 10**15)


def test_a_sale_adds_its_proceeds_net_of_the_pool_fee_and_a_buy_back_pays_from_the_collateral() -> None:
    m = model(usdc(16_000), eth(2), swap_fee_ppm=500)
    sell = m.after(-eth(1), 0)
    assert sell.fill_price == P * 9995 // 10_000
    assert sell.margin + sell.notional == usd(16_000) + P * 9995 // 10_000      # 2,998.5 more collateral
    assert sell.fee == usd(3000) * 5 // 10_000
    buy = m.after(eth(1), 0)
    assert buy.fill_price == -(-P * 1_000_000 // 999_500)
    assert buy.margin + buy.notional == usd(16_000) - buy.fill_price            # paid from the collateral
    assert buy.size == -eth(1)


@given(supplied=st.integers(usdc(100), usdc(10**8)), debt=st.integers(eth(1) // 1000, eth(10**4)))
def test_largest_withdrawal_keeps_health_at_one_and_a_little_more_would_not(supplied: int, debt: int) -> None:
    m = model(supplied, debt, collateral_available=usdc(10**12))    # the reserve holds plenty
    w = m.max_withdrawal()
    if w == 0:
        assert m.health_after(m.after(0, 0)) <= 10**18 + 10**13
        return
    assert m.health_after(m.after(0, -w)) >= 10**18
    # and it is the largest, to within the rounding of the 6-decimal token (a millionth of it)
    assert m.health_after(m.after(0, -(w + max(10, w // 10**6)))) < 10**18


def test_withdrawal_is_bounded_by_what_the_reserve_holds_and_free_without_debt() -> None:
    assert model(usdc(16_000), 0).max_withdrawal() == usdc(16_000)
    assert model(usdc(16_000), 0, collateral_available=usdc(500)).max_withdrawal() == usdc(500)


def test_carry_is_debt_times_borrow_rate_less_collateral_times_supply_rate() -> None:
    # 6,000 of debt at 3%, 16,000 of collateral at 4%: earns 640 - 180 = 460 a year, 1.26 a day
    m = model()
    assert abs(m.carry_per_day(-eth(2)) + usd(460) // 365) <= usd(1) // 100
    expensive = model(borrow_rate_ray=20 * RAY // 100, supply_rate_ray=RAY // 100)
    assert expensive.carry_rate_per_day(-eth(2)) == (frac("0.2") * 6000 - frac("0.01") * 16_000) // 6000 // 365
    assert expensive.carry_per_day(-eth(2)) > 0


def test_the_debts_own_interest_is_drift_and_a_third_partys_change_is_not() -> None:
    """A debt that grew by no order of ours is interest up to twice the current rate's accrual (the
    rate moves with utilisation); more than that is someone else's action, noted by the cycle."""
    m = model(debt=eth(10))                                   # 10 WETH at 3% a year
    hour = eth(10) * 3 // 100 * 3600 // (365 * 86400)          # one hour's interest: 0.0000342 WETH
    assert hour < m.position_drift(3600) <= 2 * hour + 2
    assert m.position_drift(0) == 1 and m.position_drift(-60) == 1


@pytest.mark.parametrize("kw, words", [
    ({"asset_paused": True}, "paused"),
    ({"collateral_paused": True}, "paused"),
    ({"asset_frozen": True}, "frozen"),
    ({"borrowing_enabled": False}, "disabled"),
    ({"asset_available": eth(1) // 2}, "can lend"),
    ({"borrow_cap_room": eth(1) // 2}, "borrow cap"),
])
def test_growing_the_debt_is_refused_with_the_reserves_reason(kw: dict[str, object], words: str) -> None:
    m = model(**kw)
    assert words in (m.opening_refusal(m.after(-eth(1), 0)) or "")
    assert m.opening_refusal(m.after(eth(1), 0)) is None          # reducing is never refused for these
    assert model().opening_refusal(model().after(-eth(1), 0)) is None


def test_a_borrow_past_the_ltv_is_refused_until_collateral_comes_first() -> None:
    m = model(usdc(8_000), eth(2))          # 6,000 debt on 8,000: 75% of the 77% LTV
    pt = m.after(-eth(1), 0)                 # 9,000 debt on 10,998.5: 81.8%
    assert "LTV" in (m.opening_refusal(pt) or "")
    assert m.opening_refusal(m.after(-eth(1), usdc(4_000))) is None


def test_without_debt_there_is_no_liquidation() -> None:
    pt = model(usdc(16_000), 0).after(0, 0)
    assert (pt.liq_distance, pt.liquidation_price, pt.leverage) == (INFINITE, 0, 0)


def test_policy_refuses_a_long_hedge_on_aave_by_name_and_sends_nothing() -> None:
    s = make_snapshot(extra=-eth(5), wallet=usdc(50_000))
    s = replace(s, venue="aave-v3", market=market(), account=account(usdc(0), 0, collateral_wallet=usdc(50_000)))
    assert isinstance(model_for(s), AaveModel)
    d = policy.decide(s, PolicyParams())
    assert (d.kind, d.refusal, d.code) == (DecisionKind.REFUSE, RefusalKind.ACCOUNT, "long_not_offered")
    assert "aave-v3" in d.reason


@given(debt=st.integers(eth(1) // 100, eth(10**4)), distance=st.integers(frac("0.01"), frac(3)))
def test_margin_for_distance_puts_liquidation_that_far(debt: int, distance: int) -> None:
    m = model(0, debt)
    margin = m.margin_for_distance(-debt, distance)
    # that equity held as collateral: collateral = margin + the debt's value
    held = AaveModel(market=m.market, account=account(m.collateral_native(margin + debt * P // 10**18, round_up=True),
                                                      debt))
    got = held.after(0, 0).liq_distance
    assert distance <= got <= distance + frac("0.000001")


@pytest.mark.parametrize("lev, dist", [(2, "0.2"), (3, "0.0666666666666666670"), (1, "0.6")])
def test_distance_at_leverage_is_the_health_factor_less_one(lev: int, dist: str) -> None:
    # LT 80%: at 2x, collateral 1.5 x the debt, HF 1.2
    assert model().distance_at_leverage(-eth(2), frac(lev)) == frac(dist)
    assert model().distance_at_leverage(0, frac(lev)) == INFINITE
