"""Decision -> ordered protocol actions with bounds. Pure.

Order: risk-reducing actions first (a collateral top-up the position as it stands
needs, a hedge reduction), then the rest in the order cancel, deposit, trade,
withdrawal, so that a plan stopped part-way leaves the account no riskier than
before. Each trade carries its worst acceptable fill price: the expected fill
moved against us by the maximum slippage.

What counts as risk-reducing is defined once, in :func:`split_trade`, and used by
the policy (price-divergence check, daily limits) and here (the actions' flags,
hence the fee ceiling they may be sent under).
"""

from __future__ import annotations

from hedger.core.fixedpoint import UNIT
from hedger.core.types import Action, ActionKind, Decision, DecisionKind, Plan, PolicyParams


def split_trade(size: int, delta: int) -> tuple[int, int]:
    """``(closing, opening)``: trading ``delta`` from position ``size`` as the part that moves the
    position toward zero (risk-reducing) and the part that opens or grows a position (risk-
    increasing). A trade that crosses zero is both: close the position first, then open the other
    side (short 10, delta +18: ``(10, 8)``). ``closing + opening == delta``."""
    if delta == 0 or size == 0 or (size > 0) == (delta > 0):
        return 0, delta
    if abs(delta) <= abs(size):
        return delta, 0
    return -size, size + delta


def price_bound(expected_fill: int, size_delta: int, max_slippage: int) -> int:
    """Worst acceptable fill: above the expected price for a buy (rounded down),
    below it for a sell (rounded up), so the bound never loosens past the slippage."""
    if size_delta > 0:
        return expected_fill * (UNIT + max_slippage) // UNIT
    return -(-expected_fill * (UNIT - max_slippage) // UNIT)


def _claim(decision: Decision) -> tuple[Action, ...]:
    """The claim the policy asked for (``Decision.claim_usd``), last in the plan: it moves no risk."""
    if decision.claim_usd <= 0 or decision.kind is DecisionKind.REFUSE:
        return ()
    return (Action(ActionKind.CLAIM, 0, note=f"claim what the venue holds for us (~{decision.claim_usd / 10**18:.2f} "
                                            "USD: funding received, capped price impact)"),)


def plan(decision: Decision, p: PolicyParams, current_size: int) -> Plan:
    if decision.kind is not DecisionKind.REBALANCE:
        return Plan(decision=decision, actions=_claim(decision))
    actions: list[Action] = []
    if decision.cancel_order:
        actions.append(Action(ActionKind.CANCEL_ORDER, 0, risk_reducing=True, note="cancel expired order",
                              order_key=decision.order_key))
    if decision.margin_delta > 0:
        # risk-reducing only when the position as it stands needs it; funding a bigger short is not
        rr = decision.deposit_risk_reducing
        actions.append(Action(ActionKind.DEPOSIT, decision.margin_delta, risk_reducing=rr,
                              note="top up collateral" if rr else "collateral for the bigger hedge"))
    if decision.size_delta != 0:
        closing, opening = split_trade(current_size, decision.size_delta)
        fills = decision.leg_fill_prices if len(decision.leg_fill_prices) == 2 and closing and opening else \
            (decision.expected_fill_price, decision.expected_fill_price)
        if closing:
            bound = price_bound(fills[0], closing, p.max_slippage)
            actions.append(Action(ActionKind.TRADE, closing, price_bound=bound, risk_reducing=True,
                                  note="reduce hedge" if not opening else "close hedge (before opening the other side)"))
        if opening:
            bound = price_bound(fills[1], opening, p.max_slippage)
            actions.append(Action(ActionKind.TRADE, opening, price_bound=bound, risk_reducing=False,
                                  note="grow hedge" if not closing else "open the other side"))
    if decision.margin_delta < 0:
        actions.append(Action(ActionKind.WITHDRAW, -decision.margin_delta, risk_reducing=False,
                              note="withdraw excess collateral"))
    # risk-reducing first, order otherwise kept
    actions.sort(key=lambda x: 0 if x.risk_reducing else 1)
    return Plan(decision=decision, actions=tuple(actions) + _claim(decision))
