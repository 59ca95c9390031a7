"""USDC's pause and blacklist (Circle's FiatTokenV2 Pausable/Blacklistable) on the reference
token, and what they do to the perp market that holds it as collateral."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from hedger.chain.abi import contract_artifact, load_abi
from hedger.core.errors import SimulationFailed
from hedger.sim.localchain import dev_account
from tests.conftest import HEDGER, USDC, WETH

PAUSED = "Pausable: paused"
BLACKLISTED = "Blacklistable: account is blacklisted"
NOT_PAUSER = "Pausable: caller is not the pauser"
NOT_BLACKLISTER = "Blacklistable: caller is not the blacklister"
TOKEN = "ReferenceToken"
OWNER = 0                     # the deployer: owner (pauser, blacklister) and minter
ALICE, BOB, CAROL = 3, 4, 5   # holder, receiver, spender


def addr(i: int) -> str:
    return dev_account(i).address


def as_owner(chain: Any, fn: str, *args: Any) -> dict[str, Any]:
    return chain.admin(TOKEN, chain.d.collateral, fn, *args)


def as_(chain: Any, i: int, fn: str, *args: Any) -> dict[str, Any]:
    return chain.call_as(i, TOKEN, chain.d.collateral, fn, *args)


def balance(chain: Any, i: int) -> int:
    return chain.usdc.functions.balanceOf(addr(i)).call()


@pytest.fixture()
def funded(chain: Any) -> Any:
    """Alice holds 1,000 USDC and lets Carol spend 500 of it."""
    chain.mint_usdc(addr(ALICE), 1_000 * USDC)
    as_(chain, ALICE, "approve", addr(CAROL), 500 * USDC)
    return chain


# the four token movements, each as a callable that sends one transaction
def _transfer(c: Any) -> Any:
    return as_(c, ALICE, "transfer", addr(BOB), 1 * USDC)


def _transfer_from(c: Any) -> Any:
    return as_(c, CAROL, "transferFrom", addr(ALICE), addr(BOB), 1 * USDC)


def _approve(c: Any) -> Any:
    return as_(c, ALICE, "approve", addr(CAROL), 7 * USDC)


def _mint(c: Any) -> Any:
    return as_owner(c, "mint", addr(BOB), 1 * USDC)


MOVES: dict[str, Callable[[Any], Any]] = {
    "transfer": _transfer, "transferFrom": _transfer_from, "approve": _approve, "mint": _mint}


# --------------------------------------------------------------------------- token

def test_initial_roles_and_state(chain):
    f = chain.usdc.functions
    assert f.owner().call() == f.minter().call() == addr(OWNER)
    assert f.paused().call() is False
    assert f.isBlacklisted(addr(ALICE)).call() is False
    # the spot token is a separate instance with its own switches
    assert chain.weth.functions.paused().call() is False


def test_pause_blocks_every_movement_and_unpause_restores(funded):
    chain = funded
    r = as_owner(chain, "pause")
    assert chain.usdc.events.Pause().process_receipt(r)
    assert chain.usdc.functions.paused().call() is True
    for name, move in MOVES.items():
        with pytest.raises(SimulationFailed, match=PAUSED):
            move(chain)
    # views still answer while paused; nothing moved
    assert (balance(chain, ALICE), balance(chain, BOB)) == (1_000 * USDC, 0)
    assert chain.usdc.functions.allowance(addr(ALICE), addr(CAROL)).call() == 500 * USDC

    r = as_owner(chain, "unpause")
    assert chain.usdc.events.Unpause().process_receipt(r)
    assert chain.usdc.functions.paused().call() is False
    for move in MOVES.values():
        move(chain)
    assert balance(chain, BOB) == 3 * USDC       # transfer + transferFrom + mint
    assert chain.usdc.functions.allowance(addr(ALICE), addr(CAROL)).call() == 7 * USDC


def test_pause_is_checked_before_the_other_reasons(funded):
    # USDC's modifier order: whenNotPaused comes first, so a paused token reports the pause
    # even for a call that would fail anyway (a blacklisted party, an overdraft, a non-minter)
    chain = funded
    as_owner(chain, "blacklist", addr(BOB))
    as_owner(chain, "pause")
    with pytest.raises(SimulationFailed, match=PAUSED):
        as_(chain, ALICE, "transfer", addr(BOB), 1 * USDC)
    with pytest.raises(SimulationFailed, match=PAUSED):
        as_(chain, ALICE, "transfer", addr(CAROL), 10**9 * USDC)
    with pytest.raises(SimulationFailed, match=PAUSED):
        as_(chain, ALICE, "mint", addr(ALICE), 1)


@pytest.mark.parametrize("who, move", [
    ("sender", "transfer"),             # msg.sender of transfer
    ("receiver", "transfer"),
    ("caller", "transferFrom"),         # msg.sender of transferFrom (the spender)
    ("sender", "transferFrom"),         # the `from` account
    ("receiver", "transferFrom"),
    ("sender", "approve"),              # msg.sender of approve (the owner of the funds)
    ("spender", "approve"),
    ("receiver", "mint"),
    ("minter", "mint"),                 # USDC also checks the minter (msg.sender) itself
])
def test_blacklisted_party_blocks_and_unblacklist_restores(funded, who, move):
    chain = funded
    account = {"sender": ALICE, "receiver": BOB, "caller": CAROL, "spender": CAROL,
               "minter": OWNER}[who]
    r = as_owner(chain, "blacklist", addr(account))
    (ev,) = chain.usdc.events.Blacklisted().process_receipt(r)
    assert ev.args.account == addr(account)
    assert chain.usdc.functions.isBlacklisted(addr(account)).call() is True
    with pytest.raises(SimulationFailed, match=BLACKLISTED):
        MOVES[move](chain)

    r = as_owner(chain, "unBlacklist", addr(account))
    (ev,) = chain.usdc.events.UnBlacklisted().process_receipt(r)
    assert ev.args.account == addr(account)
    assert chain.usdc.functions.isBlacklisted(addr(account)).call() is False
    MOVES[move](chain)


def test_blacklist_freezes_only_the_listed_account(funded):
    chain = funded
    chain.mint_usdc(addr(6), 5 * USDC)
    as_owner(chain, "blacklist", addr(6))
    for move in MOVES.values():          # nobody involved is listed: all pass
        move(chain)
    assert balance(chain, BOB) == 3 * USDC
    # the listed account keeps its balance (frozen, not seized) but cannot move it
    with pytest.raises(SimulationFailed, match=BLACKLISTED):
        as_(chain, 6, "transfer", addr(BOB), 1 * USDC)
    assert balance(chain, 6) == 5 * USDC


def test_only_owner_pauses_and_blacklists(chain):
    for fn, args, reason in [("pause", (), NOT_PAUSER), ("unpause", (), NOT_PAUSER),
                             ("blacklist", (addr(BOB),), NOT_BLACKLISTER),
                             ("unBlacklist", (addr(BOB),), NOT_BLACKLISTER)]:
        with pytest.raises(SimulationFailed, match=reason):
            as_(chain, ALICE, fn, *args)
    # the minter role is unchanged: only the deployer mints
    with pytest.raises(SimulationFailed, match="only minter"):
        as_(chain, ALICE, "mint", addr(ALICE), 1)
    assert chain.usdc.functions.paused().call() is False
    assert chain.usdc.functions.isBlacklisted(addr(BOB)).call() is False


def test_fiat_token_abi_is_the_compiled_views() -> None:
    abi = load_abi("FiatToken")
    compiled = {e["name"]: e for e in contract_artifact(TOKEN)["abi"] if e.get("type") == "function"}
    assert [e["name"] for e in abi] == ["paused", "isBlacklisted"]
    assert all(e == compiled[e["name"]] and e["stateMutability"] == "view" for e in abi)


# --------------------------------------------------------------------------- market

def market_as(chain: Any, i: int, fn: str, *args: Any) -> dict[str, Any]:
    return chain.call_as(i, "PerpMarket", chain.d.market, fn, *args)


@pytest.fixture()
def hedged(chain: Any) -> Any:
    """The hedged account has 10,000 USDC of margin, a 1 ETH short, and has approved 1,000 more."""
    chain.deposit(HEDGER, 10_000 * USDC)
    chain.trade(HEDGER, -1 * WETH)
    chain.mint_usdc(addr(HEDGER), 1_000 * USDC)
    chain.call_as(HEDGER, TOKEN, chain.d.collateral, "approve", chain.d.market, 1_000 * USDC)
    return chain


def margin(chain: Any) -> int:
    return chain.market.functions.positions(addr(HEDGER)).call()[0]


def test_paused_collateral_blocks_deposits_and_withdrawals(hedged):
    chain = hedged
    before = margin(chain)
    as_owner(chain, "pause")
    with pytest.raises(SimulationFailed, match=PAUSED):
        market_as(chain, HEDGER, "transferMargin", 100 * USDC)
    with pytest.raises(SimulationFailed, match=PAUSED):
        market_as(chain, HEDGER, "transferMargin", -100 * USDC)
    with pytest.raises(SimulationFailed, match=PAUSED):
        market_as(chain, HEDGER, "withdrawAllMargin")
    # trading moves no tokens, so it still works
    chain.trade(HEDGER, -WETH // 10)
    assert chain.market.functions.positions(addr(HEDGER)).call()[1] == -11 * WETH // 10
    as_owner(chain, "unpause")
    market_as(chain, HEDGER, "transferMargin", 100 * USDC)
    market_as(chain, HEDGER, "transferMargin", -100 * USDC)
    assert margin(chain) < before        # only the trade's fee was taken


def test_blacklisted_account_cannot_withdraw_but_can_trade(hedged):
    chain = hedged
    as_owner(chain, "blacklist", addr(HEDGER))
    with pytest.raises(SimulationFailed, match=BLACKLISTED):
        market_as(chain, HEDGER, "transferMargin", -100 * USDC)      # market.transfer(account, ...)
    with pytest.raises(SimulationFailed, match=BLACKLISTED):
        market_as(chain, HEDGER, "transferMargin", 100 * USDC)       # transferFrom(account, ...)
    size = chain.market.functions.positions(addr(HEDGER)).call()[1]
    r = chain.trade(HEDGER, WETH // 2)                                # reduce the short
    assert r["status"] == 1
    assert chain.market.functions.positions(addr(HEDGER)).call()[1] == size + WETH // 2


def test_blacklisted_market_blocks_deposits_and_withdrawals(hedged):
    chain = hedged
    as_owner(chain, "blacklist", chain.d.market)
    with pytest.raises(SimulationFailed, match=BLACKLISTED):
        market_as(chain, HEDGER, "transferMargin", 100 * USDC)       # market is msg.sender of transferFrom
    with pytest.raises(SimulationFailed, match=BLACKLISTED):
        market_as(chain, HEDGER, "transferMargin", -100 * USDC)      # market is msg.sender of transfer
    # approving the market is blocked too (the spender is blacklisted)
    with pytest.raises(SimulationFailed, match=BLACKLISTED):
        chain.call_as(HEDGER, TOKEN, chain.d.collateral, "approve", chain.d.market, 1)
    as_owner(chain, "unBlacklist", chain.d.market)
    market_as(chain, HEDGER, "transferMargin", -100 * USDC)


# --------------------------------------------------------------------------- USDT's approve rule

USDT_RULE = "USDT: approve from non-zero"


def test_usdt_rule_refuses_a_change_between_non_zero_allowances(funded):
    chain = funded                                             # Alice lets Carol spend 500
    as_owner(chain, "setApproveFromZeroOnly", True)
    with pytest.raises(SimulationFailed, match=USDT_RULE):
        as_(chain, ALICE, "approve", addr(CAROL), 7 * USDC)
    as_(chain, ALICE, "approve", addr(CAROL), 0)               # to zero: allowed
    as_(chain, ALICE, "approve", addr(CAROL), 7 * USDC)        # from zero: allowed
    assert chain.usdc.functions.allowance(addr(ALICE), addr(CAROL)).call() == 7 * USDC
    with pytest.raises(SimulationFailed, match="only owner"):
        as_(chain, ALICE, "setApproveFromZeroOnly", False)


def test_hedger_clears_a_leftover_allowance_before_approving_on_a_usdt_style_token(hedge):
    """A leftover non-zero allowance below the deposit: an exact approve over it reverts on USDT;
    the hedger approves zero first, then the deposit, then deposits."""
    chain = hedge.chain
    as_owner(chain, "setApproveFromZeroOnly", True)
    chain.call_as(HEDGER, TOKEN, chain.d.collateral, "approve", chain.d.market, 1 * USDC)    # the leftover
    res = hedge.cycle()
    assert res.exit_code == 0 and res.outcome == "acted", res.error
    steps = [(t.call.function, t.call.args) for t in res.sent]
    assert steps[:3] == [("approve", (chain.d.market, 0)), ("approve", (chain.d.market, steps[1][1][1])),
                         ("transferMargin", (steps[1][1][1],))]
    assert steps[1][1][1] > 1 * USDC
    assert chain.usdc.functions.allowance(addr(HEDGER), chain.d.market).call() == 0      # used up exactly
    assert hedge.position()[0] == -10 * WETH
