"""End to end on anvil: the keeper's cycle against the deployed reference protocol."""

from __future__ import annotations

import pytest

from hedger.state.journal import Journal
from hedger.core.types import DecisionKind
from tests.conftest import USDC, WETH, Hedge

BAND = 0.05


def assert_within_band(h: Hedge, spot: float) -> None:
    size, _ = h.position()
    assert size < 0
    assert abs(-size / 1e18 - spot) <= BAND * spot + 1e-9, (size, spot)


def test_opens_short_within_band_from_unhedged(hedge: Hedge) -> None:
    assert hedge.position() == (0, 0)
    res = hedge.cycle()
    assert res.outcome == "acted" and res.exit_code == 0
    assert [t.call.function for t in res.sent] == ["approve", "transferMargin", "modifyPosition"]
    assert_within_band(hedge, 10)
    assert 1.5 <= hedge.leverage() <= 3.0
    # every tx succeeded and was journaled
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    row = j.cycles()[0]
    assert row["outcome"] == "acted" and row["kind"] == "rebalance"
    assert [t["status"] for t in j.txs(row["id"])] == [1, 1, 1]
    # the approval was bounded to the deposit, not unlimited
    allowance = hedge.chain.usdc.functions.allowance(hedge.address, hedge.chain.d.market).call()
    assert allowance == 0
    # next cycle holds on purpose
    res2 = hedge.cycle()
    assert res2.outcome == "held" and res2.decision.code == "within_band" and not res2.sent


def test_resizes_when_spot_grows_and_shrinks(hedge: Hedge) -> None:
    hedge.cycle()
    hedge.chain.mint_weth(hedge.address, 5 * WETH)
    res = hedge.cycle(HEDGER_COOLDOWN="0")
    assert res.outcome == "acted", (res.decision.reason, res.error)
    assert_within_band(hedge, 15)
    # send 9 WETH away: exposure 6
    hedge.chain.call_as(1, "ReferenceToken", hedge.chain.d.spot, "transfer", hedge.chain.d.deployer, 9 * WETH)
    res = hedge.cycle(HEDGER_COOLDOWN="0")
    assert res.outcome == "acted", (res.decision.reason, res.error)
    assert_within_band(hedge, 6)
    # reducing the short came first; the excess collateral was withdrawn after it
    fns = [t.call.function for t in res.sent]
    assert fns[0] == "modifyPosition" and res.sent[0].call.risk_reducing
    assert 1.5 <= hedge.leverage() <= 3.0


def test_cooldown_holds_small_drift_then_acts(hedge: Hedge) -> None:
    hedge.cycle()
    # +7% spot: outside the 5% band but within twice it -> cooling down
    hedge.chain.mint_weth(hedge.address, 7 * WETH // 10)
    res = hedge.cycle()
    assert res.outcome == "held" and res.decision.code == "cooling_down", (res.decision.reason, res.error)
    hedge.chain.advance(901)
    hedge.chain.set_price(3000)
    res = hedge.cycle()
    assert res.outcome == "acted"
    assert_within_band(hedge, 10.7)


def test_cooldown_skipped_when_error_exceeds_twice_band(hedge: Hedge) -> None:
    hedge.cycle()
    hedge.chain.mint_weth(hedge.address, 2 * WETH)   # +20%
    res = hedge.cycle()
    assert res.outcome == "acted", (res.decision.reason, res.error)
    assert_within_band(hedge, 12)


def test_price_up_tops_up_collateral(hedge: Hedge) -> None:
    hedge.cycle()
    hedge.chain.set_price(4200)   # +40%: the short loses, leverage rises past 3x
    assert hedge.leverage() > 3.0
    res = hedge.cycle()
    assert res.outcome == "acted", (res.decision.reason, res.error)
    assert [t.call.function for t in res.sent][-1] == "transferMargin"
    assert res.sent[-1].call.args[0] > 0
    assert 1.5 <= hedge.leverage() <= 3.0
    assert abs(hedge.leverage() - 2.0) < 0.05


def test_price_down_withdraws_excess(hedge: Hedge) -> None:
    hedge.cycle()
    wallet0 = hedge.chain.usdc.functions.balanceOf(hedge.address).call()
    hedge.chain.set_price(1800)   # -40%: the short gains, leverage falls under 1.5x
    assert hedge.leverage() < 1.5
    res = hedge.cycle()
    assert res.outcome == "acted", (res.decision.reason, res.error)
    assert res.decision.code == "withdraw_excess"
    assert res.sent[-1].call.function == "transferMargin" and res.sent[-1].call.args[0] < 0
    assert hedge.chain.usdc.functions.balanceOf(hedge.address).call() > wallet0
    assert abs(hedge.leverage() - 2.0) < 0.05


def test_split_large_move_across_cycles(hedge: Hedge) -> None:
    res = hedge.cycle(HEDGER_MAX_TRADE_USD="12000")    # 4 ETH per cycle at 3000
    assert res.decision.code == "split"
    assert hedge.position()[0] == -4 * WETH
    res = hedge.cycle(HEDGER_MAX_TRADE_USD="12000")
    assert hedge.position()[0] == -8 * WETH
    res = hedge.cycle(HEDGER_MAX_TRADE_USD="12000")
    assert hedge.position()[0] == -10 * WETH, (res.decision.reason, res.error)  # never beyond the target
    assert hedge.cycle(HEDGER_MAX_TRADE_USD="12000").outcome == "held"


def test_collateral_short_limits_hedge_and_leverage(hedge: Hedge) -> None:
    # leave only 5,000 USDC in the wallet: 10 ETH at 3x needs 10,000
    hedge.chain.call_as(1, "ReferenceToken", hedge.chain.d.collateral, "transfer", hedge.chain.d.deployer,
                        45_000 * USDC)
    res = hedge.cycle()
    assert res.outcome == "acted"
    assert res.decision.code == "collateral_limited", (res.decision.reason, res.error)
    assert hedge.leverage() <= 3.0
    assert -10 * WETH < hedge.position()[0] < 0


def test_refuses_stale_feed_and_sends_nothing(hedge: Hedge) -> None:
    hedge.chain.advance(3601)
    n = hedge.nonce()
    res = hedge.cycle()
    assert res.outcome == "refused" and res.exit_code == 3
    assert res.decision.code in ("oracle_stale", "market_price_invalid")
    assert "stale" in res.error
    assert hedge.nonce() == n and not res.sent


def test_refuses_future_dated_round(hedge: Hedge) -> None:
    now = hedge.chain.now()
    hedge.chain.admin("PriceFeed", hedge.chain.d.oracle, "setRoundTimestamps", now + 600, now + 600)
    n = hedge.nonce()
    res = hedge.cycle()
    assert res.exit_code == 3 and res.decision.code == "oracle_future"
    assert hedge.nonce() == n


def test_refuses_with_sequencer_down_and_in_grace(hedge: Hedge) -> None:
    n = hedge.nonce()
    hedge.chain.admin("PriceFeed", hedge.chain.d.sequencer_feed, "setAnswer", 1)
    res = hedge.cycle()
    assert res.exit_code == 4 and res.decision.code == "sequencer_down"
    hedge.chain.admin("PriceFeed", hedge.chain.d.sequencer_feed, "setAnswer", 0)   # back up just now
    res = hedge.cycle(HEDGER_SEQUENCER_GRACE="3600")
    assert res.exit_code == 4 and res.decision.code == "sequencer_grace"
    assert hedge.nonce() == n
    hedge.chain.advance(3600)
    hedge.chain.set_price(3000)
    assert hedge.cycle(HEDGER_SEQUENCER_GRACE="3600").outcome == "acted"


def test_wrong_chain_id_refused(hedge: Hedge) -> None:
    from hedger.core.errors import ChainGuardError
    n = hedge.nonce()
    with pytest.raises(ChainGuardError, match="chain id 31337"):
        hedge.cycle(HEDGER_CHAIN_ID="1")
    assert hedge.nonce() == n


def test_address_without_code_refused(hedge: Hedge) -> None:
    from hedger.core.errors import ChainGuardError
    with pytest.raises(ChainGuardError, match="no contract there"):
        hedge.cycle(HEDGER_ORACLE="0x000000000000000000000000000000000000dEaD")


def test_dry_run_without_signer_sends_nothing(hedge: Hedge) -> None:
    env = dict(hedge.env)
    env.pop("HEDGER_PRIVATE_KEY")
    env["HEDGER_ACCOUNT"] = hedge.address
    from hedger.config import Settings
    from hedger.cycle.keeper import Keeper
    k = Keeper.from_settings(Settings.from_env(env))
    assert k.signer is None
    n = hedge.nonce()
    res = k.cycle()
    assert res.dry_run and res.outcome == "dry_run" and res.exit_code == 0
    assert [c.function for c in res.calls] == ["approve", "transferMargin", "modifyPosition"]
    assert hedge.nonce() == n and hedge.position() == (0, 0)


def test_simulation_failure_sends_nothing(hedge: Hedge) -> None:
    """A price move between reading and sending breaches the fill-price bound: nothing is sent."""
    hedge.chain.deposit(1, 20_000 * USDC)         # margin already there: the plan is one trade
    k = hedge.keeper()
    read = k.read

    def read_then_price_moves():          # the oracle moves 1% down after the read
        snap = read()
        hedge.chain.set_price(2970)
        return snap
    k.read = read_then_price_moves
    n = hedge.nonce()
    res = k.cycle()
    assert res.outcome == "failed" and res.exit_code == 6
    assert "fill price exceeds desired" in res.error and "nothing was sent" in res.error
    assert hedge.nonce() == n and hedge.position()[0] == 0


def test_failure_part_way_is_partial_and_safe(hedge: Hedge) -> None:
    """Deposit goes first and is mined; the trade then fails its bound: stop, report partial."""
    k = hedge.keeper()
    read = k.read

    def read_then_price_moves():
        snap = read()
        hedge.chain.set_price(2970)
        return snap
    k.read = read_then_price_moves
    res = k.cycle()
    assert res.outcome == "partial" and res.exit_code == 7
    assert "partial, safe" in res.error
    assert [t.call.function for t in res.sent] == ["approve", "transferMargin"]
    size, margin = hedge.position()
    assert size == 0 and margin > 0       # collateral posted, no risk added
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    assert j.cycles()[0]["outcome"] == "partial"


# ------------------------------------------------------------------ two-step orders

def test_delayed_order_not_duplicated_and_counted_once_filled(hedge: Hedge) -> None:
    env = {"HEDGER_ORDER_MODE": "delayed"}
    res = hedge.cycle(**env)
    assert res.outcome == "acted"
    assert [t.call.function for t in res.sent] == ["approve", "transferMargin", "submitDelayedOrder"]
    assert hedge.position()[0] == 0           # a mined submit is not a fill
    # the next cycle sees the pending order and does not submit another
    n = hedge.nonce()
    res = hedge.cycle(**env)
    assert res.outcome == "held" and res.decision.code == "order_pending"
    assert hedge.nonce() == n
    # too early for the protocol keeper
    assert hedge.fill_orders() == []
    hedge.chain.advance(15)
    assert len(hedge.fill_orders()) == 1
    assert_within_band(hedge, 10)
    res = hedge.cycle(**env)
    assert res.outcome == "held" and res.decision.code == "within_band", (res.decision.reason, res.error)


def test_expired_delayed_order_is_cancelled_then_resubmitted(hedge: Hedge) -> None:
    env = {"HEDGER_ORDER_MODE": "delayed"}
    hedge.cycle(**env)
    hedge.chain.advance(121)                  # nobody filled it: expired
    hedge.chain.set_price(3000)
    res = hedge.cycle(**env)
    assert res.decision.code == "cancel_expired_order"
    assert [t.call.function for t in res.sent] == ["cancelDelayedOrder"]
    assert hedge.chain.market.functions.delayedOrders(hedge.address).call()[0] == 0
    res = hedge.cycle(**env, HEDGER_COOLDOWN="0")
    assert [t.call.function for t in res.sent] == ["submitDelayedOrder"]
    hedge.chain.advance(15)
    hedge.fill_orders()
    assert_within_band(hedge, 10)


def test_cycle_journal_keys_and_reasons(hedge: Hedge) -> None:
    hedge.cycle()
    hedge.cycle()
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    rows = j.cycles()
    assert [r["outcome"] for r in rows] == ["held", "acted"]
    assert all(r["reason"] for r in rows)
    assert rows[0]["chain_id"] == 31337 and rows[0]["genesis_hash"].startswith("0x")
    assert rows[0]["account"] == hedge.address


def test_pending_order_does_not_block_a_top_up(hedge: Hedge) -> None:
    """A two-step order is pending when the price rallies 35%: the next cycle still tops the
    margin up (for the worse of before and after the fill), and sends no second order."""
    env = {"HEDGER_ORDER_MODE": "delayed", "HEDGER_COOLDOWN": "0"}
    hedge.cycle(**env)
    hedge.chain.advance(15)
    assert len(hedge.fill_orders()) == 1
    assert_within_band(hedge, 10)
    hedge.chain.mint_weth(hedge.address, 2 * WETH)            # exposure 12: grow the short by 2
    res = hedge.cycle(**env)
    assert [t.call.function for t in res.sent][-1] == "submitDelayedOrder", (res.decision.reason, res.error)
    order = hedge.chain.market.functions.delayedOrders(hedge.address).call()
    assert order[0] == -2 * WETH
    hedge.chain.set_price(4050)                               # +35% while the order waits
    assert hedge.leverage() > 3.0
    res = hedge.cycle(**env)
    assert res.outcome == "acted" and res.decision.code == "top_up_pending", (res.decision.reason, res.error)
    assert [t.call.function for t in res.sent] == ["approve", "transferMargin"]
    assert res.sent[-1].call.args[0] > 0 and res.sent[-1].call.risk_reducing
    assert 1.5 <= hedge.leverage() <= 3.0                     # restored within the band as it stands
    # the order is still the only one, untouched
    assert hedge.chain.market.functions.delayedOrders(hedge.address).call() == order
    # and once it fills, the bigger short is within the band too
    hedge.chain.advance(15)
    assert len(hedge.fill_orders()) == 1
    assert_within_band(hedge, 12)
    assert 1.5 <= hedge.leverage() <= 3.0


def test_close_then_withdraw_survives_an_adverse_tick(hedge: Hedge) -> None:
    """The spot is gone: close the short. The price ticks against the close between reading and
    sending (within the slippage bound): the close goes through, and the withdrawal, in the next
    cycle, takes what the market says is withdrawable."""
    hedge.cycle()
    wallet0 = hedge.chain.usdc.functions.balanceOf(hedge.address).call()
    hedge.chain.call_as(1, "ReferenceToken", hedge.chain.d.spot, "transfer", hedge.chain.d.deployer, 10 * WETH)
    k = hedge.keeper(HEDGER_COOLDOWN="0")
    read = k.read

    def read_then_tick():                # +0.4% against the buy-back, inside the 0.5% bound
        snap = read()
        hedge.chain.set_price(3012)
        return snap
    k.read = read_then_tick
    res = k.cycle()
    assert res.outcome == "acted" and res.exit_code == 0, (res.decision.reason, res.error)
    assert [t.call.function for t in res.sent] == ["modifyPosition"]
    size, margin = hedge.position()
    assert size == 0 and margin > 14_000 * 10**18
    res = hedge.cycle(HEDGER_COOLDOWN="0")
    assert res.outcome == "acted" and res.decision.code == "withdraw_excess", (res.decision.reason, res.error)
    assert [t.call.function for t in res.sent] == ["transferMargin"] and res.sent[0].call.args[0] < 0
    assert hedge.position()[1] < 10**12                       # less than one USDC unit left
    assert hedge.chain.usdc.functions.balanceOf(hedge.address).call() - wallet0 == margin // 10**12


def test_flip_from_short_to_long_closes_then_opens(hedge: Hedge) -> None:
    """The holder turns net short spot (10 in the wallet, 18 short elsewhere): the short of 10
    becomes a long of 8, as two trades: the close (risk-reducing), then the long."""
    hedge.cycle()
    res = hedge.cycle(HEDGER_EXTRA_EXPOSURE="-18", HEDGER_COOLDOWN="0")
    assert res.outcome == "acted", (res.decision.reason, res.error)
    trades = [(t.call.args[0], t.call.risk_reducing) for t in res.sent if t.call.function == "modifyPosition"]
    assert trades == [(10 * WETH, True), (8 * WETH, False)]
    assert hedge.position()[0] == 8 * WETH
    assert 1.5 <= hedge.leverage() <= 3.0
