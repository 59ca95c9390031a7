"""Reorganisations: a journaled receipt counts as final only HEDGER_CONFIRMATIONS blocks deep.

Until then each cycle's reconciliation checks that the block at the receipt's number still
has the journaled hash. anvil's ``anvil_reorg(depth, [[raw tx, block offset], ...])`` replaces
the last ``depth`` blocks with new ones holding only the given transactions (the others are
gone, not back in the pool).
"""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from web3 import Web3

from hedger.config import CONFIRMATIONS, DEFAULT_CONFIRMATIONS, Settings
from hedger.core.errors import ConfigError
from hedger.state.journal import Journal
from hedger.sim.deploy import Deployment, deploy_reference
from hedger.chain.executor import KeySigner, TxSender
from hedger.core.secrets import Secret
from hedger.sim.localchain import Anvil, dev_account, start_anvil
from tests.conftest import USDC, WETH, Hedge

CONF = {"HEDGER_CONFIRMATIONS": "5"}


# A reorganisation rewrites the chain's history, which the session's snapshot-and-revert does
# not compose with (in a full run a later reorg once reached below the deployment): each test
# here gets an anvil and a deployment of its own, overriding the session's fixtures.
@pytest.fixture()
def anvil() -> Iterator[Anvil]:
    node = start_anvil()
    yield node
    node.stop()


@pytest.fixture()
def w3(anvil: Anvil) -> Web3:
    return Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))


@pytest.fixture()
def deployment(w3: Web3) -> Deployment:
    return deploy_reference(TxSender(w3, KeySigner(Secret(dev_account(0).key.hex()))))


def reorg(hedge: Hedge, depth: int, txs: list[list[Any]] | None = None) -> None:
    answer = hedge.chain.w3.provider.make_request("anvil_reorg", [depth, txs or []])
    assert "error" not in answer, answer


def trade_row(hedge: Hedge) -> Any:
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    rows = j.db.execute("SELECT * FROM txs WHERE function='modifyPosition' ORDER BY id").fetchall()
    assert len(rows) == 1
    return rows[0]


def hedged_once(hedge: Hedge) -> Any:
    hedge.chain.deposit(1, 20_000 * USDC)        # the plan is then a single trade
    res = hedge.cycle(**CONF)
    assert res.outcome == "acted" and [t.call.function for t in res.sent] == ["modifyPosition"], res.error
    row = trade_row(hedge)
    assert row["state"] == "mined" and row["confirmed"] == 0
    assert row["block_hash"] == hedge.chain.w3.eth.get_block(row["block_number"])["hash"].to_0x_hex()
    return row


def test_trade_reorganised_away_is_broadcast_again_from_the_journal(hedge: Hedge) -> None:
    """Before the fix the journal still said "mined" (and counted the trade in the day's
    notional): the next cycle took the missing trade for a manual trade or a liquidation and
    planned a new one at the same nonce."""
    row = hedged_once(hedge)
    w3 = hedge.chain.w3
    reorg(hedge, w3.eth.block_number - row["block_number"] + 1)
    assert hedge.position()[0] == 0                       # the trade is gone from the chain
    assert w3.eth.get_block(row["block_number"])["hash"].to_0x_hex() != row["block_hash"]
    res = hedge.cycle(**CONF)
    assert any("reorganised away" in n for n in res.notes), res.notes
    assert any("broadcast again from the journal" in n for n in res.notes), res.notes
    assert res.sent == []                                 # the journaled trade itself, not a new plan
    assert hedge.position()[0] == -10 * WETH
    again = trade_row(hedge)
    assert again["state"] == "mined" and again["tx_hash"] == row["tx_hash"]
    assert again["block_hash"] == w3.eth.get_block(again["block_number"])["hash"].to_0x_hex()
    assert again["block_hash"] != row["block_hash"]


def test_trade_moved_to_another_block_is_recorded_there(hedge: Hedge) -> None:
    row = hedged_once(hedge)
    w3 = hedge.chain.w3
    w3.provider.make_request("evm_mine", [])
    depth = w3.eth.block_number - row["block_number"] + 1
    reorg(hedge, depth, [[row["raw"], 1]])                # the same transaction, one block later
    assert hedge.position()[0] == -10 * WETH
    res = hedge.cycle(**CONF)
    assert any("it is now in block" in n for n in res.notes), res.notes
    assert res.sent == [] and res.outcome == "held"
    moved = trade_row(hedge)
    assert moved["state"] == "mined" and moved["block_number"] == row["block_number"] + 1
    assert moved["block_hash"] == w3.eth.get_block(moved["block_number"])["hash"].to_0x_hex()


def test_receipt_is_confirmed_once_deep_enough_and_then_left_alone(hedge: Hedge) -> None:
    row = hedged_once(hedge)
    w3 = hedge.chain.w3
    hedge.cycle(**CONF)
    assert trade_row(hedge)["confirmed"] == 0             # not yet 5 blocks deep
    for _ in range(5):
        w3.provider.make_request("evm_mine", [])
    hedge.cycle(**CONF)
    assert trade_row(hedge)["confirmed"] == 1
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    assert not j.has_loose_ends(hedge.address)           # no more re-checks of that receipt
    assert row["tx_hash"] == trade_row(hedge)["tx_hash"]


def test_local_chain_default_takes_receipts_as_final_at_once(hedge: Hedge) -> None:
    hedge.chain.deposit(1, 20_000 * USDC)
    assert hedge.cycle().outcome == "acted"
    row = trade_row(hedge)
    assert row["confirmed"] == 1 and row["block_hash"]
    assert not Journal(hedge.env["HEDGER_JOURNAL_PATH"]).has_loose_ends(hedge.address)


def test_confirmations_default_per_chain_and_override() -> None:
    base = {"HEDGER_ACCOUNT": "0x" + "11" * 20, "HEDGER_MARKET": "0x" + "22" * 20,
            "HEDGER_ORACLE": "0x" + "33" * 20, "HEDGER_SPOT_TOKEN": "0x" + "44" * 20,
            "HEDGER_COLLATERAL_TOKEN": "0x" + "55" * 20}
    s = Settings.from_env(base, dotenv=False)
    assert s.confirmations_for_chain(31337) == s.confirmations_for_chain(1337) == 0
    assert s.confirmations_for_chain(1) == CONFIRMATIONS[1] == 64
    assert {c: s.confirmations_for_chain(c) for c in (10, 8453, 42161, 43114)} == \
        {c: CONFIRMATIONS[c] for c in (10, 8453, 42161, 43114)}
    assert s.confirmations_for_chain(424242) == DEFAULT_CONFIRMATIONS
    s = Settings.from_env({**base, "HEDGER_CONFIRMATIONS": "3"}, dotenv=False)
    assert s.confirmations_for_chain(1) == s.confirmations_for_chain(31337) == 3
    with pytest.raises(ConfigError, match="HEDGER_CONFIRMATIONS"):
        Settings.from_env({**base, "HEDGER_CONFIRMATIONS": "-1"}, dotenv=False)
    with pytest.raises(ConfigError, match="HEDGER_MAX_REBROADCASTS"):
        Settings.from_env({**base, "HEDGER_MAX_REBROADCASTS": "many"}, dotenv=False)


def test_whole_plan_reorganised_away_is_sent_again_in_nonce_order(hedge: Hedge) -> None:
    res = hedge.cycle(**CONF)
    assert [t.call.function for t in res.sent] == ["approve", "transferMargin", "modifyPosition"], res.error
    w3 = hedge.chain.w3
    n = hedge.nonce()
    reorg(hedge, w3.eth.block_number - res.sent[0].block_number + 1)
    assert hedge.position() == (0, 0) and hedge.nonce() == n - 3
    res = hedge.cycle(**CONF)
    assert res.sent == [] and res.outcome == "held", (res.outcome, res.error, res.notes)
    assert sum("reorganised away" in note for note in res.notes) == 3, res.notes
    assert hedge.position()[0] == -10 * WETH and hedge.nonce() == n
    j = Journal(hedge.env["HEDGER_JOURNAL_PATH"])
    rows = j.db.execute("SELECT state, block_hash, nonce FROM txs ORDER BY nonce").fetchall()
    assert [r["state"] for r in rows] == ["mined"] * 3 and [r["nonce"] for r in rows] == [n - 3, n - 2, n - 1]
    assert all(r["block_hash"] == w3.eth.get_block(j.db.execute("SELECT block_number FROM txs WHERE nonce=?",
               (r["nonce"],)).fetchone()[0])["hash"].to_0x_hex() for r in rows)
