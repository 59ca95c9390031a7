"""The planner (``hedger.decide.planner``): a decision -> ordered actions with price bounds. No chain."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from hedger.decide import planner, policy
from hedger.core.fixedpoint import UNIT
from hedger.core.types import ActionKind, Decision, DecisionKind, PolicyParams, RefusalKind, Snapshot
from tests.snapshots import eth, frac, make_snapshot, usd, usdc
from tests.test_policy import policy_params, snapshots

P = PolicyParams()                       # max slippage 0.5%
FILL = usd(3000)


def rebalance(**kw: object) -> Decision:
    base: dict[str, object] = dict(kind=DecisionKind.REBALANCE, reason="test", code="rebalance",
                                   expected_fill_price=FILL)
    base.update(kw)
    return Decision(**base)  # type: ignore[arg-type]


def kinds(plan: object) -> list[ActionKind]:
    return [a.kind for a in plan.actions]  # type: ignore[attr-defined]


# ---- price bounds ----

def test_price_bound_examples() -> None:
    assert planner.price_bound(FILL, eth(1), frac("0.005")) == usd(3015)      # buy: at most +0.5%
    assert planner.price_bound(FILL, -eth(1), frac("0.005")) == usd(2985)     # sell: at least -0.5%
    assert planner.price_bound(FILL, eth(1), 0) == FILL
    assert planner.price_bound(FILL, -eth(1), 0) == FILL


def test_price_bound_rounding_direction() -> None:
    # 1 wei at 50% slippage: exactly 1.5 for a buy (-> 1, down), 0.5 for a sell (-> 1, up)
    assert planner.price_bound(1, 1, UNIT // 2) == 1
    assert planner.price_bound(1, -1, UNIT // 2) == 1
    # 2999.985000000000000001 at 0.5%: buy 3014.984925000000000001005 -> ...001, sell 2984.985075000000000000995 -> ...001
    fill = 2_999_985_000_000_000_000_001
    assert planner.price_bound(fill, 1, frac("0.005")) == 3_014_984_925_000_000_000_001
    assert planner.price_bound(fill, -1, frac("0.005")) == 2_984_985_075_000_000_000_001


@settings(max_examples=300, deadline=None)
@given(fill=st.integers(1, 10**30), slip=st.integers(0, UNIT // 2), size=st.integers(1, 10**24))
def test_price_bound_never_looser_than_max_slippage(fill: int, slip: int, size: int) -> None:
    buy = planner.price_bound(fill, size, slip)
    sell = planner.price_bound(fill, -size, slip)
    # buy: the largest integer not above fill * (1 + slip)
    assert buy * UNIT <= fill * (UNIT + slip) < (buy + 1) * UNIT
    assert fill <= buy and (buy - fill) * UNIT <= slip * fill
    # sell: the smallest integer not below fill * (1 - slip)
    assert (sell - 1) * UNIT < fill * (UNIT - slip) <= sell * UNIT
    assert sell <= fill and (fill - sell) * UNIT <= slip * fill


# ---- ordering ----

def test_deposit_before_growing_trade() -> None:
    d = rebalance(size_delta=-eth(10), margin_delta=usdc(15_000))
    plan = planner.plan(d, P, current_size=0)
    assert kinds(plan) == [ActionKind.DEPOSIT, ActionKind.TRADE]
    dep, trade = plan.actions
    # collateral that only funds a new (or bigger) short is not risk-reducing (no emergency fees)
    assert dep.amount == usdc(15_000) and not dep.risk_reducing
    assert trade.amount == -eth(10) and not trade.risk_reducing
    assert trade.price_bound == usd(2985)


def test_reducing_trade_before_withdrawal() -> None:
    d = rebalance(size_delta=eth(4), margin_delta=-usdc(6000))
    plan = planner.plan(d, P, current_size=-eth(10))
    assert kinds(plan) == [ActionKind.TRADE, ActionKind.WITHDRAW]
    trade, wd = plan.actions
    assert trade.risk_reducing and trade.amount == eth(4) and trade.price_bound == usd(3015)
    assert not wd.risk_reducing and wd.amount == usdc(6000)          # a positive amount


def test_closing_trade_is_risk_reducing() -> None:
    plan = planner.plan(rebalance(size_delta=eth(10)), P, current_size=-eth(10))
    assert plan.actions[0].risk_reducing


def test_flipping_trade_is_split_close_then_open() -> None:
    # -1 -> +2: crosses zero. Closing the short is risk-reducing; opening the long is not
    plan = planner.plan(rebalance(size_delta=eth(3)), P, current_size=-eth(1))
    assert [(a.kind, a.amount, a.risk_reducing) for a in plan.actions] == [
        (ActionKind.TRADE, eth(1), True), (ActionKind.TRADE, eth(2), False)]
    # each leg bounded from its own expected fill when the policy gives them
    legs = planner.plan(rebalance(size_delta=eth(3), leg_fill_prices=(usd(2000), usd(2100))), P, -eth(1))
    assert [a.price_bound for a in legs.actions] == [usd(2010), usd("2110.5")]
    # and from a long to a short, with a deposit and a withdrawal around it
    d = rebalance(size_delta=-eth(5), margin_delta=usdc(100))
    plan = planner.plan(d, P, current_size=eth(2))
    assert [(a.kind, a.amount, a.risk_reducing) for a in plan.actions] == [
        (ActionKind.TRADE, -eth(2), True), (ActionKind.DEPOSIT, usdc(100), False), (ActionKind.TRADE, -eth(3), False)]


def test_split_trade_definition() -> None:
    assert planner.split_trade(-eth(10), eth(18)) == (eth(10), eth(8))     # short 10 -> long 8
    assert planner.split_trade(eth(10), -eth(18)) == (-eth(10), -eth(8))   # long 10 -> short 8
    assert planner.split_trade(-eth(10), eth(10)) == (eth(10), 0)          # close exactly
    assert planner.split_trade(-eth(10), eth(4)) == (eth(4), 0)            # reduce
    assert planner.split_trade(-eth(10), -eth(4)) == (0, -eth(4))          # grow
    assert planner.split_trade(0, eth(4)) == (0, eth(4))                   # open a long
    assert planner.split_trade(eth(3), 0) == (0, 0)


@given(size=st.integers(-10**24, 10**24), delta=st.integers(-10**24, 10**24))
def test_split_trade_parts(size: int, delta: int) -> None:
    closing, opening = planner.split_trade(size, delta)
    assert closing + opening == delta
    assert abs(size + closing) <= abs(size) and (size + closing) * size >= 0    # toward zero, never past it
    assert opening == 0 or size + closing == 0 or (opening > 0) == (size > 0)   # grows the side it is on
    if opening and closing:
        assert size + closing == 0


def test_growing_trade_then_withdrawal_keeps_order() -> None:
    d = rebalance(size_delta=-eth(1), margin_delta=-usdc(100))
    assert kinds(planner.plan(d, P, current_size=-eth(10))) == [ActionKind.TRADE, ActionKind.WITHDRAW]


def test_deposit_and_deleverage_both_first() -> None:
    d = rebalance(code="deleverage", size_delta=eth(5), margin_delta=usdc(1000), deposit_risk_reducing=True)
    plan = planner.plan(d, P, current_size=-eth(10))
    assert kinds(plan) == [ActionKind.DEPOSIT, ActionKind.TRADE]
    assert all(a.risk_reducing for a in plan.actions)


def test_cancel_comes_first() -> None:
    d = rebalance(cancel_order=True, size_delta=-eth(1), margin_delta=usdc(500))
    plan = planner.plan(d, P, current_size=0)
    assert kinds(plan) == [ActionKind.CANCEL_ORDER, ActionKind.DEPOSIT, ActionKind.TRADE]
    assert plan.actions[0].risk_reducing


def test_cancel_only() -> None:
    plan = planner.plan(rebalance(code="cancel_expired_order", cancel_order=True, expected_fill_price=0), P, 0)
    assert kinds(plan) == [ActionKind.CANCEL_ORDER]


def test_hold_and_refuse_give_empty_plans() -> None:
    hold = Decision(kind=DecisionKind.HOLD, reason="r", code="within_band")
    refuse = Decision(kind=DecisionKind.REFUSE, reason="r", code="oracle_stale", refusal=RefusalKind.ORACLE)
    # even if a malformed decision carried amounts, nothing is planned
    odd = replace(hold, size_delta=eth(1), margin_delta=usdc(1), cancel_order=True)
    for d in (hold, refuse, odd, replace(refuse, size_delta=-eth(1))):
        plan = planner.plan(d, P, current_size=-eth(10))
        assert plan.actions == () and plan.decision is d


def test_slippage_parameter_is_used() -> None:
    p = replace(P, max_slippage=frac("0.01"))
    assert planner.plan(rebalance(size_delta=eth(1)), p, 0).actions[0].price_bound == usd(3030)
    assert planner.plan(rebalance(size_delta=-eth(1)), p, 0).actions[0].price_bound == usd(2970)


# ---- plans of real decisions ----

@settings(max_examples=200, deadline=None)
@given(s=snapshots(pending=None), p=policy_params(trading=True))
def test_plans_of_policy_decisions_are_ordered_and_faithful(s: Snapshot, p: PolicyParams) -> None:
    d = policy.decide(s, p)
    plan = planner.plan(d, p, s.account.size)
    if not d.acts:
        assert plan.actions == ()
        return
    ks = kinds(plan)
    trades = [a for a in plan.actions if a.kind is ActionKind.TRADE]
    others = [k for k in ks if k is not ActionKind.TRADE]
    assert len(others) == len(set(others))                           # each other kind at most once
    flags = [a.risk_reducing for a in plan.actions]
    assert flags == sorted(flags, reverse=True)                      # risk-reducing first
    if ActionKind.CANCEL_ORDER in ks:
        assert ks == [ActionKind.CANCEL_ORDER]                       # a cancel is a cycle of its own
    if ActionKind.DEPOSIT in ks and trades and not trades[-1].risk_reducing:
        assert ks.index(ActionKind.DEPOSIT) < len(ks) - 1 - ks[::-1].index(ActionKind.TRADE)
    if ActionKind.WITHDRAW in ks:
        assert ks[-1] is ActionKind.WITHDRAW
    assert sum(t.amount for t in trades) == d.size_delta
    old = s.account.size
    crosses = old != 0 and (old + d.size_delta) * old < 0
    assert len(trades) == (0 if d.size_delta == 0 else 2 if crosses else 1)
    for t in trades:
        # risk-reducing exactly when the leg moves the position toward zero without passing it
        reducing = old != 0 and abs(old + t.amount) < abs(old) and (old + t.amount) * old >= 0
        assert t.risk_reducing == reducing, (old, t)
        fill = d.expected_fill_price if len(trades) == 1 else d.leg_fill_prices[trades.index(t)]
        assert t.price_bound == planner.price_bound(fill, t.amount, p.max_slippage)
        if t.amount > 0:
            assert fill <= t.price_bound
        else:
            assert t.price_bound <= fill
        old += t.amount
    if d.margin_delta > 0:
        dep = next(a for a in plan.actions if a.kind is ActionKind.DEPOSIT)
        assert dep.amount == d.margin_delta and dep.risk_reducing == d.deposit_risk_reducing
    if d.margin_delta < 0:
        assert next(a for a in plan.actions if a.kind is ActionKind.WITHDRAW).amount == -d.margin_delta


def test_plan_of_the_opening_decision() -> None:
    s = make_snapshot(spot=eth(10), wallet=usdc(50_000))
    d = policy.decide(s, P)
    plan = planner.plan(d, P, s.account.size)
    dep, trade = plan.actions
    assert dep.kind is ActionKind.DEPOSIT and dep.amount == usdc("15018.14991")
    # sell bound: 2999.985 * 0.995 = 2984.985075, exact
    assert trade.kind is ActionKind.TRADE and trade.price_bound == usd("2984.985075")


def test_a_claim_the_policy_asks_for_goes_last_in_any_plan_but_a_refusal() -> None:
    from hedger.core.types import ActionKind, Decision, DecisionKind, PolicyParams, RefusalKind
    from hedger.decide.planner import plan
    hold = Decision(kind=DecisionKind.HOLD, reason="within band", code="within_band", claim_usd=7 * 10**18)
    (claim,) = plan(hold, PolicyParams(), -10**18).actions
    assert claim.kind is ActionKind.CLAIM and not claim.risk_reducing
    trade = Decision(kind=DecisionKind.REBALANCE, reason="r", code="rebalance", size_delta=-10**18,
                     expected_fill_price=3000 * 10**18, claim_usd=7 * 10**18)
    assert [a.kind for a in plan(trade, PolicyParams(), 0).actions] == [ActionKind.TRADE, ActionKind.CLAIM]
    refused = Decision(kind=DecisionKind.REFUSE, reason="stale", code="stale", refusal=RefusalKind.ORACLE,
                       claim_usd=7 * 10**18)
    assert plan(refused, PolicyParams(), 0).actions == ()
    assert plan(Decision(kind=DecisionKind.HOLD, reason="x", code="x"), PolicyParams(), 0).actions == ()


def test_a_call_with_bytes_arguments_prints_them_as_hex() -> None:
    """GMX v2's `exchangeRouter.multicall([...])` takes a list of encoded calls: a dry run, the
    journal's plan and `unwind`'s lines printed them as Python's bytes repr (b'}9\\xaa\\xf1\\x00...',
    kilobytes a line, not copyable). Now: 0x-hex, whole in the plan, shortened in the sent lines;
    calls without bytes print exactly as before."""
    from hedger.core.types import Call
    inner = [bytes.fromhex("7d39aaf1") + bytes(64), bytes.fromhex("e6d66ac8") + bytes(500)]
    c = Call(to="0x" + "11" * 20, contract="exchangeRouter", function="multicall", args=(inner,), data="0x",
             action=ActionKind.TRADE, risk_reducing=False)
    full = c.describe()
    assert "b'" not in full and "\\x" not in full
    assert "0x7d39aaf1" + "00" * 64 in full and "0xe6d66ac8" + "00" * 500 in full
    short = c.args_text()
    assert "b'" not in short and len(short) < 80 and "0x7d39aaf1" in short and "(504 bytes)" in short
    plain = Call(to="0x" + "22" * 20, contract="market", function="transferMargin", args=(15018149910,), data="0x",
                 action=ActionKind.DEPOSIT, risk_reducing=True)
    assert plain.args_text() == "(15018149910,)"
    assert plain.describe() == f"market({'0x' + '22' * 20}).transferMargin(15018149910)"
