"""A restart never sends the same trade twice.

An earlier run signed a trade (journaled with its raw bytes) and died before the broadcast,
or the node it used lost the transaction. The node the next run asks may not know it while
another backend of the same RPC (or a private relay) mines it. The next run must broadcast
the journaled bytes again (the same nonce: never a second trade), cancel the nonce after
HEDGER_MAX_REBROADCASTS attempts, and plan only once that nonce is mined; and a fresh send
answered "nonce too low" ends the cycle instead of signing the call again at the next nonce.

The fault proxy (tests/rpcproxy.py) plays the backend that does not see the transaction;
sending the raw bytes straight to anvil plays the backend that mines it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hedger.state.journal import CANCEL_FUNCTION, Journal
from tests.conftest import USDC, WETH, Hedge
from tests.rpcproxy import FaultProxy
from tests.test_cli import BIN, run


def via(proxy: FaultProxy, hedge: Hedge, **extra: str) -> dict[str, str]:
    return {**hedge.env, "HEDGER_RPC_URL": proxy.url(), "HEDGER_RPC_TIMEOUT": "5", **extra}


def killed_after_signing_the_trade(hedge: Hedge, tmp_path: Path) -> tuple[Journal, Any]:
    """A run that signed (and journaled) its trade, then died before broadcasting it. The price
    then moves a little (within the trade's slippage bound): a re-planned trade would not be
    byte-identical to the journaled one."""
    hedge.chain.deposit(1, 20_000 * USDC)          # the plan is then a single trade
    p = run([str(BIN / "hedger"), "run-once"], {**hedge.env, "HEDGER_FAULT_KILL_AT": "after_sign"}, cwd=tmp_path)
    assert p.returncode == -9, (p.returncode, p.stderr)
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    rows = j.db.execute("SELECT * FROM txs WHERE state='signed'").fetchall()
    assert len(rows) == 1 and rows[0]["function"] == "modifyPosition" and rows[0]["raw"]
    assert hedge.position()[0] == 0
    hedge.chain.set_price(3001)
    return j, rows[0]


def tx_row(j: Journal, tx_hash: str) -> Any:
    return j.db.execute("SELECT * FROM txs WHERE tx_hash=?", (tx_hash,)).fetchone()


def send_direct(hedge: Hedge, raw: str) -> dict[str, Any]:
    """The other backend: the node itself, not through the proxy."""
    return hedge.chain.w3.provider.make_request("eth_sendRawTransaction", [raw])


def test_trade_mined_by_another_backend_is_not_traded_again(hedge: Hedge, tmp_path: Path) -> None:
    """The proxied backend never sees the journaled trade (its broadcasts are swallowed, lookups
    answer null for a while) while the other backend mines it during the restart. Before the fix
    the restart marked it dropped, re-planned the same trade at the same nonce, got "nonce too
    low" and signed it again at the next nonce: a short of 20 instead of 10."""
    j, row = killed_after_signing_the_trade(hedge, tmp_path)
    h, raw = row["tx_hash"], row["raw"]
    n = hedge.nonce()
    other_backend: list[dict[str, Any]] = []
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        proxy.hide(h, lookups=3)
        proxy.blackhole(h)

        def mine_elsewhere_first(_raw: str) -> None:
            if not other_backend:
                other_backend.append(send_direct(hedge, raw))
        proxy.on_raw_tx = mine_elsewhere_first
        p = run([str(BIN / "hedger"), "run-once", "--json"], via(proxy, hedge), cwd=tmp_path)
        broadcasts = proxy.calls["eth_sendRawTransaction"]
    assert other_backend and "result" in other_backend[0], other_backend
    assert p.returncode == 0, p.stdout + p.stderr
    assert hedge.position()[0] == -10 * WETH             # once, not twice
    assert hedge.nonce() == n + 1
    assert broadcasts == 1                                # the journaled bytes, nothing signed anew
    assert tx_row(j, h)["state"] == "mined"
    out = json.loads(p.stdout)
    assert out["outcome"] == "held" and out["txs"] == []
    assert any(h in note and "mined" in note for note in out["notes"]), out["notes"]


def test_journaled_trade_unknown_to_the_node_is_broadcast_again_and_lands(hedge: Hedge, tmp_path: Path) -> None:
    j, row = killed_after_signing_the_trade(hedge, tmp_path)
    h = row["tx_hash"]
    seen: list[str] = []
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        proxy.on_raw_tx = seen.append
        p = run([str(BIN / "hedger"), "run-once", "--json"], via(proxy, hedge), cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert seen == [row["raw"]]                           # exactly the journaled bytes, once
    assert hedge.position()[0] == -10 * WETH
    r = tx_row(j, h)
    assert r["state"] == "mined" and r["rebroadcasts"] == 1 and r["block_hash"]
    out = json.loads(p.stdout)
    assert out["outcome"] == "held" and out["txs"] == []
    assert any("broadcast again from the journal" in note for note in out["notes"]), out["notes"]


def test_nonce_in_doubt_is_cancelled_after_the_allowed_rebroadcasts(hedge: Hedge, tmp_path: Path) -> None:
    """The node never takes the journaled trade: each run broadcasts it again (counted in the
    journal) and stops without planning; once HEDGER_MAX_REBROADCASTS is reached the nonce is
    taken by a zero-value transfer to ourselves at fees geth accepts as a replacement, and only
    then is the trade planned (at the next nonce)."""
    j, row = killed_after_signing_the_trade(hedge, tmp_path)
    h = row["tx_hash"]
    n = hedge.nonce()
    assert row["nonce"] == n
    env_extra = {"HEDGER_MAX_REBROADCASTS": "2", "HEDGER_RECEIPT_TIMEOUT": "2", "HEDGER_REPLACE_AFTER": "1"}
    with FaultProxy(hedge.chain.anvil.url, enforce_geth_replacement=True) as proxy:
        proxy.blackhole(h)
        for attempt in (1, 2):
            p = run([str(BIN / "hedger"), "run-once"], via(proxy, hedge, **env_extra), cwd=tmp_path)
            assert p.returncode == 7, (attempt, p.stdout + p.stderr)       # in doubt: nothing planned
            assert "StuckTransaction" in p.stderr
            assert hedge.nonce() == n and hedge.position()[0] == 0
            assert tx_row(j, h)["rebroadcasts"] == attempt and tx_row(j, h)["state"] == "signed"
        p = run([str(BIN / "hedger"), "run-once", "--json"], via(proxy, hedge, **env_extra), cwd=tmp_path)
        assert proxy.rejected == []
    assert p.returncode == 0, p.stdout + p.stderr
    assert tx_row(j, h)["state"] == "cancelled"
    cancels = j.db.execute("SELECT * FROM txs WHERE function=?", (CANCEL_FUNCTION,)).fetchall()
    assert len(cancels) == 1 and cancels[0]["state"] == "mined" and cancels[0]["nonce"] == n
    on_chain = hedge.chain.w3.eth.get_transaction(cancels[0]["tx_hash"])
    assert on_chain["to"] == on_chain["from"] == hedge.address and on_chain["value"] == 0
    old, new = json.loads(row["fields"]), json.loads(cancels[0]["fields"])
    assert int(new["maxFeePerGas"]) * 100 >= int(old["maxFeePerGas"]) * 110           # geth's rule
    assert int(new["maxPriorityFeePerGas"]) * 100 >= int(old["maxPriorityFeePerGas"]) * 110
    out = json.loads(p.stdout)
    assert any("cancelled" in note for note in out["notes"]), out["notes"]
    assert out["outcome"] == "acted" and [t["function"] for t in out["txs"]] == ["modifyPosition"]
    assert hedge.position()[0] == -10 * WETH and hedge.nonce() == n + 2


def test_original_mined_elsewhere_while_cancelling_is_recorded_as_mined(hedge: Hedge, tmp_path: Path) -> None:
    """The cancel races the original: the other backend mines the original first. The journal
    records the original as mined, the cancel as superseded, and nothing is traded again."""
    j, row = killed_after_signing_the_trade(hedge, tmp_path)
    h, raw = row["tx_hash"], row["raw"]
    env_extra = {"HEDGER_MAX_REBROADCASTS": "0"}      # cancel at once
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        proxy.blackhole(h)

        def original_first(sent: str) -> None:
            if sent != raw:                               # the cancel: the original wins the race
                send_direct(hedge, raw)
        proxy.on_raw_tx = original_first
        p = run([str(BIN / "hedger"), "run-once", "--json"], via(proxy, hedge, **env_extra), cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert tx_row(j, h)["state"] == "mined"
    cancels = j.db.execute("SELECT * FROM txs WHERE function=?", (CANCEL_FUNCTION,)).fetchall()
    # the cancel lost the race: "superseded" when the original's receipt was recorded before the
    # cancel was journaled, "replaced" when after (both: it never took the nonce)
    assert len(cancels) == 1 and cancels[0]["state"] in ("superseded", "replaced")
    assert json.loads(p.stdout)["txs"] == []
    assert hedge.position()[0] == -10 * WETH


def test_nonce_too_low_on_a_fresh_send_ends_the_cycle_and_never_re_signs(hedge: Hedge) -> None:
    """Between the hedger's nonce read and its send, the nonce is used elsewhere (another process
    of the operator, or a transaction of ours another backend knew of). Before the fix the call was
    signed again at the next nonce without re-reading anything."""
    hedge.chain.deposit(1, 20_000 * USDC)
    n = hedge.nonce()
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        taken: list[bool] = []

        def use_the_nonce_first(_raw: str) -> None:
            if not taken:
                taken.append(True)
                hedge.chain.call_as(1, "ReferenceToken", hedge.chain.d.spot, "transfer", hedge.chain.d.deployer, 0)
        proxy.on_raw_tx = use_the_nonce_first
        res = hedge.keeper(**via(proxy, hedge)).cycle()
        broadcasts = proxy.calls["eth_sendRawTransaction"]
    assert broadcasts == 1                                   # never a second signature of the call
    assert res.outcome == "failed" and res.exit_code == 6, (res.outcome, res.error)
    assert "nonce too low" in res.error and "not re-signed" in res.error
    assert hedge.nonce() == n + 1 and hedge.position()[0] == 0   # only the other transaction
    # the next cycle reads again, settles the journaled signature as superseded, and hedges once
    res = hedge.cycle()
    assert res.outcome == "acted", res.error
    assert any("superseded" in note for note in res.notes), res.notes
    assert hedge.position()[0] == -10 * WETH
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    assert j.db.execute("SELECT COUNT(*) FROM txs WHERE state='signed'").fetchone()[0] == 0


def test_journaled_trade_without_raw_bytes_is_cancelled_at_once(hedge: Hedge, tmp_path: Path) -> None:
    """A row from a journal older than the raw-bytes column cannot be sent again: its nonce is
    cancelled (fees from the node, the row's own being unknown) before anything is planned."""
    j, row = killed_after_signing_the_trade(hedge, tmp_path)
    j.db.execute("UPDATE txs SET raw=NULL, fields=NULL WHERE tx_hash=?", (row["tx_hash"],))
    n = hedge.nonce()
    p = run([str(BIN / "hedger"), "run-once", "--json"], hedge.env, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert tx_row(j, row["tx_hash"])["state"] == "cancelled"
    cancel = j.db.execute("SELECT * FROM txs WHERE function=?", (CANCEL_FUNCTION,)).fetchone()
    assert cancel["state"] == "mined" and cancel["nonce"] == n
    assert [t["function"] for t in json.loads(p.stdout)["txs"]] == ["modifyPosition"]
    assert hedge.position()[0] == -10 * WETH and hedge.nonce() == n + 2
