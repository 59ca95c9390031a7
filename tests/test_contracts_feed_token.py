"""Contract tests of contracts/PriceFeed.vy (Chainlink AggregatorV3 shape) and ReferenceToken.vy."""

from __future__ import annotations

from typing import Any

import pytest
from web3.exceptions import ContractLogicError

from hedger.sim.deploy import deploy_contract
from hedger.core.errors import SimulationFailed
from hedger.sim.localchain import dev_account
from tests.conftest import USDC, WETH
from tests.test_contracts_market import send

OWNER_ONLY = "only owner"


def addr(i: int) -> str:
    return dev_account(i).address


def fresh_feed(chain: Any, decimals: int = 8, phase: int = 1) -> Any:
    return chain.contract("PriceFeed", deploy_contract(chain.deployer, "PriceFeed", decimals, "ETH / USD", phase))


def publish(chain: Any, feed: Any, answer: int) -> int:
    """Publish a round; returns its block timestamp."""
    r = chain.admin("PriceFeed", feed.address, "setAnswer", answer)
    return int(chain.w3.eth.get_block(r["blockNumber"])["timestamp"])


# --------------------------------------------------------------------------- feed

def test_feed_metadata(chain):
    feed = fresh_feed(chain, decimals=8)
    f = feed.functions
    assert (f.decimals().call(), f.description().call(), f.version().call()) == (8, "ETH / USD", 4)
    assert f.owner().call() == addr(0)
    assert f.phaseId().call() == 1
    assert chain.feed.functions.decimals().call() == 8
    assert chain.sequencer.functions.decimals().call() == 0
    assert chain.sequencer.functions.latestRoundData().call()[1] == 0      # sequencer up


def test_latest_round_before_any_answer_is_round_zero(chain):
    feed = fresh_feed(chain)
    assert feed.functions.latestRoundData().call() == [0, 0, 0, 0, 0]
    assert feed.functions.latestRound().call() == 0
    with pytest.raises(ContractLogicError, match="No data present"):
        feed.functions.getRoundData(0).call()
    with pytest.raises(SimulationFailed, match="no round"):
        chain.admin("PriceFeed", feed.address, "setRoundTimestamps", 1, 1)


def test_round_ids_encode_phase(chain):
    feed = fresh_feed(chain)
    f = feed.functions
    t1 = publish(chain, feed, 3000 * 10**8)
    first = (1 << 64) + 1
    assert f.latestRoundData().call() == [first, 3000 * 10**8, t1, t1, first]
    t2 = publish(chain, feed, 3010 * 10**8)
    assert f.latestRoundData().call()[0] == first + 1
    assert f.aggregatorRound().call() == 2

    chain.admin("PriceFeed", feed.address, "setPhase", 2)
    # the latest round is still the old phase's until a new answer comes
    assert f.latestRoundData().call()[0] == first + 1
    t3 = publish(chain, feed, 2990 * 10**8)
    second_phase_first = (2 << 64) + 1
    rid = f.latestRoundData().call()[0]
    assert rid == second_phase_first
    assert rid != first + 2                      # not contiguous with the previous phase
    assert rid >> 64 == 2 and rid & (2**64 - 1) == 1

    # past rounds stay readable by id; ids in the gap are unknown
    assert f.getRoundData(first).call() == [first, 3000 * 10**8, t1, t1, first]
    assert f.getRoundData(first + 1).call() == [first + 1, 3010 * 10**8, t2, t2, first + 1]
    assert f.getRoundData(second_phase_first).call() == [rid, 2990 * 10**8, t3, t3, rid]
    for unknown in (first + 2, 2 << 64, second_phase_first + 1, 1, (3 << 64) + 1):
        with pytest.raises(ContractLogicError, match="No data present"):
            f.getRoundData(unknown).call()

    with pytest.raises(SimulationFailed, match="phase must increase"):
        chain.admin("PriceFeed", feed.address, "setPhase", 2)
    with pytest.raises(SimulationFailed, match="phase must increase"):
        chain.admin("PriceFeed", feed.address, "setPhase", 1)


def test_set_round_timestamps_rewrites_latest_round(chain):
    feed = fresh_feed(chain)
    publish(chain, feed, 3000 * 10**8)
    rid = feed.functions.latestRound().call()
    chain.admin("PriceFeed", feed.address, "setRoundTimestamps", 1234, 1000)
    assert feed.functions.latestRoundData().call() == [rid, 3000 * 10**8, 1000, 1234, rid]
    assert feed.functions.getRoundData(rid).call() == [rid, 3000 * 10**8, 1000, 1234, rid]


def test_only_owner_can_publish_or_rewrite(chain):
    feed = chain.feed
    before = feed.functions.latestRoundData().call()
    for fn, args in (("setAnswer", (1 * 10**8,)), ("setRoundTimestamps", (1, 1)), ("setPhase", (5,)),
                     ("transferOwnership", (addr(1),))):
        with pytest.raises(SimulationFailed, match=OWNER_ONLY):
            send(chain, 1, "PriceFeed", chain.d.oracle, fn, *args)
    assert feed.functions.latestRoundData().call() == before
    # ownership moves, and with it the right to publish
    chain.admin("PriceFeed", chain.d.oracle, "transferOwnership", addr(1))
    send(chain, 1, "PriceFeed", chain.d.oracle, "setAnswer", 2500 * 10**8)
    assert feed.functions.latestRoundData().call()[1] == 2500 * 10**8
    with pytest.raises(SimulationFailed, match=OWNER_ONLY):
        chain.admin("PriceFeed", chain.d.oracle, "setAnswer", 3000 * 10**8)


def test_non_positive_answers_are_published_as_is(chain):
    """The feed does not judge answers; consumers (the market, the hedger's guards) must."""
    feed = fresh_feed(chain)
    publish(chain, feed, -5)
    assert feed.functions.latestRoundData().call()[1] == -5
    publish(chain, feed, 0)
    assert feed.functions.latestRoundData().call()[1] == 0


# --------------------------------------------------------------------------- token

def fresh_token(chain: Any, decimals: int) -> Any:
    return chain.contract("ReferenceToken", deploy_contract(chain.deployer, "ReferenceToken", "Test", "TST", decimals))


@pytest.mark.parametrize("decimals", [0, 6, 8, 18])
def test_token_decimals_as_deployed(chain, decimals):
    tok = fresh_token(chain, decimals)
    assert tok.functions.decimals().call() == decimals
    assert (tok.functions.name().call(), tok.functions.symbol().call()) == ("Test", "TST")
    assert tok.functions.minter().call() == addr(0)


def test_reference_tokens_decimals(chain):
    assert chain.usdc.functions.decimals().call() == 6
    assert chain.weth.functions.decimals().call() == 18
    assert chain.usdc.functions.symbol().call() == "USDC"


def test_only_minter_mints(chain):
    tok = chain.usdc
    supply = tok.functions.totalSupply().call()
    with pytest.raises(SimulationFailed, match="only minter"):
        send(chain, 1, "ReferenceToken", chain.d.collateral, "mint", addr(1), USDC)
    assert tok.functions.balanceOf(addr(1)).call() == 0
    chain.mint_usdc(addr(1), 7 * USDC)
    assert tok.functions.balanceOf(addr(1)).call() == 7 * USDC
    assert tok.functions.totalSupply().call() == supply + 7 * USDC
    with pytest.raises(SimulationFailed, match="mint to zero address"):
        chain.mint_usdc("0x" + "00" * 20, 1)


def test_transfer_and_transfer_from_need_balance_and_allowance(chain):
    tok = chain.weth
    spot = chain.d.spot
    chain.mint_weth(addr(1), 10 * WETH)
    with pytest.raises(SimulationFailed, match="transfer amount exceeds balance"):
        send(chain, 1, "ReferenceToken", spot, "transfer", addr(2), 11 * WETH)
    send(chain, 1, "ReferenceToken", spot, "transfer", addr(2), 3 * WETH)
    assert tok.functions.balanceOf(addr(1)).call() == 7 * WETH
    assert tok.functions.balanceOf(addr(2)).call() == 3 * WETH

    # account 3 spends account 1's tokens only within the allowance
    with pytest.raises(SimulationFailed, match="exceeds allowance"):
        send(chain, 3, "ReferenceToken", spot, "transferFrom", addr(1), addr(3), 1)
    send(chain, 1, "ReferenceToken", spot, "approve", addr(3), 2 * WETH)
    assert tok.functions.allowance(addr(1), addr(3)).call() == 2 * WETH
    send(chain, 3, "ReferenceToken", spot, "transferFrom", addr(1), addr(3), WETH)
    assert tok.functions.allowance(addr(1), addr(3)).call() == WETH
    with pytest.raises(SimulationFailed, match="exceeds allowance"):
        send(chain, 3, "ReferenceToken", spot, "transferFrom", addr(1), addr(3), WETH + 1)
    send(chain, 3, "ReferenceToken", spot, "transferFrom", addr(1), addr(4), WETH)
    assert tok.functions.allowance(addr(1), addr(3)).call() == 0
    assert tok.functions.balanceOf(addr(1)).call() == 5 * WETH
    assert tok.functions.balanceOf(addr(3)).call() == WETH
    assert tok.functions.balanceOf(addr(4)).call() == WETH

    # an infinite allowance is not spent down; the balance still binds
    send(chain, 1, "ReferenceToken", spot, "approve", addr(3), 2**256 - 1)
    send(chain, 3, "ReferenceToken", spot, "transferFrom", addr(1), addr(3), 5 * WETH)
    assert tok.functions.allowance(addr(1), addr(3)).call() == 2**256 - 1
    with pytest.raises(SimulationFailed, match="transfer amount exceeds balance"):
        send(chain, 3, "ReferenceToken", spot, "transferFrom", addr(1), addr(3), 1)
    with pytest.raises(SimulationFailed, match="transfer to zero address"):
        send(chain, 3, "ReferenceToken", spot, "transfer", "0x" + "00" * 20, 1)
    assert tok.functions.totalSupply().call() == 10 * WETH
