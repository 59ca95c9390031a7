"""Mutation check of the decision core and the venues' models: hand-written plausible bugs, applied
one at a time to a temporary copy of the project, each run against the tests that must catch it
(the fast pure tests; for the Aave v3 model also its check against the real Aave on anvil).

    .venv/bin/python scripts/mutants.py            # all mutants, prints killed/survived and the score
    .venv/bin/python scripts/mutants.py -k sdiv    # only those whose name contains "sdiv"
    .venv/bin/python scripts/mutants.py --list     # the list, nothing run

A mutant is killed when the tests fail (or time out); it survives when they pass. The tests run
with hypothesis's derandomized profile (CI=1), so a run repeats. Not part of `make test` (a few
minutes). Exit code 0 when every mutant is killed, 1 otherwise, 2 when the unmutated copy fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the fast, pure tests of the decision core and the reference model (their chain tests are left out)
TESTS = ["tests/test_planner.py", "tests/test_guards.py", "tests/test_fixedpoint.py", "tests/test_policy_risk.py",
         "tests/test_policy_funding.py", "tests/test_policy.py", "tests/test_policy_model.py",
         "tests/test_model_reference.py"]
DESELECT = ["tests/test_fixedpoint.py::test_market_views_equal_the_mirrors",
            "tests/test_model_reference.py::test_deposit_trade_and_cross_zero_as_the_market_computes_them",
            "tests/test_model_reference.py::test_largest_withdrawal_is_what_the_market_lets_go"]


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str           # under hedger/
    old: str            # exact text, found exactly once (or ``count`` times)
    new: str
    why: str
    count: int = 1      # occurrences replaced (all of them must exist)
    tests: tuple[str, ...] = ()   # the tests that must catch it (default: TESTS)


M = Mutant
REF = "protocols/reference/model.py"
AAVE = "protocols/aave_v3/model.py"
# the Aave model's own pure tests, the policy on it, and the model against the real Aave v3 and
# Uniswap v3 on anvil (npm artifacts: a few seconds)
AAVE_TESTS = ("tests/test_aave_model.py", "tests/test_aave_venue_policy.py", "tests/test_aave_model_chain.py")


def A(name: str, old: str, new: str, why: str, count: int = 1) -> Mutant:
    return Mutant(name, AAVE, old, new, why, count, AAVE_TESTS)


GMX = "protocols/gmx_v2/model.py"
# GMX v2's position math against the cases of gmx-synthetics' own tests, and the policy's model on it
GMX_TESTS = ("tests/test_gmx_model.py", "tests/test_gmx_market_model.py")


def G(name: str, old: str, new: str, why: str, count: int = 1) -> Mutant:
    return Mutant(name, GMX, old, new, why, count, GMX_TESTS)


# the simulator's figures (issue 13: metrics that can fail): its pure tests and its runs on anvil
SIM_TESTS = ("tests/test_simreport.py", "tests/test_sim_metrics.py", "tests/test_simcli.py")


def S(name: str, file: str, old: str, new: str, why: str, count: int = 1) -> Mutant:
    return Mutant(name, file, old, new, why, count, SIM_TESTS)


MM = "cycle/multimarket.py"
MM_TESTS = ("tests/test_multimarket.py",)     # the allocation pure, then whole cycles on anvil


MUTANTS: list[Mutant] = [
    # ---- protocols/reference/model.py (the reference market's formulas, behind the venue seam)
    M("market_math_at_oracle", REF, "price = s.market.price if s.market.price > 0 else s.oracle.price_e18",
      "price = s.oracle.price_e18", "fill, margin, leverage and liquidation valued at the oracle's price"),
    M("fill_skew_ignored", REF, "leg_fill = market_fill_price(price, skew, leg, m.skew_scale)",
      "leg_fill = market_fill_price(price, 0, leg, m.skew_scale)", "the fill ignores the skew already there"),
    M("second_leg_same_skew", REF, "            skew += leg\n", "",
      "the second leg of a flip filled and charged at the skew before the first"),
    M("keeper_fee_omitted", REF, "fee += m.order_keeper_fee", "fee += 0",
      "the two-step keeper fee not counted"),
    M("premium_sign", REF, "premium_cost += sdiv(leg * (leg_fill - price), UNIT)",
      "premium_cost -= sdiv(leg * (leg_fill - price), UNIT)", "the skew premium counted as a gain"),
    M("model_collateral_6_decimals", "core/model.py",
      "v = abs(native) * self.collateral_price // 10 ** self.collateral_decimals",
      "v = abs(native) * self.collateral_price // 10 ** 6", "the models value collateral as if it had 6 decimals"),
    M("liquidation_premium_dropped", REF, "return liq_margin + liq_premium", "return liq_margin",
      "the liquidation distance forgets the skew premium"),
    M("funding_side_swapped", REF,
      "return -self.market.funding_rate if size < 0 else self.market.funding_rate",
      "return self.market.funding_rate if size < 0 else -self.market.funding_rate",
      "funding paid by the hedge read the wrong way round"),
    M("opening_liquidatable_allowed", REF, "return pt.margin >= required and pt.liq_distance > 0",
      "return pt.margin >= required", "a growing position the market would liquidate at once"),
    M("opening_cushion_dropped", REF, "* OPENING_CUSHION_PCT // 100", "",
      "the opening check without its cushion for fill vs mark price"),
    M("min_margin_ignored", REF, "Minimums(collateral=self.market.min_initial_margin, order=0)",
      "Minimums(collateral=0, order=0)", "the market's minimum initial margin ignored"),
    # ---- policy.py
    M("leverage_before_at_oracle", "decide/policy.py", "lev_before = before.leverage",
      "lev_before = leverage(a.size, price, a.margin)", "leverage before mixes the market's margin with the oracle"),
    M("divergence_guard_off", "decide/policy.py", "restricted = _price_doubt(s, p)", "restricted = None",
      "the price-divergence guard disabled"),
    M("divergence_limit_x100", "decide/policy.py", "if div > p.max_price_divergence:",
      "if div > p.max_price_divergence * 100:", "the divergence limit read as a percentage"),
    M("collateral_6_decimals", "core/model.py", "num, den = usd * 10 ** self.collateral_decimals, self.collateral_price",
      "num, den = usd * 10 ** 6, self.collateral_price", "deposits and withdrawals sized as if the collateral had 6 decimals"),
    M("target_sign", "decide/policy.py", "target = -sdiv(s.exposure.total * p.hedge_ratio, UNIT)",
      "target = sdiv(s.exposure.total * p.hedge_ratio, UNIT)", "the hedge on the same side as the exposure"),
    M("target_floors", "decide/policy.py", "target = -sdiv(s.exposure.total * p.hedge_ratio, UNIT)",
      "target = -(s.exposure.total * p.hedge_ratio // UNIT)", "the target floored (wrong for negative exposure)"),
    M("band_exclusive", "decide/policy.py", "elif abs(error) <= band_abs:", "elif abs(error) < band_abs:",
      "the band's edge outside the band"),
    M("cooldown_inclusive", "decide/policy.py", "now - s.last_rebalance_at < p.cooldown_s",
      "now - s.last_rebalance_at <= p.cooldown_s", "the cooldown one second too long"),
    M("cooldown_three_bands", "decide/policy.py", "cooling and abs(error) <= 2 * band_abs",
      "cooling and abs(error) <= 3 * band_abs", "the cooldown override at three bands"),
    M("cap_doubled", "decide/policy.py", "if abs(delta) > cap:", "if abs(delta) > 2 * cap:",
      "trades up to twice the per-cycle cap"),
    M("min_trade_halved", "decide/policy.py", "elif err_usd < p.min_trade_usd:", "elif err_usd < p.min_trade_usd // 2:",
      "the minimum trade halved"),
    M("pending_blocks_top_up", "decide/policy.py", "    if not needy:\n", "    if True:\n",
      "a pending order blocks every top-up (issue 9, item 1)"),
    M("pending_sized_before_only", "decide/policy.py",
      "want = max(_margin_target(mdl, p, x.size) - x.margin for x in (before, filled))",
      "want = max(_margin_target(mdl, p, x.size) - x.margin for x in (before,))",
      "the pending top-up sized for the position before the fill only"),
    M("expiry_off_by_one", "core/types.py", "(self.expires_at != 0 and now > self.expires_at)",
      "(self.expires_at != 0 and now >= self.expires_at)", "an order still fillable at its expiry cancelled"),
    M("withdraw_in_closing_plan", "decide/policy.py", "        if pt.size == 0 and delta != 0:\n",
      "        if False:\n", "the closing plan withdraws at the expected fill (issue 9, item 5)"),
    M("accessible_cap_dropped", "decide/policy.py", "excess_native = min(excess_native, mdl.max_withdrawal())",
      "excess_native = excess_native",
      "a flat account withdraws more than the market allows"),
    M("min_collateral_in_native", "decide/policy.py", "mdl.collateral_usd(excess_native) >= p.min_collateral_usd",
      "excess_native >= p.min_collateral_usd", "the minimum collateral move compared in native units"),
    M("deposit_rounded_down", "decide/policy.py",
      "deposit = max(0, min(mdl.collateral_native(max(want, 0), round_up=True), wallet))",
      "deposit = max(0, min(mdl.collateral_native(max(want, 0), round_up=False), wallet))", "the top-up rounded down"),
    M("deposit_beyond_wallet", "decide/policy.py",
      "deposit = max(0, min(mdl.collateral_native(max(want, 0), round_up=True), wallet))",
      "deposit = max(0, mdl.collateral_native(max(want, 0), round_up=True))", "a top-up larger than the wallet"),
    M("deposit_always_risk_reducing", "decide/policy.py",
      "deposit_risk_reducing=deposit > 0 and _needs_top_up(mdl, p, before),",
      "deposit_risk_reducing=deposit > 0,", "collateral for a bigger short sent under the emergency fee ceiling"),
    M("liquidation_buffer_ignored", "decide/policy.py",
      "floor = max(hard, p.liquidation_buffer)", "floor = hard",
      "the liquidation buffer never triggers a top-up"),
    M("no_cushion", "decide/policy.py", "max_leverage=p.max_leverage * 99 // 100", "max_leverage=p.max_leverage",
      "searches aim at the maximum leverage itself"),
    M("carry_ignored", "decide/policy.py", "annual = mdl.carry_rate_per_day(target) * 365", "annual = 0",
      "the funding-aware range never applies"),
    M("two_step_flip_in_one_order", "decide/policy.py",
      "if closing and opening and mdl.trades_are_orders and mdl.orders_in_flight < 2:", "if False:",
      "a flip on a two-step market as one order"),
    M("daily_limit_on_whole_trade", "decide/policy.py", "over = s.daily.blocks(-(-abs(opening) * price // UNIT))",
      "over = s.daily.blocks(-(-abs(delta) * price // UNIT))", "the daily limit charged for the closing leg too"),
    M("old_growing_rule", "decide/policy.py", "growing = opening != 0",
      "growing = delta != 0 and abs(a.size + delta) > abs(a.size)",
      "a sign flip counted as risk-reducing (issue 9, item 4)"),
    M("two_step_withdraw_with_trade", "decide/policy.py", "not (mdl.trades_are_orders and delta != 0) and cs.can_move",
      "cs.can_move", "a withdrawal in the same plan as a two-step order"),
    # ---- planner.py
    M("planner_sign_cross_dropped", "decide/planner.py", "    if abs(delta) <= abs(size):\n        return delta, 0",
      "    if True:\n        return delta, 0", "the sign-cross condition dropped from the risk-reducing flag"),
    M("bound_direction", "decide/planner.py", "    if size_delta > 0:\n        return expected_fill",
      "    if size_delta < 0:\n        return expected_fill", "buy and sell bounds swapped"),
    M("sell_bound_rounds_down", "decide/planner.py", "return -(-expected_fill * (UNIT - max_slippage) // UNIT)",
      "return expected_fill * (UNIT - max_slippage) // UNIT", "the sell bound loosened by a wei"),
    M("no_risk_ordering", "decide/planner.py", "actions.sort(key=lambda x: 0 if x.risk_reducing else 1)", "pass",
      "risk-reducing actions not sent first"),
    M("open_leg_bound_from_close", "decide/planner.py", "bound = price_bound(fills[1], opening, p.max_slippage)",
      "bound = price_bound(fills[0], opening, p.max_slippage)", "the opening leg bounded from the close's fill"),
    M("deposit_flag_ignored", "decide/planner.py", "rr = decision.deposit_risk_reducing", "rr = True",
      "every deposit tagged risk-reducing"),
    # ---- guards.py
    M("feed_problem_silent", "decide/guards.py", "return None if found is None else found[1]", "return None",
      "feed_problem returns nothing for the second feed"),
    M("stale_doubled", "decide/guards.py", "if age > max_age:", "if age > 2 * max_age:", "twice the max age accepted"),
    M("future_round_accepted", "decide/guards.py", "if o.updated_at > now:", "if False:",
      "a round dated in the future accepted"),
    M("sequencer_grace_ignored", "decide/guards.py", "if up_for < p.sequencer_grace_s:", "if up_for < 0:",
      "no grace period after the sequencer comes back"),
    M("market_invalid_ignored", "decide/guards.py", "if s.market.price_invalid:", "if False:",
      "the market's own invalid price ignored"),
    M("block_lag_reversed", "decide/guards.py", "s.chain.wall_clock - now > p.max_block_lag_s",
      "now - s.chain.wall_clock > p.max_block_lag_s", "the block lag measured the wrong way"),
    # ---- fixedpoint.py
    M("sdiv_floors", "core/fixedpoint.py", "    return q if (a >= 0) == (b > 0) else -q", "    return a // b",
      "signed division floors (Python) instead of truncating (EVM)"),
    M("fill_price_floors", "core/fixedpoint.py", "pd_before = sdiv(skew * UNIT, skew_scale)",
      "pd_before = skew * UNIT // skew_scale", "the fill price's skew term floored"),
    M("fee_parts_swapped", "core/fixedpoint.py",
      "return maker_part * maker_fee // UNIT + (notional - maker_part) * taker_fee // UNIT",
      "return maker_part * taker_fee // UNIT + (notional - maker_part) * maker_fee // UNIT",
      "maker and taker fees swapped on a trade through the skew"),
    M("flip_all_maker", "core/fixedpoint.py", "maker_part = abs(skew) * fill // UNIT",
      "maker_part = abs(size_delta) * fill // UNIT", "a trade through the skew charged the maker rate throughout"),
    M("velocity_unclamped", "core/fixedpoint.py", "    pskew = max(min(pskew, UNIT), -UNIT)\n", "",
      "the funding velocity not clamped at the skew scale"),
    M("funding_sign", "core/fixedpoint.py", "return sdiv(-sdiv((rate_last + rate_now)", "return sdiv(sdiv((rate_last + rate_now)",
      "funding accrued the wrong way"),
    M("funding_rate_floors", "core/fixedpoint.py", "return rate_last + sdiv(velocity * elapsed, DAY)",
      "return rate_last + velocity * elapsed // DAY", "the funding rate's drift floored"),
    M("from_e18_up_floors", "core/fixedpoint.py", "return -(-value // 10 ** (18 - decimals))",
      "return value // 10 ** (18 - decimals)", "rounding up that rounds down"),
    M("mul_div_up_floors", "core/fixedpoint.py", "return -(-(a * b) // c)", "return a * b // c",
      "mul_div_up that rounds down"),
    # ---- protocols/aave_v3/model.py (Aave v3's health factor, the borrow-sell-supply, the reserve's refusals)
    A("aave_hf_without_threshold",
      "return collateral_usd * self.market.liquidation_threshold_bps * UNIT // (BPS * debt_usd)",
      "return collateral_usd * UNIT // debt_usd", "the health factor without the liquidation threshold"),
    A("aave_liq_price_without_threshold",
      "liq_price = collateral * self.market.liquidation_threshold_bps * UNIT // (BPS * debt)",
      "liq_price = collateral * UNIT // debt", "the liquidation price as if the threshold were 100%"),
    A("aave_sale_fee_ignored", "fill = p * (PPM - f) // PPM", "fill = p", "a sale priced without the pool's fee"),
    A("aave_buyback_fee_ignored", "fill = -(-p * PPM // (PPM - f))", "fill = p",
      "a buy-back priced without the pool's fee"),
    A("aave_proceeds_not_supplied", "collateral += -size_delta * fill // UNIT", "collateral += 0",
      "the sale's proceeds not counted as supplied collateral"),
    A("aave_buyback_free", "collateral -= -(-(size_delta * fill) // UNIT)", "collateral -= 0",
      "the buy-back not paid out of the collateral"),
    A("aave_wallet_asset_ignored", "debt = debt0 + max(0, -size_delta - wallet0)", "debt = debt0 - size_delta",
      "the unsold asset in the wallet not sold before borrowing more"),
    A("aave_withdrawal_ignores_debt", "free = max(0, a.supplied - need - 1)", "free = a.supplied",
      "the largest withdrawal ignores the debt it backs"),
    A("aave_withdrawal_ignores_liquidity", "return max(0, min(free, m.collateral_available))",
      "return max(0, free)", "a withdrawal larger than the reserve holds"),
    A("aave_budget_full_withdrawal", "self.max_withdrawal() * 99 // 100", "self.max_withdrawal()",
      "the reduction budget with no room for interest accrued before the block"),
    A("aave_carry_without_supply", "return (borrow * debt_usd - supply * collateral_usd) // debt_usd // 365",
      "return borrow * debt_usd // debt_usd // 365", "the carry forgets the supply rate earned"),
    A("aave_carry_yearly", "return (borrow * debt_usd - supply * collateral_usd) // debt_usd // 365",
      "return (borrow * debt_usd - supply * collateral_usd) // debt_usd",
      "the carry a year taken as a day's"),
    A("aave_drift_yearly", "// (RAY * 365 * 86400) + 1", "// (RAY * 86400) + 1",
      "the interest drift allowance 365 times too wide (a third party's borrow taken for interest)"),
    A("aave_distance_at_leverage_no_threshold", "return -(-(UNIT + UNIT * UNIT // leverage_) * lt // BPS) - UNIT",
      "return UNIT * UNIT // leverage_", "the leverage settings' distances as if the threshold were 100%"),
    A("aave_margin_for_distance_no_threshold",
      "collateral = -(-(UNIT + distance) * notional * BPS // (UNIT * self.market.liquidation_threshold_bps))",
      "collateral = -(-(UNIT + distance) * notional // UNIT)", "the margin for a distance without the threshold"),
    A("aave_emode_not_refused", "        if a.e_mode:\n", "        if False:\n",
      "an account in e-mode judged with the reserve's own threshold"),
    A("aave_other_reserves_not_refused", "        if a.other_reserves:\n", "        if False:\n",
      "an account using other reserves judged as if it held only the hedge"),
    A("aave_paused_ignored", "if m.asset_paused or m.collateral_paused:", "if False:",
      "a borrow sent against a paused reserve"),
    A("aave_frozen_ignored", "        if m.asset_frozen:\n", "        if False:\n",
      "a borrow sent against a frozen reserve"),
    A("aave_liquidity_ignored", "if native > m.asset_available:", "if False:",
      "a borrow larger than the reserve can lend"),
    A("aave_borrow_cap_ignored", "if m.borrow_cap_room is not None and native > m.borrow_cap_room:", "if False:",
      "a borrow beyond the borrow cap"),
    A("aave_ltv_cushion_dropped", "if debt_usd * OPENING_CUSHION_PCT // 100 > collateral * m.ltv_bps // BPS:",
      "if debt_usd > collateral * m.ltv_bps // BPS:", "the borrow sized to the LTV's edge, no room for the price"),
    A("aave_ltv_is_threshold", "if debt_usd * OPENING_CUSHION_PCT // 100 > collateral * m.ltv_bps // BPS:",
      "if debt_usd * OPENING_CUSHION_PCT // 100 > collateral * m.liquidation_threshold_bps // BPS:",
      "the borrow checked against the liquidation threshold instead of the LTV"),
    A("aave_borrow_after_supply", "collateral = pt.margin + pt.notional - sold * pt.fill_price // UNIT",
      "collateral = pt.margin + pt.notional",
      "the borrow's LTV counts the sale's proceeds, which are supplied only after it is mined"),
    A("aave_ltv_refused_as_venue", 'return None if reason is None or "LTV" in reason else reason', "return reason",
      "a borrow short of collateral refused outright instead of funded by a deposit"),
    # ---- protocols/gmx_v2/model.py (GMX v2's impact, fees, liquidation rule, and the policy's model)
    G("gmx_worsening_impact_paid", "return (delta if balance_was_improved else -delta), balance_was_improved",
      "return delta, balance_was_improved", "a trade that worsens the balance is paid its impact"),
    G("gmx_crossover_not_charged", "return (positive - negative), balance_was_improved",
      "return positive, balance_was_improved", "a trade crossing the balance pays nothing for the other side"),
    G("gmx_pool_cap_dropped", "return min(impact_usd, impact_pool_amount * index_price_min)", "return impact_usd",
      "a positive impact larger than the impact pool holds"),
    G("gmx_max_positive_cap_dropped",
      "return min(impact_usd, apply_factor(size_delta_usd, params.max_factor_positive_adjusted))",
      "return impact_usd", "a positive impact beyond MAX_POSITION_IMPACT_FACTOR"),
    G("gmx_short_tokens_rounded_down", "base_tokens = round_up_division(size_delta_usd, index_price_min)",
      "base_tokens = size_delta_usd // index_price_min", "a short's size in tokens rounded down (GMX rounds up)"),
    G("gmx_pending_impact_not_realised", "total = impact + pending_usd", "total = impact",
      "a decrease forgets the pending impact stored at the increase"),
    G("gmx_negative_impact_uncapped", "        if total < floor:\n", "        if False:\n",
      "a decrease's negative impact not capped (the excess is claimable later)"),
    G("gmx_fee_factors_swapped",
      "return apply_factor(size_delta_usd, fee_factor_improved if balance_was_improved else fee_factor_not_improved)",
      "return apply_factor(size_delta_usd, fee_factor_not_improved if balance_was_improved else fee_factor_improved)",
      "the position fee's two factors the wrong way round"),
    G("gmx_liq_borrowing_ignored", "cost_usd = (fee_amount + borrowing_amount + funding_amount + ui_amount) * price",
      "cost_usd = (fee_amount + funding_amount + ui_amount) * price",
      "the liquidation rule forgets the pending borrowing fee"),
    G("gmx_liq_close_fee_ignored", "cost_usd = (fee_amount + borrowing_amount + funding_amount + ui_amount) * price",
      "cost_usd = (borrowing_amount + funding_amount + ui_amount) * price",
      "the liquidation rule forgets the fee of closing"),
    G("gmx_liq_impact_ignored", "remaining = position.collateral_amount * price + pnl + impact - cost_usd",
      "remaining = position.collateral_amount * price + pnl - cost_usd",
      "the liquidation rule forgets the close and pending impact"),
    G("gmx_liq_factor_ignored", "    elif remaining < for_leverage:\n", "    elif False:\n",
      "MIN_COLLATERAL_FACTOR_FOR_LIQUIDATION never liquidates"),
    G("gmx_liq_min_usd_ignored", "    if remaining < market.min_collateral_usd:\n", "    if False:\n",
      "MIN_COLLATERAL_USD never liquidates"),
    G("gmx_close_impact_may_help", "return max(min(impact, 0), floor), improved", "return max(impact, floor), improved",
      "a positive close impact counted toward surviving liquidation"),
    G("gmx_pending_fees_not_settled",
      "owed = usd_to_collateral_amount(m.pending_borrowing_usd, self.cprice) + m.pending_funding_amount",
      "owed = 0", "borrowing and funding owed not taken from the collateral before a trade"),
    G("gmx_decrease_loss_free", "collateral -= round_up_division(-realised, self.cprice)", "collateral -= 0",
      "a decrease's realised loss not taken from the collateral"),
    G("gmx_decrease_fee_free", "realised = pnl + dec.total_impact_usd - fee", "realised = pnl + dec.total_impact_usd",
      "a decrease's position fee not charged"),
    G("gmx_increase_fee_free",
      "return new, collateral - usd_to_collateral_amount(fee, self.cprice), fee, inc.execution_price",
      "return new, collateral, fee, inc.execution_price", "an increase's position fee not charged"),
    G("gmx_withdrawal_to_zero",
      "room = check.remaining_collateral_usd - self._required_usd(pos.size_in_usd, self.market.min_collateral_factor)",
      "room = check.remaining_collateral_usd", "a collateral withdrawal GMX's validatePosition refuses"),
    G("gmx_receiver_pays_funding", "funding = -(f * payer_oi // receiver_oi) if receiver_oi else 0", "funding = f",
      "the side receiving funding counted as paying it"),
    G("gmx_carry_without_borrowing", "return (borrowing + funding) * SECONDS_PER_DAY // E18_PER_USD30",
      "return funding * SECONDS_PER_DAY // E18_PER_USD30", "the carry forgets the borrowing fee"),
    G("gmx_opening_cushion_dropped",
      "required = _usd30_to_e18(self._required_usd(size_usd, m.min_collateral_factor)) * OPENING_CUSHION_PCT // 100",
      "required = _usd30_to_e18(self._required_usd(size_usd, m.min_collateral_factor))",
      "the opening check without its cushion for the keeper's price"),
    G("gmx_min_position_size_ignored", " and size_usd >= m.min_position_size_usd", "",
      "an order below MIN_POSITION_SIZE_USD"),
    G("gmx_deficit_ignored", "        if deficit:\n            dist = -10**18", "        if False:\n            dist = -10**18",
      "an order its collateral cannot pay for taken as a safe position"),
    G("gmx_claimable_ignored",
      "return self.collateral_usd(m.claimable_funding_amount + sum(a for _, a in m.claimable_collateral))",
      "return 0", "funding and capped impact waiting to be claimed forgotten"),
    G("gmx_leverage_distance_ignores_bare", "amount = max(0, round_up_division(want - bare, self.cprice))",
      "amount = round_up_division(want, self.cprice)",
      "the leverage settings' distances ignore the position's PnL, impact and fees"),
    G("gmx_receiver_funding_not_spread", "return apply_factor(size_in_usd, mul_div(per_period, paying_open_interest, "
      "receiving_open_interest))", "return apply_factor(size_in_usd, per_period)",
      "funding received not spread over the receiving side's open interest"),
    # ---- sim/simreport.py, sim/simulate.py, sim/simcli.py (the simulator's figures)
    S("sim_ideal_hedges_after_the_flow", "sim/simreport.py",
      "d_perp = 0.0 if i == 0 else -st[i - 1].exposure * (s.price - st[i - 1].price)",
      "d_perp = 0.0 if i == 0 else -s.exposure * (s.price - st[i - 1].price)",
      "the ideal hedge already holds the exposure a flow brings in at the step's end"),
    S("sim_min_ratio_is_max", "sim/simreport.py", "min(s.position / s.target for s in steps)",
      "max(s.position / s.target for s in steps)", "the lowest hedge ratio reported as the highest"),
    S("sim_tracking_counts_the_unwind", "sim/simreport.py",
      "steps = [s for r in runs for s in r.tracking_steps() if abs(s.target) > 1e-12]",
      "steps = [s for r in runs for s in r.steps if abs(s.target) > 1e-12]",
      "the closing unwind counted in the tracking (every run's lowest ratio 0)"),
    S("sim_band_measured_on_position", "sim/simreport.py",
      "abs(s.position - s.target) <= IN_BAND * abs(s.target)", "abs(s.position - s.target) <= IN_BAND",
      "the 5% yardstick taken in asset units, not as a fraction of the target"),
    S("sim_risk_without_liquidation", "sim/simulate.py", " + s.d_gas + s.d_liquidation\n", " + s.d_gas\n",
      "what liquidations took left out of the hedged change (residual risk)"),
    S("sim_risk_without_fees", "sim/simulate.py",
      "return [s.d_spot + s.d_perp_price + s.d_funding + s.d_fees + s.d_execution",
      "return [s.d_spot + s.d_perp_price + s.d_funding + s.d_execution",
      "fees left out of the hedged change"),
    S("sim_cost_includes_funding", "sim/simulate.py", "return self.fees_usd + self.execution_usd + self.gas_usd",
      "return self.fees_usd + self.execution_usd + self.gas_usd + self.funding_usd",
      "funding (carry) counted as a trading cost"),
    S("sim_failed_without_refused", "sim/simulate.py",
      'FAILED_OUTCOMES = frozenset({"failed", "refused", "partial", "gas_too_high", "error"})',
      'FAILED_OUTCOMES = frozenset({"failed", "partial", "gas_too_high", "error"})',
      "refused cycles not counted as failed"),
    S("sim_liquidation_forgets_price_move", "sim/simulate.py",
      "return equity - prev[\"equity\"] - d_perp - self.venue.carry(prev[\"carry\"], mid[\"carry\"], 0)",
      "return equity - prev[\"equity\"] - self.venue.carry(prev[\"carry\"], mid[\"carry\"], 0)",
      "a liquidation's loss counts the position's own price move"),
    S("sim_vs_open_once_inverted", "sim/simreport.py", 'entry["risk_vs_open_once"] = risk / base if base else None',
      'entry["risk_vs_open_once"] = base / risk if risk else None', "risk vs open-once the wrong way up"),
    S("sim_gap_to_ideal_sign", "sim/simreport.py", 'risk - ideal["residual_risk_usd"] if ideal else None',
      'ideal["residual_risk_usd"] - risk if ideal else None', "the gap to the ideal hedge negative"),
    S("sim_scenario_baseline_overall", "sim/simreport.py",
      'pols.get(OPEN_ONCE, {}).get("scenarios", {}).get(sc), pols[IDEAL]["scenarios"].get(sc))',
      'pols.get(OPEN_ONCE), pols[IDEAL])', "a scenario's figures against the baselines over all scenarios"),
    S("sim_match_tolerance_ignored", "sim/simreport.py", 'abs(p["risk_ratio"] - 1) <= tolerance]',
      'abs(p["risk_ratio"] - 1) <= 1]', "matched risk accepts runs far from the policy's risk"),
    S("sim_match_priciest", "sim/simreport.py", 'best = min(within, key=lambda p: p["against_cost_usd"])',
      'best = max(within, key=lambda p: p["against_cost_usd"])',
      "the cost ratio taken against the dearest matched run (flattering the policy)"),
    S("sim_dominance_either", "sim/simreport.py", "if r2 < r and c2 < c)", "if r2 < r or c2 < c)",
      "a point cheaper or less risky counted as dominating"),
    S("sim_dominance_weak", "sim/simreport.py", "if r2 < r and c2 < c)", "if r2 <= r and c2 <= c)",
      "a point dominates itself (or its equal)"),
    S("sim_dominance_with_ideal", "sim/simreport.py",
      'for k, v in pols.items() if k != IDEAL}', "for k, v in pols.items()}",
      "the computed ideal hedge (which pays nothing) put on the frontier"),
    S("sim_failed_run_exit_at_all", "sim/simcli.py", "bad = [r for r in runs if r.cycles and 2 * r.failed_cycles > r.cycles]",
      "bad = [r for r in runs if r.cycles and r.failed_cycles > r.cycles]",
      "a run whose cycles mostly failed exits 0"),
    # ---- cycle/multimarket.py (one wallet shared by several markets)
    Mutant("mm_farthest_first", MM, "order = sorted(range(n), key=lambda i: (liquidation_distance(markets[i][1], "
           "decisions[i]), i))", "order = sorted(range(n), key=lambda i: (-liquidation_distance(markets[i][1], "
           "decisions[i]), i))", "the market farthest from liquidation funded first", tests=MM_TESTS),
    Mutant("mm_growth_counted_as_risk", MM, "if d.kind is DecisionKind.REBALANCE and _reduces(s.account.size, "
           "d.size_delta) else 0", "if d.kind is DecisionKind.REBALANCE else 0",
           "a market ranked by the position its growth would reach (unfunded, it is cut)", tests=MM_TESTS),
    Mutant("mm_not_redecided", MM, "        if wants[i] > remaining:\n            redo = True\n",
           "        if wants[i] > remaining:\n            redo = False\n",
           "a market the wallet cannot fund keeps its decision (a deposit the wallet lacks)", tests=MM_TESTS),
    Mutant("mm_wallet_not_used_up", MM, "        remaining -= allocated\n", "",
           "every market allocated from the whole wallet", tests=MM_TESTS),
    Mutant("mm_daily_room_not_shared", MM, "        used_notional += _trade_notional(s, d)\n", "",
           "each market given the whole daily notional room", tests=MM_TESTS),
]


def run_tests(copy: Path, timeout: float, tests: tuple[str, ...] | list[str] = ()) -> tuple[str, float]:
    """'passed', 'failed' or 'timeout', and the seconds taken."""
    env = {**os.environ, "CI": "1", "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header",
           *[f"--deselect={d}" for d in DESELECT], *(tests or TESTS)]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0
    return ("passed" if p.returncode == 0 else "failed"), time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", dest="only", default="", help="run only mutants whose name contains this")
    ap.add_argument("--list", action="store_true", help="list the mutants and exit")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant before it counts as killed")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if args.only in m.name]
    if args.list:
        for m in chosen:
            print(f"{m.name:32} {m.file:14} {m.why}")
        return 0
    with tempfile.TemporaryDirectory(prefix="hedger-mutants-") as tmp:
        copy = Path(tmp)
        for part in ("hedger", "tests", "abis", "pyproject.toml"):
            src = ROOT / part
            if src.is_dir():
                shutil.copytree(src, copy / part, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
            elif src.exists():
                shutil.copy2(src, copy / part)
        # the chain tests among them start anvil and deploy npm artifacts from the project's own install
        for part in ("node_modules", ".build", "contracts", "ape-config.yaml"):
            if (ROOT / part).exists():
                (copy / part).symlink_to(ROOT / part)
        probe = subprocess.run([sys.executable, "-c", "import hedger; print(hedger.__file__)"], cwd=copy,
                               env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True)
        if not probe.stdout.strip().startswith(str(copy)):
            print(f"the copy's hedger is not the one imported ({probe.stdout.strip() or probe.stderr[-500:]})")
            return 2
        # every mutant must apply to the code as it is (a stale list would "survive" by default)
        originals = {f: (copy / "hedger" / f).read_text() for f in {m.file for m in chosen}}
        for m in chosen:
            n = originals[m.file].count(m.old)
            if n != m.count:
                print(f"mutant {m.name}: its text occurs {n} times in hedger/{m.file}, expected {m.count}")
                return 2
        for tests in sorted({m.tests for m in chosen}):
            status, secs = run_tests(copy, args.timeout, tests)
            print(f"unmutated: tests {status} in {secs:.0f}s ({', '.join(tests or TESTS)})")
            if status != "passed":
                return 2
        killed, survived = [], []
        for i, m in enumerate(chosen, 1):
            path = copy / "hedger" / m.file
            path.write_text(originals[m.file].replace(m.old, m.new))
            try:
                status, secs = run_tests(copy, args.timeout, m.tests)
            finally:
                path.write_text(originals[m.file])
            verdict = "survived" if status == "passed" else "killed" + (" (timeout)" if status == "timeout" else "")
            (survived if status == "passed" else killed).append(m)
            print(f"[{i:2}/{len(chosen)}] {verdict:16} {m.name:32} {secs:5.0f}s  {m.why}", flush=True)
    total = len(killed) + len(survived)
    print(f"\nmutation score: {len(killed)}/{total} killed ({100 * len(killed) / max(total, 1):.0f}%)")
    for m in survived:
        print(f"  survived: {m.name} (hedger/{m.file}): {m.why}")
    return 0 if not survived else 1


if __name__ == "__main__":
    sys.exit(main())
