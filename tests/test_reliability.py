"""Keeper-grade execution: faults a keeper meets in production, on a real local chain.
docs/RELIABILITY.md lists every fault tried here, what the hedger does, and the test."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from eth_abi import encode
from hypothesis import given, settings
from hypothesis import strategies as st
from web3 import Web3

from hedger.sim.deploy import MarketParams, deploy_contract
from hedger.chain.executor import GWEI, bump_fee, decode_revert_data
from hedger.state.journal import Journal
from hedger.state.lock import AccountLock
from hedger.sim.localchain import dev_account, start_anvil
from tests.conftest import USDC, WETH, Hedge
from tests.test_cli import BIN, run

# ------------------------------------------------------------------ pure pieces

def test_bump_rule_examples() -> None:
    assert bump_fee(100 * GWEI) == 112_500_000_000          # +12.5%
    assert bump_fee(1) == GWEI + 1                          # at least +1 gwei
    assert bump_fee(8 * GWEI + 1) == 9 * GWEI + 2           # 12.5% rounded up
    assert bump_fee(0) == GWEI


@given(st.integers(min_value=0, max_value=10**16))
@settings(max_examples=300, deadline=None)
def test_bump_always_satisfies_geths_replacement_rule(fee: int) -> None:
    new = bump_fee(fee)
    assert new * 100 >= fee * 110          # geth: +10% at least
    assert new * 8 >= fee * 9              # ours: +12.5%, rounded up
    assert new - fee >= GWEI


def test_revert_decoding_strings_panics_and_custom_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    err = bytes.fromhex("08c379a0") + encode(["string"], ["fill price exceeds desired"])
    assert decode_revert_data(err) == "fill price exceeds desired"
    assert decode_revert_data("0x" + err.hex()) == "fill price exceeds desired"
    panic = bytes.fromhex("4e487b71") + encode(["uint256"], [0x11])
    assert decode_revert_data(panic) == "panic 0x11: arithmetic overflow"
    sel = bytes(Web3.keccak(text="InsufficientMargin(uint256,uint256)")[:4])
    import hedger.chain.executor as ex
    monkeypatch.setattr(ex, "_custom_errors", lambda: {sel: ("InsufficientMargin", ["uint256", "uint256"])})
    assert decode_revert_data(sel + encode(["uint256", "uint256"], [5, 7])) == "InsufficientMargin(5, 7)"
    assert decode_revert_data(bytes.fromhex("deadbeef")) == "custom error 0xdeadbeef"
    assert decode_revert_data(b"") == "reverted without a reason"


# ------------------------------------------------------------------ gas

def set_base_fee(h: Hedge, gwei: int) -> None:
    """Make the latest block's base fee ``gwei`` (the next block's is set, then a block is mined)."""
    h.chain.w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(gwei * GWEI)])
    h.chain.w3.provider.make_request("evm_mine", [])


def test_gas_spike_holds_a_new_short_and_its_collateral(hedge: Hedge) -> None:
    """Collateral that only funds a new short is not risk-reducing (issue 9): at a gas spike it
    waits with the short instead of going at up to the emergency ceiling."""
    set_base_fee(hedge, 100)
    n = hedge.nonce()
    res = hedge.cycle(HEDGER_MAX_FEE_GWEI="50", HEDGER_EMERGENCY_MAX_FEE_GWEI="1000")
    assert res.outcome == "held_gas" and res.exit_code == 0, res.error
    assert "held" in res.error and "ceiling" in res.error
    assert res.sent == [] and hedge.nonce() == n and hedge.position() == (0, 0)
    set_base_fee(hedge, 10)
    res = hedge.cycle(HEDGER_MAX_FEE_GWEI="50", HEDGER_COOLDOWN="0")
    assert res.outcome == "acted" and [t.call.function for t in res.sent] == ["approve", "transferMargin",
                                                                              "modifyPosition"]


def test_gas_spike_still_sends_needed_top_up(hedge: Hedge) -> None:
    hedge.cycle()
    hedge.chain.set_price(4200)
    set_base_fee(hedge, 300)
    res = hedge.cycle(HEDGER_MAX_FEE_GWEI="50", HEDGER_EMERGENCY_MAX_FEE_GWEI="1000")
    assert res.outcome == "acted", res.error
    assert res.sent[-1].call.function == "transferMargin" and res.sent[-1].call.args[0] > 0
    assert 1.5 <= hedge.leverage() <= 3.0


def test_gas_above_emergency_ceiling_blocks_top_up_with_alarm(hedge: Hedge) -> None:
    hedge.cycle()
    hedge.chain.set_price(4200)
    set_base_fee(hedge, 3000)
    n = hedge.nonce()
    res = hedge.cycle(HEDGER_MAX_FEE_GWEI="50", HEDGER_EMERGENCY_MAX_FEE_GWEI="2000")
    assert res.outcome == "gas_too_high" and res.exit_code == 10
    assert "emergency ceiling" in res.error and "nothing was sent" in res.error
    assert hedge.nonce() == n


# ------------------------------------------------------------------ caps and approvals

def test_action_notional_cap_refuses_whole_plan(hedge: Hedge) -> None:
    n = hedge.nonce()
    res = hedge.cycle(HEDGER_MAX_ACTION_USD="10000")
    assert res.outcome == "failed" and res.exit_code == 6
    assert "HEDGER_MAX_ACTION_USD" in res.error and "nothing was sent" in res.error
    assert hedge.nonce() == n


def test_a_dry_run_says_the_cap_would_refuse_the_plan(hedge: Hedge) -> None:
    """`run-once --dry-run` listed a plan above HEDGER_MAX_ACTION_USD as if it would be sent (outcome
    dry_run, no word of the cap), while the real run refuses it whole (exit 6): the dry run now says so."""
    n = hedge.nonce()
    res = hedge.keeper(HEDGER_MAX_ACTION_USD="10000").cycle(dry_run=True)
    assert res.outcome == "dry_run" and res.exit_code == 0 and res.calls
    assert res.error and "would refuse" in res.error and "HEDGER_MAX_ACTION_USD" in res.error
    assert hedge.nonce() == n
    assert hedge.keeper().cycle(dry_run=True).error is None        # under the default cap: no such note


def test_unlimited_approval_only_when_configured(hedge: Hedge) -> None:
    res = hedge.cycle(HEDGER_UNLIMITED_APPROVAL="true")
    assert res.sent[0].call.function == "approve" and res.sent[0].call.args[1] == 2**256 - 1
    allowance = hedge.chain.usdc.functions.allowance(hedge.address, hedge.chain.d.market).call()
    assert allowance == 2**256 - 1


# ------------------------------------------------------------------ price sanity

def _second_feed(h: Hedge, price_usd: int) -> str:
    feed = deploy_contract(h.chain.deployer, "PriceFeed", 8, "ETH / USD (second)", 1)
    h.chain.admin("PriceFeed", feed, "setAnswer", price_usd * 10**8)
    return feed


def test_second_feed_disagreeing_refuses_risk_increasing(hedge: Hedge) -> None:
    feed = _second_feed(hedge, 3100)     # 3.3% above the oracle
    n = hedge.nonce()
    res = hedge.cycle(HEDGER_SECOND_ORACLE=feed)
    assert res.outcome == "held" and res.decision.code == "price_divergence", res.decision.reason
    assert "disagree" in res.decision.reason and hedge.nonce() == n
    # within 2%: it hedges
    hedge.chain.admin("PriceFeed", feed, "setAnswer", 3030 * 10**8)
    assert hedge.cycle(HEDGER_SECOND_ORACLE=feed).outcome == "acted"


def test_divergence_still_allows_needed_top_up(hedge: Hedge) -> None:
    feed = _second_feed(hedge, 3000)
    hedge.cycle(HEDGER_SECOND_ORACLE=feed)
    hedge.chain.set_price(4200)                   # the oracle moves, the second feed does not
    res = hedge.cycle(HEDGER_SECOND_ORACLE=feed)
    assert res.outcome == "acted"
    assert [t.call.function for t in res.sent][-1] == "transferMargin" and res.sent[-1].call.args[0] > 0


def test_stale_second_feed_counts_as_doubt(hedge: Hedge) -> None:
    feed = _second_feed(hedge, 3000)
    now = hedge.chain.now()
    hedge.chain.admin("PriceFeed", feed, "setRoundTimestamps", now - 7200, now - 7200)
    res = hedge.cycle(HEDGER_SECOND_ORACLE=feed)
    assert res.decision.code == "price_divergence" and "unusable" in res.decision.reason


def test_market_reading_a_diverging_feed_is_the_second_source(hedge: Hedge, tmp_path: Path) -> None:
    c = hedge.chain
    other_feed = _second_feed(hedge, 3200)
    market2 = deploy_contract(c.deployer, "PerpMarket", c.d.collateral, other_feed, MarketParams().as_tuple())
    c.mint_usdc(market2, 1_000_000 * USDC)
    res = hedge.cycle(HEDGER_MARKET=market2)
    assert res.decision.code == "price_divergence" and f"market feed {other_feed}" in res.decision.reason
    p = run([str(BIN / "hedger"), "status"], {**hedge.env, "HEDGER_MARKET": market2}, cwd=tmp_path)
    assert f"from market feed {other_feed}" in p.stdout


def test_status_says_plainly_when_no_second_source(hedge: Hedge, tmp_path: Path) -> None:
    p = run([str(BIN / "hedger"), "status"], hedge.env, cwd=tmp_path)
    assert "NONE: no independent second price source is configured" in p.stdout
    d = json.loads(run([str(BIN / "hedger"), "status", "--json"], hedge.env, cwd=tmp_path).stdout)
    assert d["second_price_source"] == "none"


# ------------------------------------------------------------------ overlapping runs

def test_second_run_refuses_while_lock_held(hedge: Hedge, tmp_path: Path) -> None:
    k = hedge.keeper()
    with k.lock():
        p = run([str(BIN / "hedger"), "run-once"], hedge.env, cwd=tmp_path)
    assert p.returncode == 11
    assert "another hedger holds the lock" in p.stderr and f"pid {os.getpid()}" in p.stderr
    assert hedge.position() == (0, 0)


def test_two_cron_runs_at_once_hedge_once(hedge: Hedge, tmp_path: Path) -> None:
    procs = [subprocess.Popen([str(BIN / "hedger"), "run-once"], cwd=tmp_path, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**os.environ, **hedge.env}) for _ in range(2)]
    outs = [(*p.communicate(timeout=120), p.returncode) for p in procs]
    codes = sorted(o[2] for o in outs)
    assert codes in ([0, 0], [0, 11]), outs
    assert hedge.position()[0] == -10 * WETH     # never -20


# ------------------------------------------------------------------ kill -9 and restart

@pytest.mark.parametrize("point", ["after_sign", "after_broadcast", "after_receipt",
                                   "after_sign:3", "after_broadcast:3", "after_receipt:3"])
def test_kill_9_at_any_point_then_restart_hedges_once(hedge: Hedge, tmp_path: Path, point: str) -> None:
    env = dict(hedge.env)
    p = run([str(BIN / "hedger"), "run-once"], {**env, "HEDGER_FAULT_KILL_AT": point}, cwd=tmp_path)
    assert p.returncode == -9, (p.returncode, p.stderr)       # really killed
    j = Journal(env["HEDGER_JOURNAL_PATH"])
    assert j.cycles()[0]["outcome"] == "started"               # it died mid-cycle
    p = run([str(BIN / "hedger"), "run-once"], env, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "reconciled:" in p.stdout
    assert hedge.position()[0] == -10 * WETH                   # hedged once, not twice
    assert 1.5 <= hedge.leverage() <= 3.0
    rows = j.cycles()
    assert rows[1]["outcome"] == "interrupted"
    states = [t["state"] for t in j.txs(rows[1]["id"])]
    assert "signed" not in states                               # every tx of the dead run is resolved
    # and a third run holds
    p = run([str(BIN / "hedger"), "run-once", "--json"], env, cwd=tmp_path)
    assert json.loads(p.stdout)["outcome"] == "held"


def test_kill_9_while_tx_pending_then_restart_waits_for_it(hedge: Hedge, tmp_path: Path) -> None:
    """automine off: the process is killed with its trade in the mempool; the restart waits for it."""
    w3 = hedge.chain.w3
    hedge.chain.deposit(1, 20_000 * USDC)      # the plan is then a single trade
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        proc = subprocess.Popen([str(BIN / "hedger"), "run-once"], cwd=tmp_path, env={**os.environ, **hedge.env},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
        deadline = time.time() + 60
        tx_hash = None
        while time.time() < deadline and tx_hash is None:
            rows = j.db.execute("SELECT tx_hash FROM txs").fetchall()
            for r in rows:
                try:
                    if w3.eth.get_transaction(r["tx_hash"]):
                        tx_hash = r["tx_hash"]
                except Exception:
                    pass
            time.sleep(0.05)
        assert tx_hash, "the trade never reached the mempool"
        proc.kill()                               # SIGKILL between broadcast and receipt
        proc.wait()
        # restart through a counting proxy; mine only once the restarted run has found the
        # transaction pending (it asks for it by hash), so the run must really wait for it
        with FaultProxy(hedge.chain.anvil.url) as proxy:
            def mine_when_watched() -> None:
                deadline = time.time() + 60
                while proxy.calls["eth_getTransactionByHash"] < 1 and time.time() < deadline:
                    time.sleep(0.05)
                time.sleep(0.3)
                w3.provider.make_request("evm_mine", [])
            miner = threading.Thread(target=mine_when_watched, daemon=True)
            miner.start()
            p = run([str(BIN / "hedger"), "run-once"], {**hedge.env, "HEDGER_RPC_URL": proxy.url()}, cwd=tmp_path)
            miner.join()
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "was pending; waited for it" in p.stdout
    assert hedge.position()[0] == -10 * WETH


# ------------------------------------------------------------------ nonce and chain identity

def test_other_transactions_from_same_account_do_not_break_nonces(hedge: Hedge) -> None:
    k = hedge.keeper()
    k.cycle()
    # the operator sends something by hand from the same account, twice
    for _ in range(2):
        hedge.chain.call_as(1, "ReferenceToken", hedge.chain.d.spot, "transfer", hedge.chain.d.deployer, WETH)
    res = hedge.keeper(HEDGER_COOLDOWN="0").cycle()
    assert res.outcome == "acted", res.error
    assert hedge.position()[0] == -8 * WETH
    # and the same Keeper object (its nonce memory) keeps working after outside transactions
    hedge.chain.mint_weth(hedge.address, 2 * WETH)
    hedge.chain.call_as(1, "ReferenceToken", hedge.chain.d.spot, "transfer", hedge.chain.d.deployer, 1)
    hedge.chain.advance(1000)
    hedge.chain.set_price(3000)
    res = k.cycle()
    assert res.outcome == "acted", res.error


def test_restarted_local_chain_is_a_new_chain_not_a_corrupt_journal(tmp_path: Path) -> None:
    """Same chain id, nonce back at 0, same contract addresses: the journal keys by genesis hash."""
    from hedger.config import Settings
    from hedger.sim.deploy import deploy_reference, transact
    from hedger.chain.executor import KeySigner, TxSender
    from hedger.core.secrets import Secret
    from hedger.cycle.keeper import Keeper
    journal = tmp_path / "j.sqlite"
    results = []
    for i in range(2):
        # the second start is "later": anvil dates its genesis block with the start time
        with start_anvil(extra=["--timestamp", str(int(time.time()) + 3600 * i)]) as node:
            w3 = Web3(Web3.HTTPProvider(node.url))
            dep = TxSender(w3, KeySigner(Secret(dev_account(0).key.hex())))
            d = deploy_reference(dep)
            u = dev_account(1)
            transact(dep, "ReferenceToken", d.spot, "mint", u.address, 10 * WETH)
            transact(dep, "ReferenceToken", d.collateral, "mint", u.address, 50_000 * USDC)
            env = {"HEDGER_RPC_URL": node.url, "HEDGER_PRIVATE_KEY": u.key.hex(), "HEDGER_MARKET": d.market,
                   "HEDGER_ORACLE": d.oracle, "HEDGER_SPOT_TOKEN": d.spot, "HEDGER_COLLATERAL_TOKEN": d.collateral,
                   "HEDGER_JOURNAL_PATH": str(journal)}
            k = Keeper.from_settings(Settings.from_env(env))
            results.append((k.cycle(), k.read().chain.genesis_hash, d.market))
    (r1, g1, m1), (r2, g2, m2) = results
    assert m1 == m2 and g1 != g2
    assert r1.outcome == "acted" and r2.outcome == "acted"   # no cooldown or loose end carried over
    assert r2.sent[0].nonce == 0


# ------------------------------------------------------------------ through a faulty RPC

from tests.rpcproxy import FaultProxy  # noqa: E402


def via(proxy: FaultProxy, hedge: Hedge, **extra: str) -> dict[str, str]:
    return {**hedge.env, "HEDGER_RPC_URL": proxy.url(), "HEDGER_RPC_TIMEOUT": "2", **extra}


@pytest.mark.parametrize("fault", ["timeout", "http_error", "malformed", "truncated_batch"])
def test_transient_read_fault_is_retried(hedge: Hedge, fault: str) -> None:
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        getattr(proxy, fault)(**({"seconds": 3} if fault == "timeout" else {}), methods="eth_call")
        res = hedge.keeper(**via(proxy, hedge)).cycle()
        assert proxy.applied and proxy.applied[0][0] == fault
    assert res.outcome == "acted", res.error
    assert hedge.position()[0] == -10 * WETH


@pytest.mark.parametrize("fault", ["timeout", "http_error", "malformed"])
def test_persistent_read_fault_refuses_with_exit_8_and_sends_nothing(hedge: Hedge, tmp_path: Path,
                                                                      fault: str) -> None:
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        getattr(proxy, fault)(count=50, **({"seconds": 3} if fault == "timeout" else {}))
        n = hedge.nonce()
        p = run([str(BIN / "hedger"), "run-once"], via(proxy, hedge), cwd=tmp_path, timeout=120)
    assert p.returncode == 8, p.stdout + p.stderr
    assert "RpcError" in p.stderr
    assert hedge.nonce() == n and hedge.position() == (0, 0)


def test_latency_is_tolerated(hedge: Hedge) -> None:
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        proxy.latency(0.5, count=20)
        t0 = time.monotonic()
        res = hedge.keeper(**via(proxy, hedge)).cycle()
        assert time.monotonic() - t0 >= 0.5
    assert res.outcome == "acted"


def test_lost_answer_to_broadcast_is_watched_not_resent(hedge: Hedge) -> None:
    """The node got the trade but the answer timed out: the hash is watched, nothing sent twice."""
    hedge.chain.deposit(1, 20_000 * USDC)
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        proxy.timeout(seconds=3, methods="eth_sendRawTransaction", forward=True)
        res = hedge.keeper(**via(proxy, hedge)).cycle()
        sends = proxy.calls["eth_sendRawTransaction"]
    assert res.outcome == "acted", res.error
    assert sends == 1
    assert hedge.position()[0] == -10 * WETH


def test_receipt_poll_errors_are_ridden_out(hedge: Hedge) -> None:
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        proxy.http_error(count=3, methods="eth_getTransactionReceipt")
        res = hedge.keeper(**via(proxy, hedge)).cycle()
    assert res.outcome == "acted", res.error
    assert hedge.position()[0] == -10 * WETH


def test_dropped_transaction_is_noticed_and_sent_again(hedge: Hedge) -> None:
    hedge.chain.deposit(1, 20_000 * USDC)
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        proxy.drop_tx(1)
        res = hedge.keeper(**via(proxy, hedge, HEDGER_REPLACE_AFTER="1")).cycle()
        assert len(proxy.dropped) == 1
    assert res.outcome == "acted", res.error
    assert hedge.position()[0] == -10 * WETH


def test_stuck_transaction_is_replaced_under_geths_rule(hedge: Hedge) -> None:
    """automine off: the trade sits in the mempool; after HEDGER_REPLACE_AFTER it is replaced at
    the same nonce with both fees +12.5%; the proxy refuses anything geth would refuse."""
    w3 = hedge.chain.w3
    hedge.chain.deposit(1, 20_000 * USDC)
    with FaultProxy(hedge.chain.anvil.url, enforce_geth_replacement=True) as proxy:
        w3.provider.make_request("evm_setAutomine", [False])
        try:
            def mine_after_replacement() -> None:
                deadline = time.time() + 60
                while proxy.calls["eth_sendRawTransaction"] < 2 and time.time() < deadline:
                    time.sleep(0.05)
                w3.provider.make_request("evm_mine", [])
            miner = threading.Thread(target=mine_after_replacement, daemon=True)
            miner.start()
            res = hedge.keeper(**via(proxy, hedge, HEDGER_REPLACE_AFTER="1")).cycle()
            miner.join()
        finally:
            w3.provider.make_request("evm_setAutomine", [True])
        assert proxy.rejected == []                      # every replacement met geth's rule
    assert res.outcome == "acted", res.error
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    txs = j.txs(j.cycles()[0]["id"])
    assert len({t["nonce"] for t in txs}) == 1 and len(txs) >= 2
    states = [t["state"] for t in txs]
    assert states.count("mined") == 1 and "replaced" in states
    fields = [json.loads(t["fields"]) for t in txs]
    assert int(fields[1]["maxFeePerGas"]) * 8 >= int(fields[0]["maxFeePerGas"]) * 9
    assert int(fields[1]["maxPriorityFeePerGas"]) * 8 >= int(fields[0]["maxPriorityFeePerGas"]) * 9
    assert hedge.position()[0] == -10 * WETH


def test_underpriced_replacement_refused_by_geth_rule_proxy(hedge: Hedge) -> None:
    """The proxy really enforces the rule: a +5% replacement that anvil alone accepts is refused."""
    from hedger.chain.executor import KeySigner
    from hedger.core.secrets import Secret
    w3 = hedge.chain.w3
    signer = KeySigner(Secret(dev_account(7).key.hex()))
    nonce = w3.eth.get_transaction_count(signer.address)
    base = {"chainId": 31337, "nonce": nonce, "gas": 21000, "to": signer.address, "value": 0, "data": "0x",
            "type": 2}
    with FaultProxy(hedge.chain.anvil.url, enforce_geth_replacement=True) as proxy:
        pw3 = Web3(Web3.HTTPProvider(proxy.url()))
        w3.provider.make_request("evm_setAutomine", [False])
        try:
            pw3.eth.send_raw_transaction(signer.sign_transaction({**base, "maxFeePerGas": 100 * GWEI,
                                                                  "maxPriorityFeePerGas": 2 * GWEI}))
            with pytest.raises(Exception, match="replacement transaction underpriced"):
                pw3.eth.send_raw_transaction(signer.sign_transaction({**base, "maxFeePerGas": 105 * GWEI,
                                                                      "maxPriorityFeePerGas": 2_100_000_000}))
            pw3.eth.send_raw_transaction(signer.sign_transaction({**base, "maxFeePerGas": bump_fee(100 * GWEI),
                                                                  "maxPriorityFeePerGas": bump_fee(2 * GWEI)}))
        finally:
            w3.provider.make_request("evm_setAutomine", [True])


# ------------------------------------------------------------------ collateral token faults (USDC)

def test_paused_collateral_deleverages_instead_of_a_top_up(hedge: Hedge, tmp_path: Path) -> None:
    hedge.cycle()
    hedge.chain.set_price(4000)                         # leverage 8x: a top-up is needed...
    hedge.chain.admin("ReferenceToken", hedge.chain.d.collateral, "pause")   # ...but USDC is paused
    res = hedge.cycle()
    assert res.outcome == "acted", res.error
    assert "paused" in res.decision.reason and res.decision.code == "deleverage"
    assert [t.call.function for t in res.sent] == ["modifyPosition"]   # no transfer attempted
    assert hedge.leverage() <= 3.0
    p = run([str(BIN / "hedger"), "status"], hedge.env, cwd=tmp_path)
    assert "THE COLLATERAL TOKEN IS PAUSED" in p.stdout


def test_blacklisted_account_never_withdraws(hedge: Hedge) -> None:
    hedge.cycle()
    hedge.chain.set_price(1800)                         # excess margin: normally withdrawn
    hedge.chain.admin("ReferenceToken", hedge.chain.d.collateral, "blacklist", hedge.address)
    res = hedge.cycle()
    assert res.outcome == "held", (res.decision.reason, res.error)
    assert "blacklists the hedged account" in res.decision.reason
    assert not res.calls
    size, margin = hedge.position()
    assert margin > 0 and size == -10 * WETH            # margin stays in the market, not stranded


def test_blacklisted_market_blocks_deposits_clearly(hedge: Hedge) -> None:
    hedge.chain.admin("ReferenceToken", hedge.chain.d.collateral, "blacklist", hedge.chain.d.market)
    n = hedge.nonce()
    res = hedge.cycle()
    assert res.outcome == "held" and res.decision.code == "collateral_short", res.decision.reason
    assert "blacklists the market" in res.decision.reason
    assert hedge.nonce() == n


# ------------------------------------------------------------------ journal against chain state

def test_reconcile_tracks_two_step_orders_in_journal_and_on_chain(hedge: Hedge) -> None:
    env = {"HEDGER_ORDER_MODE": "delayed"}
    hedge.cycle(**env)
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    orders = j.db.execute("SELECT * FROM orders").fetchall()
    assert len(orders) == 1 and orders[0]["state"] == "pending" and int(orders[0]["size_delta"]) == -10 * WETH
    hedge.chain.advance(15)
    hedge.fill_orders()
    res = hedge.cycle(**env)
    assert any("was filled" in n for n in res.notes), res.notes
    assert j.db.execute("SELECT state FROM orders").fetchone()["state"] == "executed"
    assert not any("outside the hedger" in n for n in res.notes)


def test_reconcile_notices_an_order_cancelled_by_someone_else(hedge: Hedge) -> None:
    env = {"HEDGER_ORDER_MODE": "delayed"}
    hedge.cycle(**env)
    hedge.chain.advance(121)
    hedge.chain.call_as(2, "PerpMarket", hedge.chain.d.market, "cancelDelayedOrder", hedge.address)
    hedge.chain.set_price(3000)
    res = hedge.cycle(**env, HEDGER_COOLDOWN="0")
    assert any("gone unfilled" in n for n in res.notes), res.notes
    assert [t.call.function for t in res.sent] == ["submitDelayedOrder"]   # re-submitted, once


def test_a_transaction_sent_outside_is_noted_once(hedge: Hedge) -> None:
    """A transaction the operator sent from the account was noted by every cycle after it ("1
    transaction(s) were sent from this account outside the hedger since its last one"), in every
    `watch` log line, until the hedger itself next sent one; it is noted by the first cycle that sees it."""
    hedge.cycle()
    hedge.chain.call_as(1, "ReferenceToken", hedge.chain.d.spot, "approve", hedge.chain.d.market, 1)
    outside = "sent from this account outside the hedger"
    first, second = hedge.cycle(), hedge.cycle()
    assert not first.sent and not second.sent                      # held: the hedger sent nothing since
    assert any(outside in n and n.startswith("1 ") for n in first.notes), first.notes
    assert not any(outside in n for n in second.notes), second.notes
    hedge.chain.call_as(1, "ReferenceToken", hedge.chain.d.spot, "approve", hedge.chain.d.market, 2)
    assert any(outside in n and n.startswith("1 ") for n in hedge.cycle().notes)   # a new one is noted again


def test_reconcile_notices_position_and_nonce_changed_outside(hedge: Hedge) -> None:
    hedge.cycle()
    # the operator trades by hand from the same account
    hedge.chain.trade(1, 2 * WETH)
    res = hedge.cycle()
    assert any("changed outside the hedger" in n for n in res.notes), res.notes
    assert any("sent from this account outside the hedger" in n for n in res.notes), res.notes
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    assert "outside the hedger" in j.cycles()[0]["notes"]
    assert_short = hedge.position()[0]
    assert -10.5 * WETH <= assert_short <= -9.5 * WETH     # and the hedge was restored
