"""The policy over the account's list of orders (issue 10, "Orders, not one order"). Pure, no chain.

Each order carries the venue's key, kind and state: cancelled by the venue (acceptable price
missed) and executed orders are not in flight (re-plan from the chain's state); an expired one is
cancelled by its key; a frozen one refuses (the operator decides); a pending size order never
leads to a second one.
"""

from __future__ import annotations

from dataclasses import replace

from hedger.core.types import ActionKind, DecisionKind, OrderKind, OrderState, PolicyParams, RefusalKind
from hedger.cycle.keeper import REFUSAL_EXIT
from hedger.decide import planner, policy
from tests.snapshots import NOW, eth, make_snapshot, pending_order, usd, usdc

P = PolicyParams()
KEY = "0x" + "5e" * 32          # a GMX-style bytes32 key


def test_an_order_cancelled_by_the_venue_is_not_in_flight_so_the_hedge_is_re_planned() -> None:
    # GMX cancels a market order whose acceptable price was missed: the trade never happened
    gone = pending_order(-eth(10), NOW - 30, key=KEY, state=OrderState.CANCELLED)
    s = make_snapshot(spot=eth(10), two_step=True, orders=(gone,), wallet=usdc(50_000))
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REBALANCE and d.size_delta == -eth(10) and not d.cancel_order
    # the same order still pending holds (never a second size order)
    held = policy.decide(replace(s, account=replace(s.account, orders=(replace(gone, state=OrderState.PENDING),))), P)
    assert held.code == "top_up_pending" and held.size_delta == 0      # collateral for it, never another trade
    assert KEY in held.reason


def test_an_executed_order_still_listed_is_not_in_flight() -> None:
    done = pending_order(-eth(10), NOW - 30, key=KEY, state=OrderState.EXECUTED)
    s = make_snapshot(spot=eth(10), size=-eth(10), margin=usd(15_000), two_step=True, orders=(done,))
    assert policy.decide(s, P).code == "within_band"


def test_an_expired_order_is_cancelled_by_its_key() -> None:
    for o in (pending_order(-eth(10), NOW - 121, key=KEY),                                 # past expires_at
              pending_order(-eth(10), NOW - 30, key=KEY, state=OrderState.EXPIRED)):     # the venue says so
        s = make_snapshot(spot=eth(10), two_step=True, orders=(o,), wallet=usdc(50_000))
        d = policy.decide(s, P)
        assert d.kind is DecisionKind.REBALANCE and d.code == "cancel_expired_order" and d.cancel_order
        assert d.order_key == KEY and KEY in d.reason and d.size_delta == 0 and d.margin_delta == 0
        (a,) = planner.plan(d, P, s.account.size).actions
        assert a.kind is ActionKind.CANCEL_ORDER and a.order_key == KEY and a.risk_reducing


def test_the_expired_one_of_several_orders_is_cancelled() -> None:
    fresh = pending_order(0, NOW - 5, key="0x" + "01" * 32, collateral_delta=usdc(100))
    stale = pending_order(-eth(1), NOW - 500, key="0x" + "02" * 32)
    s = make_snapshot(spot=eth(10), size=-eth(9), margin=usd(15_000), two_step=True, orders=(fresh, stale))
    d = policy.decide(s, P)
    assert d.code == "cancel_expired_order" and d.order_key == stale.key


def test_a_frozen_order_refuses_naming_its_key_and_the_fix() -> None:
    frozen = pending_order(-eth(10), NOW - 30, key=KEY, state=OrderState.FROZEN, kind=OrderKind.INCREASE)
    s = make_snapshot(spot=eth(10), two_step=True, orders=(frozen,), wallet=usdc(50_000))
    d = policy.decide(s, P)
    assert d.kind is DecisionKind.REFUSE and d.refusal is RefusalKind.ACCOUNT and d.code == "order_frozen"
    assert KEY in d.reason and "cancel it" in d.reason and not d.acts
    assert REFUSAL_EXIT[d.refusal] == 9         # like other positions needing the operator
    # even past its expiry: a frozen order may still execute, so it is not cancelled blindly
    late = replace(frozen, submitted_at=NOW - 1000, expires_at=NOW - 880)
    assert policy.decide(replace(s, account=replace(s.account, orders=(late,))), P).code == "order_frozen"


def test_a_pending_size_order_never_leads_to_a_second_whatever_its_kind() -> None:
    for kind in (OrderKind.INCREASE, OrderKind.DECREASE):
        o = pending_order(-eth(5), NOW - 5, key=KEY, kind=kind)
        s = make_snapshot(spot=eth(10), two_step=True, orders=(o,), wallet=usdc(50_000), margin=usd(20_000))
        d = policy.decide(s, P)
        assert d.size_delta == 0 and d.code in ("order_pending", "top_up_pending"), d.reason
