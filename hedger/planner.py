"""Decision -> ordered protocol actions with bounds. Pure.

Order: risk-reducing actions first (a collateral top-up before a bigger short,
a hedge reduction before a withdrawal), so that a plan stopped part-way leaves
the account no riskier than before. Each trade carries its worst acceptable
fill price: the expected fill moved against us by the maximum slippage.
"""

from __future__ import annotations

from hedger.fixedpoint import UNIT
from hedger.types import Action, ActionKind, Decision, DecisionKind, Plan, PolicyParams


def price_bound(expected_fill: int, size_delta: int, max_slippage: int) -> int:
    """Worst acceptable fill: above the expected price for a buy (rounded down),
    below it for a sell (rounded up), so the bound never loosens past the slippage."""
    if size_delta > 0:
        return expected_fill * (UNIT + max_slippage) // UNIT
    return -(-expected_fill * (UNIT - max_slippage) // UNIT)


def plan(decision: Decision, p: PolicyParams, current_size: int) -> Plan:
    if decision.kind is not DecisionKind.REBALANCE:
        return Plan(decision=decision)
    actions: list[Action] = []
    if decision.cancel_order:
        actions.append(Action(ActionKind.CANCEL_ORDER, 0, risk_reducing=True, note="cancel expired order"))
    if decision.margin_delta > 0:
        actions.append(Action(ActionKind.DEPOSIT, decision.margin_delta, risk_reducing=True,
                              note="top up collateral"))
    if decision.size_delta != 0:
        reducing = abs(current_size + decision.size_delta) < abs(current_size) and \
            (current_size + decision.size_delta) * current_size >= 0
        bound = price_bound(decision.expected_fill_price, decision.size_delta, p.max_slippage)
        actions.append(Action(ActionKind.TRADE, decision.size_delta, price_bound=bound, risk_reducing=reducing,
                              note="reduce hedge" if reducing else "grow hedge"))
    if decision.margin_delta < 0:
        actions.append(Action(ActionKind.WITHDRAW, -decision.margin_delta, risk_reducing=False,
                              note="withdraw excess collateral"))
    # risk-reducing first, order otherwise kept
    actions.sort(key=lambda x: 0 if x.risk_reducing else 1)
    return Plan(decision=decision, actions=tuple(actions))
