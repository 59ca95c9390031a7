"""End to end on the GMX v2 stand-in (contracts/Gmx*.vy): the hedger's cycles with
HEDGER_PROTOCOL=gmx-v2 open the hedge as an order, wait for GMX's keeper (the stand-in's, at the
feed's price), follow the holding, restore margin while an order is pending, re-plan after a
cancellation (acceptable price missed) and cancel an expired order itself. One anvil for the
module; each test starts from the same deployed state (evm_snapshot / evm_revert)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import pytest
from web3 import Web3

from hedger.chain.executor import KeySigner, TxSender
from hedger.core.secrets import Secret
from hedger.core.types import OrderKind, OrderState
from hedger.protocols.gmx_v2 import interface as gi
from hedger.sim.deploy import Deployment, deploy_reference, transact
from hedger.sim.gmx_standin import GmxStandin, deploy_gmx_standin
from hedger.sim.localchain import Anvil, dev_account
from tests.conftest import USDC, WETH, Chain, web3_at

HEDGER, KEEPER = 1, 2


@pytest.fixture(scope="module")
def w3(module_anvil: Anvil) -> Web3:
    return web3_at(module_anvil)


def sender(w3: Web3, index: int) -> TxSender:
    return TxSender(w3, KeySigner(Secret(dev_account(index).key.hex())))


@pytest.fixture(scope="module")
def world(w3: Web3) -> tuple[Deployment, GmxStandin]:
    deployer = sender(w3, 0)
    d = deploy_reference(deployer)
    s = deploy_gmx_standin(deployer, usdc=d.collateral, keepers=(dev_account(KEEPER).address,))
    transact(deployer, "ReferenceToken", d.collateral, "mint", s.position_engine, 10_000_000 * USDC)
    # funding and borrowing off: fills and margins compare exactly whatever seconds pass (the model's
    # carry and the stand-in's accrual have their own tests)
    for key in (gi.borrowing_factor_key(s.market, True), gi.borrowing_factor_key(s.market, False),
                gi.funding_factor_key(s.market)):
        transact(deployer, "GmxDataStore", s.data_store, "setUint", key, 0)
    return d, s


@dataclass
class G:
    chain: Chain
    s: GmxStandin
    env: dict[str, str]

    @property
    def address(self) -> str:
        return dev_account(HEDGER).address

    def keeper(self, **overrides: str) -> Any:
        from hedger.config import Settings
        from hedger.cycle.keeper import Keeper
        return Keeper.from_settings(Settings.from_env({**self.env, **overrides}))

    def cycle(self, **overrides: str) -> Any:
        return self.keeper(**overrides).cycle()

    def read(self) -> Any:
        return self.keeper().read()

    def execute(self) -> dict[str, Any] | None:
        """GMX's keeper (the stand-in's) executes the account's oldest order at the feed's price."""
        call = self.keeper().adapter.fill_order_call(self.address)
        if call is None:
            return None
        return sender(self.chain.w3, KEEPER).send(call.to, call.data)


@pytest.fixture()
def g(w3: Web3, module_anvil: Anvil, world: tuple[Deployment, GmxStandin], tmp_path: Any) -> Iterator[G]:
    d, s = world
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    chain = Chain(anvil=module_anvil, w3=w3, deployer=sender(w3, 0), d=d)
    chain.set_price(3000)
    acct = dev_account(HEDGER)
    chain.mint_weth(acct.address, 2 * WETH)
    chain.mint_usdc(acct.address, 50_000 * USDC)
    env = {"HEDGER_RPC_URL": module_anvil.url, "HEDGER_PRIVATE_KEY": acct.key.hex(), "HEDGER_PROTOCOL": "gmx-v2",
           "HEDGER_MARKET": s.market, "HEDGER_ORACLE": d.oracle, "HEDGER_SPOT_TOKEN": d.spot,
           "HEDGER_COLLATERAL_TOKEN": d.collateral, "HEDGER_SEQUENCER_FEED": d.sequencer_feed,
           "HEDGER_SEQUENCER_GRACE": "0", "HEDGER_JOURNAL_PATH": str(tmp_path / "journal.sqlite"),
           "HEDGER_CHAIN_ID": "31337", "HEDGER_GMX_EXCHANGE_ROUTER": s.exchange_router,
           "HEDGER_GMX_READER": s.reader, "HEDGER_COOLDOWN": "0"}
    try:
        yield G(chain=chain, s=s, env=env)
    finally:
        w3.provider.make_request("evm_revert", [snap])


def test_open_the_hedge_as_one_order_then_hold_once_executed(g: G) -> None:
    res = g.cycle()
    assert res.outcome == "acted", res.error
    assert [c.function for c in res.calls] == ["approve", "multicall"]
    order_call = res.calls[-1]
    assert order_call.creates_order and order_call.value > 0
    snap = g.read()
    (o,) = snap.account.orders
    assert o.kind is OrderKind.INCREASE and o.state is OrderState.PENDING and o.collateral_delta > 0
    assert o.size_delta == order_call.amount                    # the journal's record and the venue's list agree
    assert snap.account.size == 0
    held = g.cycle()
    assert held.outcome == "held" and held.decision.code == "order_pending"
    g.execute()
    snap = g.read()
    assert snap.account.orders == () and snap.account.size == -2 * WETH
    again = g.cycle()
    assert again.outcome == "held" and again.decision.code == "within_band", again.decision.reason


def opened(g: G) -> Any:
    """The hedge opened and executed: -2 ETH at 3,000."""
    assert g.cycle().outcome == "acted"
    g.execute()
    snap = g.read()
    assert snap.account.size == -2 * WETH and snap.account.orders == ()
    return snap


def test_fill_and_fees_of_the_keepers_transaction_are_journaled(g: G) -> None:
    res = g.cycle()
    receipt = g.execute()
    assert receipt is not None
    k = g.keeper()
    row = k.journal.order_row(res.sent[-1].tx_hash)
    assert row["order_key"] and row["order_key"].startswith("0x")       # learned from OrderCreated at once
    k.cycle()
    row = k.journal.order_row(res.sent[-1].tx_hash)
    assert row["state"] == "executed" and row["fill_tx"] == Web3.to_hex(receipt["transactionHash"])
    assert 2990 < int(row["fill_price"]) / 1e18 <= 3000
    assert int(row["fill_fee"]) == 6_000 * 6 * 10**18 // 10_000            # 0.06% of $6,000, charged by GMX


def test_follow_the_holding_both_ways(g: G) -> None:
    opened(g)
    g.chain.mint_weth(g.address, 1 * WETH)                              # the holding grows
    res = g.cycle()
    assert res.outcome == "acted" and res.decision.size_delta == -1 * WETH
    (o,) = g.read().account.orders
    assert o.kind is OrderKind.INCREASE
    g.execute()
    assert g.read().account.size == -3 * WETH
    g.chain.call_as(HEDGER, "ReferenceToken", g.chain.d.spot, "transfer", dev_account(5).address, 2 * WETH)
    res = g.cycle()
    assert res.outcome == "acted" and res.decision.size_delta == 2 * WETH
    (o,) = g.read().account.orders
    assert o.kind is OrderKind.DECREASE and o.size_delta > 0
    g.execute()
    snap = g.read()
    assert snap.account.size == -1 * WETH and snap.account.orders == ()


def test_margin_restored_after_a_rally_while_an_order_is_pending(g: G) -> None:
    opened(g)
    g.chain.mint_weth(g.address, 1 * WETH)
    assert g.cycle().outcome == "acted"                                 # a size order, pending
    g.chain.set_price(4300)                                             # rally: the short loses $2,600
    before = g.read()
    res = g.cycle()
    assert res.outcome == "acted" and res.decision.code == "top_up_pending", res.decision.reason
    assert res.decision.margin_delta > 0 and [c.function for c in res.calls][-1] == "multicall"
    kinds = sorted(o.kind.value for o in g.read().account.orders)
    assert kinds == ["collateral_in", "increase"]                       # beside it, safe whichever goes first
    # the keeper executes them in the order it likes: the collateral first here
    snap = g.read()
    keys = {o.kind: o.key for o in snap.account.orders}
    from hedger.sim.gmx_standin import execute_order
    price = 4300 * 10**12
    execute_order(sender(g.chain.w3, KEEPER), g.s, bytes.fromhex(keys[OrderKind.COLLATERAL_IN][2:]), price)
    mid = g.read()
    assert mid.account.margin > before.account.margin
    execute_order(sender(g.chain.w3, KEEPER), g.s, bytes.fromhex(keys[OrderKind.INCREASE][2:]), price)
    after = g.read()
    assert after.account.size < -2 * WETH and after.account.orders == ()
    from hedger.core.model import model_for
    assert model_for(after).after(0, 0).liq_distance > model_for(before).after(0, 0).liq_distance


def test_two_acceptable_price_misses_in_a_row_become_a_refusal(g: G) -> None:
    res = g.cycle()
    assert res.outcome == "acted"
    g.chain.set_price(2900)                                             # falls past the short's bound
    g.execute()                                                         # GMX's keeper cancels it
    assert g.read().account.orders == () and g.read().account.size == 0
    again = g.cycle()
    assert again.outcome == "acted", again.error                       # re-planned from the new state
    assert any("cancelled" in n for n in again.notes)
    g.chain.set_price(2800)
    g.execute()
    third = g.cycle()
    assert third.outcome == "refused" and third.exit_code == 9 and third.decision.code == "orders_cancelled"
    assert "cancelled our last 2 orders" in third.decision.reason
    assert third.sent == []


def test_an_expired_order_is_cancelled_by_us_then_replanned(g: G) -> None:
    first = g.cycle()
    wallet = g.read().account.collateral_wallet
    g.chain.advance(301)                                                # REQUEST_EXPIRATION_TIME 300 s
    g.chain.set_price(3000)
    (o,) = g.read().account.orders
    assert o.state is OrderState.EXPIRED
    res = g.cycle()
    assert res.outcome == "acted" and res.decision.code == "cancel_expired_order"
    assert [c.function for c in res.calls] == ["cancelOrder"]
    snap = g.read()
    assert snap.account.orders == () and snap.account.collateral_wallet > wallet     # the collateral came back
    replan = g.cycle()
    assert replan.outcome == "acted" and replan.decision.size_delta == -2 * WETH
    assert first.calls[-1].function == replan.calls[-1].function == "multicall"


def test_no_native_token_for_the_execution_fee_is_a_clear_refusal(g: G) -> None:
    w3 = g.chain.w3
    w3.provider.make_request("anvil_setBalance", [g.address, hex(10**9)])
    res = g.cycle()
    assert res.outcome == "refused" and res.exit_code == 9 and res.decision.code == "gas_money"
    assert "native token" in res.decision.reason and res.sent == [] and g.read().account.orders == ()


def test_gmx_settings_name_the_variable_and_fill_from_the_address_book() -> None:
    from hedger.config import Settings
    from hedger.core.errors import ConfigError
    from hedger.protocols.gmx_v2.adapter import deployment_addresses
    base = {"HEDGER_PROTOCOL": "gmx-v2", "HEDGER_MARKET": "0x" + "11" * 20, "HEDGER_ORACLE": "0x" + "22" * 20,
            "HEDGER_SPOT_TOKEN": "0x" + "33" * 20, "HEDGER_COLLATERAL_TOKEN": "0x" + "44" * 20,
            "HEDGER_ACCOUNT": dev_account(HEDGER).address}
    s = Settings.from_env({**base, "HEDGER_GMX_DEPLOYMENT": "Arbitrum", "HEDGER_GMX_FEE_MARGIN": "1.5"})
    from hedger.protocols.gmx_v2.adapter import GmxV2
    assert GmxV2.venue_options(s, "0x" + "00" * 20)["deployment"] == "arbitrum" and s.gmx_fee_margin_pct == 150
    assert deployment_addresses("arbitrum") == ("0x1C3fa76e6E1088bCE750f23a5BFcffa1efEF6A41",
                                                "0x470fbC46bcC0f16532691Df360A07d8Bf5ee0789")
    with pytest.raises(ConfigError, match="HEDGER_GMX_DEPLOYMENT"):
        Settings.from_env({**base, "HEDGER_GMX_DEPLOYMENT": "optimism"})
    with pytest.raises(ConfigError, match="HEDGER_GMX_FEE_MARGIN"):
        Settings.from_env({**base, "HEDGER_GMX_FEE_MARGIN": "0.9"})
    from hedger.protocols.gmx_v2.adapter import GmxV2
    with pytest.raises(ConfigError, match="HEDGER_GMX_EXCHANGE_ROUTER"):
        GmxV2(Web3(), base["HEDGER_MARKET"], base["HEDGER_COLLATERAL_TOKEN"])


def test_status_lists_pending_orders_with_their_age(g: G, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from hedger.cli import main
    g.cycle()
    g.chain.advance(40)
    g.chain.set_price(3000)
    env = {**g.env}
    import os
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert main(["status", "--json"]) == 0
        d = json.loads(capsys.readouterr().out)
        (o,) = d["orders"]
        assert o["kind"] == "increase" and o["state"] == "pending" and o["age_s"] >= 40
        assert d["funding_rate"] is None and d["carry_rate_per_day"] == 0
        assert main(["status"]) == 0
        out = capsys.readouterr().out
        assert "order" in out and "pending increase" in out and "age" in out and "carry" in out
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _env(env: dict[str, str]) -> Any:
    import contextlib
    import os

    @contextlib.contextmanager
    def cm() -> Iterator[None]:
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    return cm()


def test_check_verifies_the_router_holds_gmx_controller_role(g: G, capsys: pytest.CaptureFixture[str]) -> None:
    from hedger.cli import main
    with _env(g.env):
        code = main(["check"])
    out = capsys.readouterr().out
    assert "holds GMX's CONTROLLER role" in out, out
    assert code == 0, out
    # a redeployed router: GMX revokes the old one's role, and check says so
    transact(g.chain.deployer, "GmxRoleStore", g.s.role_store, "revokeRole", g.s.exchange_router, gi.CONTROLLER)
    with _env(g.env):
        code = main(["check"])
    out = capsys.readouterr().out
    assert code != 0 and "LACKS GMX's CONTROLLER role" in out


def test_gas_per_action_on_the_standin(g: G, capsys: pytest.CaptureFixture[str]) -> None:
    """Measured, for the report: our order creation (multicall), GMX's keeper execution, a cancel."""
    res = g.cycle()
    create = res.sent[-1].gas_used
    execute = g.execute()["gasUsed"]
    g.chain.mint_weth(g.address, 1 * WETH)
    g.cycle()
    g.chain.advance(301)
    g.chain.set_price(3000)
    cancel = g.cycle().sent[-1].gas_used
    with capsys.disabled():
        print(f"\ngas on the GMX v2 stand-in: create order (multicall) {create:,}, keeper execution of the opening "
              f"{execute:,}, cancelOrder {cancel:,}")
    assert 0 < cancel < create < execute


def test_negative_exposure_is_hedged_with_a_long(g: G) -> None:
    res = g.cycle(HEDGER_EXTRA_EXPOSURE="-4")                           # holding 2, short 4 elsewhere: net -2
    assert res.outcome == "acted" and res.decision.size_delta == 2 * WETH, res.decision.reason
    (o,) = g.read().account.orders
    assert o.kind is OrderKind.INCREASE and o.size_delta > 0
    g.execute()
    snap = g.read()
    assert snap.account.size == 2 * WETH and 0 < snap.account.liquidation_price < 3000 * 10**18
    assert g.cycle(HEDGER_EXTRA_EXPOSURE="-4").decision.code == "within_band"


def test_unwind_closes_the_hedge_and_gmx_pays_the_collateral_back(g: G) -> None:
    from hedger.cycle.unwind import unwind
    opened(g)
    wallet = g.read().account.collateral_wallet
    said: list[str] = []

    def say(msg: str) -> None:          # GMX's keeper executes the close while the unwind waits for it
        said.append(msg)
        if msg.startswith("waiting for the pending order"):
            g.execute()

    r = unwind(g.keeper(), timeout=60, poll=0.05, say=say)
    assert r.done and r.exit_code == 0, (r.message, said)
    snap = g.read()
    assert snap.account.size == 0 and snap.account.orders == ()
    assert snap.account.collateral_wallet > wallet                      # the whole collateral came back
    assert any(m.startswith("waiting for the pending order") for m in said)


def test_the_unwinds_closing_order_is_booked_before_it_ends(g: G) -> None:
    """The unwind waits for GMX's keeper to execute its closing order, then ends: the journal still held
    the order as pending, so `hedger report` counted "1 two-step order created but not executed ... no
    fill, no fee" (the close's fee missing) until a later cycle. The unwind books the fill before it ends."""
    from hedger.cycle.unwind import unwind
    from hedger.ops.report import build_report
    opened(g)
    k = g.keeper()
    k.cycle()                                                           # the opening's fill booked
    opening_fees = build_report(k.journal, g.address, g.s.market).total.fees

    def say(msg: str) -> None:
        if msg.startswith("waiting for the pending order"):
            g.execute()

    r = unwind(g.keeper(), timeout=60, poll=0.05, say=say)
    assert r.done, r.message
    k = g.keeper()
    head = k.reader.head()
    assert k.journal.open_orders(head.chain_id, head.genesis_hash, g.address, g.s.market) == []
    assert build_report(k.journal, g.address, g.s.market).total.fees > opening_fees


def test_report_counts_the_fees_gmx_charged_in_the_keepers_transaction(g: G) -> None:
    from hedger.ops.report import build_report
    g.cycle()
    g.execute()
    k = g.keeper()
    k.cycle()                                                           # reconciles: executed, fill from events
    rep = build_report(k.journal, g.address, g.s.market)
    assert rep.total.fees == 6_000 * 6 * 10**18 // 10_000 and not rep.total.fee_estimated
    assert rep.total.gas_wei > 0


def test_a_collateral_order_is_booked_as_no_size_and_settled_by_the_venues_record(g: G) -> None:
    opened(g)
    g.chain.set_price(4300)                                             # the short needs margin
    res = g.cycle()
    assert res.decision.code == "top_up", res.decision.reason
    (o,) = g.read().account.orders
    assert o.kind is OrderKind.COLLATERAL_IN and o.size_delta == 0
    k = g.keeper()
    tx = res.sent[-1].tx_hash
    assert int(k.journal.order_row(tx)["size_delta"]) == 0              # not the collateral amount
    k.cycle()                                                           # still pending: held
    assert k.journal.order_row(tx)["state"] == "pending"
    g.execute()
    later = g.keeper().cycle()
    row = g.keeper().journal.order_row(tx)
    assert row["state"] == "executed" and row["fill_tx"], later.notes
    assert not any("not submitted by this hedger" in n for n in later.notes)


# --------------------------------------------------------------------------- claims (funding received)
def _shorts_receive_funding(g: G) -> None:
    """Funding on, and another trader long $60,000: longs pay, our short receives (claimable)."""
    from hedger.sim.gmx_standin import GmxParams, execute_order
    from tests.test_gmx_standin import create_order
    g.chain.admin("GmxDataStore", g.s.data_store, "setUint", gi.funding_factor_key(g.s.market),
                  GmxParams().funding_factor)
    key, _ = create_order(g.chain.w3, g.s, 3, collateral=20_000 * USDC, size_usd=60_000 * 10**30, is_long=True,
                          acceptable_price=2**256 - 1)
    execute_order(sender(g.chain.w3, KEEPER), g.s, key, 3000 * 10**12)


def _accrue(g: G, seconds: int) -> None:
    g.chain.advance(seconds)
    g.chain.set_price(3000)                                             # the feed stays fresh


def test_funding_received_becomes_claimable_is_claimed_once_worth_it_reported_and_unwound(
        g: G, capsys: pytest.CaptureFixture[str]) -> None:
    from hedger.ops.report import build_report
    opened(g)
    _shorts_receive_funding(g)
    _accrue(g, 86_400)
    snap = g.read()
    assert snap.market.claimable_funding_amount == 0                    # received, but not settled yet
    g.chain.mint_weth(g.address, 1 * WETH)                              # our next order settles it (GMX: on update)
    assert g.cycle().outcome == "acted"
    g.execute()
    snap = g.read()
    claimable = snap.market.claimable_funding_amount
    assert claimable > 5 * USDC                                         # a day of the longs' funding
    from hedger.core.model import model_for
    assert model_for(snap).claimable_usd() == claimable * 10**12
    held = g.cycle(HEDGER_MIN_CLAIM_USD=str(claimable // USDC + 1))     # not worth a transaction yet
    assert held.outcome == "held" and held.plan.actions == ()
    wallet = g.read().account.collateral_wallet
    res = g.cycle()
    assert res.outcome == "acted", res.error
    assert res.decision.claim_usd == claimable * 10**12
    assert [(c.function, c.amount) for c in res.calls] == [("claimFundingFees", claimable)]
    after = g.read()
    assert after.market.claimable_funding_amount == 0
    assert after.account.collateral_wallet == wallet + claimable        # paid to the account
    with capsys.disabled():
        print(f"\ngas on the GMX v2 stand-in: claimFundingFees {res.sent[-1].gas_used:,}")
    assert g.cycle().plan.actions == ()                                 # claimed once
    k = g.keeper()
    rep = build_report(k.journal, g.address, g.s.market)
    assert rep.total.claimed == claimable * 10**12
    # more funding received; `hedger unwind` closes, and ends with the claim the close made due
    _accrue(g, 86_400)
    from hedger.cycle.unwind import unwind
    said: list[str] = []

    def say(msg: str) -> None:
        said.append(msg)
        if msg.startswith("waiting for the pending order"):
            g.execute()

    r = unwind(g.keeper(), timeout=60, poll=0.05, say=say)
    assert r.done and r.exit_code == 0, (r.message, said)
    snap = g.read()
    assert snap.account.size == 0 and snap.market.claimable_funding_amount == 0
    claims = [c for res in r.cycles for c in res.calls if c.function == "claimFundingFees"]
    assert claims and claims[-1].amount > 0 and "nothing left to claim" in r.message
    assert build_report(k.journal, g.address, g.s.market).total.claimed == (claimable + claims[-1].amount) * 10**12


def test_capped_price_impact_is_read_by_time_key_and_claimed(g: G, capsys: pytest.CaptureFixture[str]) -> None:
    """claimCollateral: negative impact beyond MAX_POSITION_IMPACT_FACTOR is held by time key."""
    opened(g)
    ds = g.s.data_store
    tk = g.chain.now() // 3600
    g.chain.admin("GmxDataStore", ds, "setUint", gi.claimable_collateral_amount_key(g.s.market, g.chain.d.collateral,
                                                                                    tk, g.address), 7 * USDC)
    g.chain.mint_usdc(g.s.position_engine, 7 * USDC)
    snap = g.read()
    assert snap.market.claimable_collateral == ((tk, 7 * USDC),)
    wallet = snap.account.collateral_wallet
    res = g.cycle()
    assert [(c.function, c.args[2]) for c in res.calls] == [("claimCollateral", [tk])], res.decision.reason
    with capsys.disabled():
        print(f"\ngas on the GMX v2 stand-in: claimCollateral (one time key) {res.sent[-1].gas_used:,}")
    assert g.read().account.collateral_wallet == wallet + 7 * USDC
    assert g.read().market.claimable_collateral == ()


# --------------------------------------------------------------------------- auto-deleveraging
def test_adl_of_the_hedge_in_a_crash_is_detected_noted_and_rehedged(g: G) -> None:
    """GMX's ADL keeper halves the profitable short after a crash (AdlHandler.executeAdl): the next
    cycle sees the position smaller than it left it by no order of ours, says so (the ``adl``
    alert's source) and orders the hedge back."""
    from hedger.sim.gmx_standin import enable_adl, execute_adl
    opened(g)
    g.chain.set_price(2500)                                             # crash: the short is in profit
    quiet = g.cycle()                                                   # (withdraws the excess: an order)
    assert quiet.reduced_by_venue == 0
    g.execute()
    assert g.cycle().reduced_by_venue == 0                              # our own order: no alarm
    keeper = sender(g.chain.w3, KEEPER)
    with pytest.raises(Exception):                                     # not enabled: AdlNotEnabled
        execute_adl(keeper, g.s, g.address, False, 3_000 * 10**30, 2500 * 10**12)
    enable_adl(sender(g.chain.w3, 0), g.s, is_long=False)
    with pytest.raises(Exception):                                     # only an ADL_KEEPER
        execute_adl(sender(g.chain.w3, 5), g.s, g.address, False, 3_000 * 10**30, 2500 * 10**12)
    wallet = g.read().account.collateral_wallet
    execute_adl(keeper, g.s, g.address, False, 3_000 * 10**30, 2500 * 10**12)
    snap = g.read()
    assert snap.account.size == -1 * WETH                               # half the size, at 3,000 entry
    assert snap.account.collateral_wallet > wallet                      # the profit paid to the account
    res = g.cycle()
    assert res.reduced_by_venue == 1 * WETH
    assert any("by no order of ours" in n for n in res.notes)
    assert res.outcome == "acted" and res.decision.size_delta < 0, res.decision.reason  # the hedge ordered back
    g.execute()
    assert g.read().account.size == -2 * WETH
    assert g.cycle().reduced_by_venue == 0                              # our own order: no alarm


def test_a_reduction_after_the_price_moved_closes_the_tokens_asked(g: G) -> None:
    """GMX closes sizeInTokens x sizeDeltaUsd / sizeInUsd: a decrease is sized in the position's
    entry value (was: at the current price, which at 3,300 closed 10% too much)."""
    opened(g)
    g.chain.set_price(3300)
    g.chain.call_as(HEDGER, "ReferenceToken", g.chain.d.spot, "transfer", dev_account(5).address, 1 * WETH)
    res = g.cycle()
    assert res.outcome == "acted" and res.decision.size_delta == 1 * WETH, res.decision.reason
    (o,) = g.read().account.orders
    assert o.kind is OrderKind.DECREASE and o.size_delta == 1 * WETH
    g.execute()
    assert g.read().account.size == -1 * WETH


@pytest.mark.parametrize("price_at_execution", [2990, 3100])
def test_an_order_filled_at_another_price_is_booked_at_the_size_gmx_executed(g: G, price_at_execution: int) -> None:
    """GMX sizes an increase in USD: created at 3,000 for about 2 ETH, executed at 2,990 (within the
    order's acceptable price) it adds 2.0067 ETH, at 3,100 1.935 ETH, not the size booked. The
    next cycle takes the size GMX executed from its events: no "changed outside the hedger" and
    no auto-deleveraging alarm for our own order, then or a cycle later."""
    assert g.cycle().outcome == "acted"
    g.chain.set_price(price_at_execution)
    g.execute()
    size = g.read().account.size
    assert abs(size + 6000 * WETH // price_at_execution) <= 1               # $6,000 at the execution price
    res = g.cycle()
    assert any("was filled" in n for n in res.notes), res.notes
    assert not any("changed outside" in n for n in res.notes), res.notes
    assert res.reduced_by_venue == 0
    assert not any("changed outside" in n for n in g.cycle().notes)


def test_adl_in_the_window_where_our_own_order_executed_is_still_detected(g: G) -> None:
    """Our order (the withdrawal after a crash) and GMX's ADL both change the position before the
    next cycle: the cycle books our order at the size GMX's events say it executed (none: a
    collateral order), so the rest of the change is the venue's, and the ADL is still seen (it was
    taken for our own fill, and no alarm was raised)."""
    from hedger.sim.gmx_standin import enable_adl, execute_adl
    opened(g)
    g.chain.set_price(2500)                                             # crash: the short is in profit
    assert g.cycle().outcome == "acted"                                 # withdraws the excess: an order
    enable_adl(sender(g.chain.w3, 0), g.s, is_long=False)
    g.execute()                                                         # our order executes ...
    execute_adl(sender(g.chain.w3, KEEPER), g.s, g.address, False, 3_000 * 10**30, 2500 * 10**12)
    assert g.read().account.size == -1 * WETH                           # ... and GMX halves the short
    res = g.cycle()
    assert any("was filled" in n for n in res.notes), res.notes         # our order, found executed
    assert res.reduced_by_venue == 1 * WETH, res.notes
    assert any("by no order of ours" in n for n in res.notes)
    assert res.outcome == "acted" and res.decision.size_delta < 0, res.decision.reason  # the hedge ordered back


def test_a_wrong_exchange_router_or_deployment_is_named(g: G, capsys: pytest.CaptureFixture[str]) -> None:
    """HEDGER_GMX_EXCHANGE_ROUTER at an address without GMX's router made `hedger status` die `unexpected
    BadFunctionCallOutput` (exit 1); HEDGER_GMX_DEPLOYMENT=arbitrum against a node of another chain was
    blamed on HEDGER_MARKET. Both now refuse (exit 5) naming the router setting and, for the address
    book, the chain."""
    from hedger.cli import main
    eoa = dev_account(8).address
    with _env({**g.env, "HEDGER_GMX_EXCHANGE_ROUTER": eoa}):
        assert main(["status"]) == 5
    err = capsys.readouterr().err
    assert "unexpected" not in err and "HEDGER_GMX_EXCHANGE_ROUTER" in err and eoa in err
    with _env({**g.env, "HEDGER_GMX_EXCHANGE_ROUTER": eoa}):
        assert main(["check"]) == 5
    out = capsys.readouterr().out                        # its own line and fix, not HEDGER_MARKET's
    assert "FAIL market" in out and "fix: set HEDGER_GMX_EXCHANGE_ROUTER" in out
    with _env({**g.env, "HEDGER_GMX_READER": g.s.exchange_router}):         # no Reader there
        assert main(["status"]) == 5
    err = capsys.readouterr().err
    assert "unexpected" not in err and "HEDGER_GMX_READER" in err
    env = {k: v for k, v in g.env.items() if k not in ("HEDGER_GMX_EXCHANGE_ROUTER", "HEDGER_GMX_READER")}
    with _env({**env, "HEDGER_GMX_DEPLOYMENT": "arbitrum"}):
        assert main(["status"]) == 5
    err = capsys.readouterr().err
    assert "HEDGER_GMX_DEPLOYMENT" in err and "31337" in err
