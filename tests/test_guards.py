"""The pure guards (``hedger.decide.guards.check``) on a snapshot's readings. No chain."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hedger.decide import guards, planner, policy
from hedger.core.types import DecisionKind, PolicyParams, RefusalKind, Snapshot
from tests.snapshots import (NOW, eth, make_snapshot, pending_order, usdc, with_chain, with_market, with_oracle,
                             with_sequencer)

P = PolicyParams()                     # oracle max age 3600 s, sequencer grace 3600 s, block lag off


def ok() -> Snapshot:
    """A valid reading of an account that would trade (unhedged 10 ETH, funds in the wallet)."""
    return make_snapshot(spot=eth(10), wallet=usdc(50_000))


def refused(s: Snapshot, p: PolicyParams, code: str, kind: RefusalKind) -> None:
    d = guards.check(s, p)
    assert d is not None, f"expected {code}"
    assert d.kind is DecisionKind.REFUSE and d.code == code and d.refusal is kind
    assert d.reason
    # the policy returns the guard's refusal, and the plan is empty
    full = policy.decide(s, p)
    assert full.kind is DecisionKind.REFUSE and full.code == code
    assert planner.plan(full, p, s.account.size).actions == ()


def accepted(s: Snapshot, p: PolicyParams = P) -> None:
    assert guards.check(s, p) is None
    assert policy.decide(s, p).kind is DecisionKind.REBALANCE


def test_valid_reading_passes() -> None:
    accepted(ok())


# ---- oracle ----

def test_oracle_zero_round() -> None:
    refused(with_oracle(ok(), round_id=0), P, "oracle_zero_round", RefusalKind.ORACLE)


@pytest.mark.parametrize("answer", [0, -1, -300_000_000_000])
def test_oracle_nonpositive(answer: int) -> None:
    refused(with_oracle(ok(), answer=answer), P, "oracle_nonpositive", RefusalKind.ORACLE)


def test_oracle_no_timestamp() -> None:
    refused(with_oracle(ok(), updated_at=0), P, "oracle_no_timestamp", RefusalKind.ORACLE)


@pytest.mark.parametrize("ahead", [1, 3600])
def test_oracle_future(ahead: int) -> None:
    refused(with_oracle(ok(), updated_at=NOW + ahead), P, "oracle_future", RefusalKind.ORACLE)


def test_oracle_updated_at_block_time_is_accepted() -> None:
    accepted(with_oracle(ok(), updated_at=NOW))


def test_oracle_stale() -> None:
    refused(with_oracle(ok(), updated_at=NOW - 10_000), P, "oracle_stale", RefusalKind.ORACLE)


def test_oracle_age_boundary() -> None:
    accepted(with_oracle(ok(), updated_at=NOW - 3600))                        # age == max age
    refused(with_oracle(ok(), updated_at=NOW - 3601), P, "oracle_stale", RefusalKind.ORACLE)   # max age + 1


def test_oracle_max_age_parameter_is_used() -> None:
    s = with_oracle(ok(), updated_at=NOW - 120)
    accepted(s)
    refused(s, replace(P, oracle_max_age_s=119), "oracle_stale", RefusalKind.ORACLE)
    accepted(s, replace(P, oracle_max_age_s=120))


def test_oracle_checks_use_block_time_not_wall_clock() -> None:
    # the wall clock is far ahead (the guard on block lag is off): the feed is fresh in block time
    accepted(with_chain(ok(), wall_clock=NOW + 86_400))


def test_market_price_invalid() -> None:
    refused(with_market(ok(), price_invalid=True), P, "market_price_invalid", RefusalKind.ORACLE)


# ---- sequencer ----

@pytest.mark.parametrize("answer", [1, 2])
def test_sequencer_down(answer: int) -> None:
    refused(with_sequencer(ok(), answer=answer), P, "sequencer_down", RefusalKind.SEQUENCER)


def test_sequencer_invalid() -> None:
    refused(with_sequencer(ok(), started_at=0), P, "sequencer_invalid", RefusalKind.SEQUENCER)


def test_sequencer_grace() -> None:
    refused(with_sequencer(ok(), started_at=NOW - 60), P, "sequencer_grace", RefusalKind.SEQUENCER)


def test_sequencer_grace_boundary() -> None:
    accepted(with_sequencer(ok(), started_at=NOW - 3600))                     # grace exactly elapsed
    refused(with_sequencer(ok(), started_at=NOW - 3599), P, "sequencer_grace", RefusalKind.SEQUENCER)


def test_sequencer_started_in_the_future_is_in_grace() -> None:
    refused(with_sequencer(ok(), started_at=NOW + 10), P, "sequencer_grace", RefusalKind.SEQUENCER)


def test_no_sequencer_feed_on_l1() -> None:
    accepted(make_snapshot(spot=eth(10), wallet=usdc(50_000), sequencer=False))


# ---- chain ----

def test_block_lag() -> None:
    p = replace(P, max_block_lag_s=300)
    s = with_chain(ok(), wall_clock=NOW + 301)
    refused(s, p, "block_lag", RefusalKind.CHAIN)
    accepted(with_chain(ok(), wall_clock=NOW + 300), p)                       # lag == limit
    accepted(s, P)                                                            # 0 = guard off


def test_block_ahead_of_wall_clock_is_not_lag() -> None:
    accepted(with_chain(ok(), wall_clock=NOW - 1000), replace(P, max_block_lag_s=300))


# ---- precedence: a chain problem first, then the oracle, then the sequencer ----

def test_guard_precedence() -> None:
    p = replace(P, max_block_lag_s=300)
    s = with_sequencer(with_oracle(with_chain(ok(), wall_clock=NOW + 10_000), round_id=0), answer=1)
    assert guards.check(s, p).code == "block_lag"
    s = with_chain(s, wall_clock=NOW)
    assert guards.check(s, p).code == "oracle_zero_round"
    s = with_oracle(s, round_id=7)
    assert guards.check(s, p).code == "sequencer_down"


def test_refusal_overrides_pending_order_and_margin_checks() -> None:
    s = make_snapshot(spot=eth(10), size=-eth(10), margin=0, two_step=True,
                      pending=pending_order(-eth(1), NOW - 1000), updated_at=NOW - 5000)
    d = policy.decide(s, P)
    assert d.code == "oracle_stale" and not d.cancel_order


# ---- a second price source's round: the same checks, through feed_problem ----

def test_feed_problem_names_what_is_wrong_with_a_round() -> None:
    """The keeper asks ``feed_problem`` about a second feed (HEDGER_SECOND_ORACLE): every
    consumer check applies there too, and a usable round has no problem."""
    o = ok().oracle
    assert guards.feed_problem(o, NOW, 3600) is None
    cases = [(replace(o, updated_at=NOW - 3601), "stale: last update 3601s ago, max age 3600s"),
             (replace(o, answer=0), "answered 0 (not positive)"),
             (replace(o, round_id=0), "round id 0"),
             (replace(o, updated_at=0), "updatedAt 0"),
             (replace(o, updated_at=NOW + 5), "5s in the future")]
    for bad, words in cases:
        problem = guards.feed_problem(bad, NOW, 3600)
        assert problem is not None and words in problem and o.address in problem, (bad, problem)
    assert guards.feed_problem(replace(o, updated_at=NOW - 3600), NOW, 3600) is None      # the edge is usable
