"""End to end on the real Aave v3 and Uniswap v3 (npm artifacts): the keeper hedges a holding kept
by another address (HEDGER_HOLDER) by borrowing on Aave from its own signer, selling on Uniswap and
supplying the proceeds; it follows the holding, restores the health-factor band after a +30% move,
refuses a stale feed, and after a kill between the borrow and the sale finishes the sale without
borrowing again."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

import pytest
from web3 import Web3

from hedger.chain import executor
from hedger.chain.executor import KeySigner, TxSender
from hedger.cli import status_dict
from hedger.config import Settings
from hedger.core.secrets import Secret
from hedger.cycle.keeper import Keeper
from hedger.decide import policy
from hedger.sim.aave_uniswap import (USDC_UNIT, WETH_UNIT, AaveUniswapDeployment, arbitrage_pool, artifact,
                                     deploy_aave_uniswap, set_prices)
from hedger.sim.localchain import Anvil, dev_account
from hedger.sim.npm_artifacts import ArtifactDeployer
from hedger.state.journal import Journal
from tests.conftest import web3_at
from tests.rpcproxy import FaultProxy

SIGNER, TRADER, HOLDER = 1, 2, 3
UNIT = 10**18


def sender(w3: Web3, index: int) -> TxSender:
    return TxSender(w3, KeySigner(Secret(dev_account(index).key.hex())))


@pytest.fixture(scope="module")
def w3(module_anvil: Anvil) -> Web3:
    return web3_at(module_anvil)


@pytest.fixture(scope="module")
def deployed(w3: Web3) -> AaveUniswapDeployment:
    return deploy_aave_uniswap(w3)


class Venue:
    def __init__(self, w3: Web3, d: AaveUniswapDeployment, url: str, journal: Path) -> None:
        self.w3, self.d = w3, d
        self.env = {"HEDGER_RPC_URL": url, "HEDGER_PRIVATE_KEY": dev_account(SIGNER).key.hex(),
                    "HEDGER_PROTOCOL": "aave-v3", "HEDGER_MARKET": d.addresses_provider, "HEDGER_ORACLE": d.weth_feed,
                    "HEDGER_SPOT_TOKEN": d.weth, "HEDGER_COLLATERAL_TOKEN": d.usdc,
                    "HEDGER_SWAP_ROUTER": d.swap_router, "HEDGER_SWAP_FEE": str(d.fee),
                    "HEDGER_HOLDER": dev_account(HOLDER).address, "HEDGER_JOURNAL_PATH": str(journal),
                    "HEDGER_CHAIN_ID": "31337", "HEDGER_COOLDOWN": "0"}
        self.t = ArtifactDeployer(sender(w3, TRADER))

    def keeper(self, **kw: str) -> Keeper:
        return Keeper.from_settings(Settings.from_env({**self.env, **kw}, dotenv=False))

    def mint(self, token: str, who: int, amount: int) -> None:
        art = artifact("WETH9Mocked") if token == self.d.weth else artifact("MintableERC20")
        self.t.call(art, token, "mint", dev_account(who).address, amount)

    def account(self) -> Any:
        return self.keeper().read().account

    def price(self, usd: int) -> None:
        set_prices(sender(self.w3, TRADER), self.d, usd * 10**8)
        arbitrage_pool(sender(self.w3, TRADER), self.d)


@pytest.fixture()
def v(w3: Web3, deployed: AaveUniswapDeployment, module_anvil: Anvil, tmp_path: Path) -> Iterator[Venue]:
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        venue = Venue(w3, deployed, module_anvil.url, tmp_path / "journal.sqlite")
        venue.price(3000)                                      # a fresh round whatever time earlier tests moved
        venue.mint(deployed.usdc, SIGNER, 80_000 * USDC_UNIT)  # the signer's own collateral
        yield venue
    finally:
        w3.provider.make_request("evm_revert", [snap])


def hf(a: Any) -> float:
    return a.health_factor / UNIT


def test_opens_the_hedge_of_a_holding_kept_by_another_address(v: Venue, capsys: pytest.CaptureFixture[str]) -> None:
    v.mint(v.d.weth, HOLDER, 10 * WETH_UNIT)
    res = v.keeper().cycle()
    assert (res.outcome, res.exit_code) == ("acted", 0), res.error
    assert [c.leg for c in res.calls] == ["approve", "main", "borrow", "approve", "main", "approve", "supply"]
    a = v.account()
    assert 10 * WETH_UNIT <= a.debt <= 10 * WETH_UNIT + WETH_UNIT // 10**6 and a.asset_wallet == 0
    assert abs(a.size + 10 * WETH_UNIT) <= WETH_UNIT // 10**6
    assert 1.35 <= hf(a) <= 2.0                                # inside the default band
    print("opened: HF", hf(a), "debt", a.debt, "supplied", a.supplied)
    # the holder's asset is untouched: the signer borrowed and sold its own
    weth = v.w3.eth.contract(address=v.d.weth, abi=artifact("MintableERC20").abi)
    assert weth.functions.balanceOf(dev_account(HOLDER).address).call() == 10 * WETH_UNIT
    # status --json keeps its keys and adds the health factor
    k = v.keeper()
    s = k.read()
    d = status_dict(s, policy.decide(s, k.params(s)))
    assert d["health_factor"] == pytest.approx(hf(a), rel=1e-3) and d["position_size"] == pytest.approx(-10, 1e-6)
    from hedger.cli import print_status_table
    print_status_table(d)
    assert "health factor" in capsys.readouterr().out
    # the next cycle holds: on target and in band
    res = v.keeper().cycle()
    assert (res.outcome, res.exit_code) == ("held", 0), res.decision.reason


def test_follows_the_holding_and_restores_the_band_after_a_30pct_move(v: Venue) -> None:
    v.mint(v.d.weth, HOLDER, 5 * WETH_UNIT)
    assert v.keeper().cycle().exit_code == 0
    v.mint(v.d.weth, HOLDER, 5 * WETH_UNIT)                 # the holding grows: the hedge follows
    res = v.keeper().cycle()
    assert res.exit_code == 0 and res.outcome == "acted", res.error
    a = v.account()
    assert abs(a.size + 10 * WETH_UNIT) <= WETH_UNIT // 10**5
    assert hf(a) == pytest.approx(1.6, abs=0.02)            # grown to the target health factor
    v.price(3900)                                            # +30%: HF 1.6 / 1.3 = 1.23, below 1.35
    assert hf(v.account()) < 1.35
    res = v.keeper().cycle()
    assert res.exit_code == 0 and res.outcome == "acted", res.error
    assert res.decision.margin_delta > 0 and res.decision.size_delta == 0
    assert hf(v.account()) == pytest.approx(1.6, abs=0.02)  # topped up to the target


def test_refuses_a_stale_feed_and_sends_nothing(v: Venue) -> None:
    v.mint(v.d.weth, HOLDER, 10 * WETH_UNIT)
    v.w3.provider.make_request("evm_increaseTime", [7200])
    v.w3.provider.make_request("evm_mine", [])
    nonce = v.w3.eth.get_transaction_count(dev_account(SIGNER).address)
    res = v.keeper().cycle()
    assert (res.outcome, res.exit_code) == ("refused", 3) and "stale" in res.decision.reason
    assert v.w3.eth.get_transaction_count(dev_account(SIGNER).address) == nonce
    assert v.account().debt == 0


class _Stop(BaseException):
    """Stands for the process being killed."""


def test_a_kill_after_the_borrow_is_finished_by_selling_never_by_borrowing_again(
        v: Venue, monkeypatch: pytest.MonkeyPatch) -> None:
    v.mint(v.d.weth, HOLDER, 10 * WETH_UNIT)
    seen = {"n": 0}

    def fault(name: str) -> None:
        if name == "after_receipt":
            seen["n"] += 1
            if seen["n"] == 3:                                 # deposit's approve, supply, then the borrow
                raise _Stop()
    monkeypatch.setattr(executor, "fault_point", fault)
    with pytest.raises(_Stop):
        v.keeper().cycle()
    monkeypatch.undo()
    a = v.account()
    assert a.debt >= 10 * WETH_UNIT and a.asset_wallet == 10 * WETH_UNIT
    assert abs(a.size) <= WETH_UNIT // 10**6                  # borrowed, unsold: not yet a hedge
    res = v.keeper().cycle()
    assert res.exit_code == 0, res.error
    assert any("never borrowing again" in n for n in res.notes), res.notes
    a = v.account()
    assert a.asset_wallet == 0 and a.debt <= 10 * WETH_UNIT + WETH_UNIT // 10**5     # borrowed once
    assert abs(a.size + 10 * WETH_UNIT) <= WETH_UNIT // 10**5
    j = Journal(v.env["HEDGER_JOURNAL_PATH"])
    killed = min(int(c["id"]) for c in j.cycles())
    assert [(r["kind"], r["state"]) for r in j.actions(killed)] == [("deposit", "done"), ("trade", "finished")]
    print("notes:", res.notes, "| decision:", res.decision.reason)


def test_a_sale_the_pool_cannot_fill_stops_the_cycle_and_is_finished_once_it_can(v: Venue) -> None:
    v.mint(v.d.weth, HOLDER, 10 * WETH_UNIT)
    arbitrage_pool(sender(v.w3, TRADER), v.d, 2850 * 10**8)   # the pool 5% under the feed: below the bound
    res = v.keeper().cycle()
    assert res.outcome in ("partial", "failed") and res.exit_code != 0
    assert [c.leg for c in res.calls[:3]] == ["approve", "main", "borrow"]
    assert any(t.call.function == "borrow" for t in res.sent)
    assert not any(t.call.function == "exactInputSingle" and t.status == 1 for t in res.sent)
    a = v.account()
    assert a.asset_wallet == 10 * WETH_UNIT and abs(a.size) <= WETH_UNIT // 10**6   # borrowed, unsold
    arbitrage_pool(sender(v.w3, TRADER), v.d)                 # the pool is back at the feed's price
    res = v.keeper().cycle()
    assert res.exit_code == 0, res.error
    assert any("never borrowing again" in n for n in res.notes), res.notes
    a = v.account()
    assert a.asset_wallet == 0 and a.debt <= 10 * WETH_UNIT + WETH_UNIT // 10**5
    assert abs(a.size + 10 * WETH_UNIT) <= WETH_UNIT // 10**5


# ------------------------------------------------------------------ unwind
BORROWER = 4


def erc20(v: Venue, token: str) -> Any:
    return v.w3.eth.contract(address=token, abi=artifact("MintableERC20").abi)


def borrow_all_collateral_liquidity(v: Venue) -> int:
    """Another account supplies WETH and borrows every USDC the reserve holds: utilisation 100%."""
    b = ArtifactDeployer(sender(v.w3, BORROWER))
    me = dev_account(BORROWER).address
    v.mint(v.d.weth, BORROWER, 60_000 * WETH_UNIT)
    b.call(artifact("MintableERC20"), v.d.weth, "approve", v.d.pool, 60_000 * WETH_UNIT)
    b.call(artifact("Pool"), v.d.pool, "supply", v.d.weth, 60_000 * WETH_UNIT, me, 0)
    available = erc20(v, v.d.usdc).functions.balanceOf(v.d.a_usdc).call()
    b.call(artifact("Pool"), v.d.pool, "borrow", v.d.usdc, available, 2, 0, me)
    return int(available)


def test_unwind_repays_all_the_debt_with_its_interest_then_withdraws_everything(v: Venue) -> None:
    from hedger.cycle.unwind import unwind
    v.mint(v.d.weth, HOLDER, 10 * WETH_UNIT)
    assert v.keeper().cycle().exit_code == 0
    v.w3.provider.make_request("evm_increaseTime", [30 * 86400])   # a month of interest on the debt
    v.price(3000)
    before = v.account()
    assert before.debt > 10 * WETH_UNIT                             # grown by the interest
    k = v.keeper()
    r = unwind(k, say=print)
    assert (r.done, r.exit_code) == (True, 0), r.message
    a = v.account()
    assert (a.debt, a.supplied, a.size) == (0, 0, 0)               # all repaid, all withdrawn: no dust left
    repay = [t for c in r.cycles for t in c.sent if t.call.function == "repay"]
    assert len(repay) == 1 and repay[0].call.args[1] == 2**256 - 1 # repaid with type(uint256).max
    assert 0 <= a.asset_wallet <= WETH_UNIT // 10**6                # what is left of the interest headroom
    # the signer's own collateral came back (less the swap costs of buying back 10 WETH)
    assert a.collateral_wallet >= 80_000 * USDC_UNIT - 10 * 3000 * USDC_UNIT // 100
    assert k.paused() is not None and k.paused()["reason"] == k.UNWOUND


def test_unwind_repays_and_exits_unfinished_when_the_collateral_reserve_is_all_lent_out(
        v: Venue, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from hedger.cli import main
    from hedger.cycle.unwind import UNFINISHED, unwind
    v.mint(v.d.weth, HOLDER, 10 * WETH_UNIT)
    assert v.keeper().cycle().exit_code == 0
    supplied = v.account().supplied
    assert borrow_all_collateral_liquidity(v) > 0
    k = v.keeper()
    for name, value in v.env.items():
        monkeypatch.setenv(name, value)
    assert main(["unwind"]) == UNFINISHED                           # `hedger unwind`: exit 13
    err = capsys.readouterr().err
    assert "utilisation 100%" in err and "run `hedger unwind` again" in err
    a = v.account()
    assert a.debt == 0 and a.size == 0                              # repaid first, from the wallet's collateral
    assert a.supplied >= supplied                                   # none of it could be withdrawn
    assert k.paused()["reason"] == k.UNFINISHED_UNWIND
    # the other account repays: the liquidity is back, and unwind finishes
    b = ArtifactDeployer(sender(v.w3, BORROWER))
    v.mint(v.d.usdc, BORROWER, 101_000_000 * USDC_UNIT)
    b.call(artifact("MintableERC20"), v.d.usdc, "approve", v.d.pool, 101_000_000 * USDC_UNIT)
    b.call(artifact("Pool"), v.d.pool, "repay", v.d.usdc, 2**256 - 1, 2, dev_account(BORROWER).address)
    r = unwind(v.keeper(), say=print)
    assert (r.done, r.exit_code) == (True, 0), r.message
    assert v.account().supplied == 0


# ------------------------------------------------------------------ check
def test_check_prints_the_pools_revision_the_reserves_the_account_the_router_and_the_signer(
        v: Venue, capsys: pytest.CaptureFixture[str]) -> None:
    from hedger.ops.check import print_checks, run_checks
    checks = {c.name: c for c in run_checks(v.keeper())}
    for name in ("aave pool revision", "aave asset reserve", "aave collateral reserve", "aave account",
                 "swap router", "signer vs holder"):
        assert checks[name].ok, (name, checks[name].detail)
    assert "revision 1" in checks["aave pool revision"].detail
    assert "v3-periphery SwapRouter" in checks["swap router"].detail
    assert dev_account(HOLDER).address in checks["signer vs holder"].detail
    print_checks(list(checks.values()))
    assert "frozen=False paused=False" in capsys.readouterr().out
    # the asset's reserve frozen and the account holding another reserve: both fail, naming why
    admin = ArtifactDeployer(sender(v.w3, 0))
    admin.call(artifact("PoolConfigurator"), v.d.pool_configurator, "setReserveFreeze", v.d.weth, True)
    v.mint(v.d.weth, SIGNER, WETH_UNIT)
    me = ArtifactDeployer(sender(v.w3, SIGNER))
    me.call(artifact("MintableERC20"), v.d.weth, "approve", v.d.pool, WETH_UNIT)
    admin.call(artifact("PoolConfigurator"), v.d.pool_configurator, "setReserveFreeze", v.d.weth, False)
    me.call(artifact("Pool"), v.d.pool, "supply", v.d.weth, WETH_UNIT, dev_account(SIGNER).address, 0)
    admin.call(artifact("PoolConfigurator"), v.d.pool_configurator, "setReserveFreeze", v.d.weth, True)
    checks = {c.name: c for c in run_checks(v.keeper())}
    assert not checks["aave asset reserve"].ok and "frozen=True" in checks["aave asset reserve"].detail
    assert not checks["aave account"].ok and "other Aave reserves" in checks["aave account"].fix
    assert not checks["aave account"].blocking


# ------------------------------------------------------------------ report
def test_report_counts_the_interest_paid_and_earned_the_swap_fees_and_the_gas(
        v: Venue, capsys: pytest.CaptureFixture[str]) -> None:
    from hedger.ops.report import build_report, print_report
    b = ArtifactDeployer(sender(v.w3, BORROWER))                 # others borrow: both reserves pay interest
    v.mint(v.d.weth, BORROWER, 60_000 * WETH_UNIT)
    b.call(artifact("MintableERC20"), v.d.weth, "approve", v.d.pool, 60_000 * WETH_UNIT)
    b.call(artifact("Pool"), v.d.pool, "supply", v.d.weth, 60_000 * WETH_UNIT, dev_account(BORROWER).address, 0)
    b.call(artifact("Pool"), v.d.pool, "borrow", v.d.usdc, 50_000_000 * USDC_UNIT, 2, 0, dev_account(BORROWER).address)
    b.call(artifact("Pool"), v.d.pool, "borrow", v.d.weth, 10_000 * WETH_UNIT, 2, 0, dev_account(BORROWER).address)
    v.mint(v.d.weth, HOLDER, 10 * WETH_UNIT)
    assert v.keeper().cycle().exit_code == 0
    opened = v.account()
    v.w3.provider.make_request("evm_increaseTime", [30 * 86400])
    v.price(3000)
    res = v.keeper().cycle()
    assert res.exit_code == 0 and not res.sent, res.decision.reason      # held: only the interest moved
    assert not any("differs from the journal" in n for n in res.notes), res.notes   # the interest is no outside change
    held = v.account()
    debt_growth = (held.debt - opened.debt) * 3000                       # E18 USD (WETH has 18 decimals)
    supply_growth = (held.supplied - opened.supplied) * 10**12           # E18 USD (USDC at 1.0)
    assert debt_growth > 5 * UNIT and supply_growth > 5 * UNIT           # a month at ~1.5% and ~3%
    rep = build_report(Journal(v.env["HEDGER_JOURNAL_PATH"]), dev_account(SIGNER).address, v.d.addresses_provider,
                       eth_usd=3000 * UNIT)
    assert rep.interest_paid == pytest.approx(debt_growth, rel=1e-4)
    assert rep.interest_earned == pytest.approx(supply_growth, rel=1e-4)
    assert (rep.total.funding_paid, rep.total.funding_received) == (rep.interest_paid, rep.interest_earned)
    pool_fee = 10 * 3000 * UNIT * 500 // 10**6                                         # the pool's 0.05%
    print("fees", rep.total.fees / UNIT, "premium", rep.swap_premium / UNIT)
    assert rep.total.fees - rep.swap_premium == pytest.approx(pool_fee, rel=0.01)    # the receipt's pool fee
    # selling 10 WETH into a 50,000 WETH full-range pool at the oracle's price: ~0.04% of impact
    assert 0.02 * pool_fee < rep.swap_premium < 1.5 * pool_fee
    assert rep.total.gas_wei > 0 and rep.total.gas_usd > 0
    print_report(rep)
    assert "Lending interest" in capsys.readouterr().out


# ------------------------------------------------------------------ a liquidation by a third party
LIQUIDATOR = 5


class MethodsProxy(FaultProxy):
    """The counting proxy, also recording the methods of each HTTP request (a batch's together)."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.posts: list[list[str]] = []

    def _handle(self, body: bytes) -> tuple[int, str, bytes] | None:
        payload = json.loads(body)
        self.posts.append([e["method"] for e in (payload if isinstance(payload, list) else [payload])])
        return super()._handle(body)


def test_a_liquidation_by_a_third_party_is_detected_alerted_reported_and_what_is_left_rehedged(
        v: Venue, monkeypatch: pytest.MonkeyPatch) -> None:
    from hedger.ops.alerts import Alerts
    from hedger.ops.report import build_report
    v.mint(v.d.weth, HOLDER, 10 * WETH_UNIT)
    assert v.keeper().cycle().exit_code == 0
    v.mint(v.d.usdc, SIGNER, 50_000 * USDC_UNIT)              # the collateral the re-hedge will need
    v.price(5700)                                             # +90%: the health factor below 1 (not 0.95)
    before = v.account()
    assert hf(before) < 1
    liq = ArtifactDeployer(sender(v.w3, LIQUIDATOR))
    v.mint(v.d.weth, LIQUIDATOR, 10 * WETH_UNIT)
    liq.call(artifact("MintableERC20"), v.d.weth, "approve", v.d.pool, 10 * WETH_UNIT)
    liq.call(artifact("Pool"), v.d.pool, "liquidationCall", v.d.usdc, v.d.weth, dev_account(SIGNER).address,
             2**256 - 1, False)                               # the close factor: half the debt
    after = v.account()
    assert after.debt < before.debt * 6 // 10 and after.supplied < before.supplied
    sent: list[tuple[str, str]] = []
    # a fresh keeper, as `hedger run-once` has: it does not know the pool's address before stage 1
    with MethodsProxy(v.env["HEDGER_RPC_URL"]) as proxy:
        k = Keeper.from_settings(Settings.from_env({**v.env, "HEDGER_ALERT_WEBHOOK": "http://127.0.0.1:9/hook",
                                                    "HEDGER_RPC_URL": proxy.url()}, dotenv=False))
        alerts = Alerts(k.settings)
        monkeypatch.setattr(alerts, "send", lambda kind, sev, msg, **kw: sent.append((kind, msg)))
        res = k.cycle()
    alerts.on_cycle(res)
    assert res.exit_code == 0 and res.outcome == "acted", res.error
    assert any("differs from the journal" in n for n in res.notes), res.notes       # reconcile's note
    (note,) = [n for n in res.notes if n.startswith("liquidated:")]
    # the lookup rode in stage 1's batch, not in an HTTP request of its own
    assert [m for m in proxy.posts if "eth_getLogs" in m] == [proxy.posts[1]], proxy.posts
    assert proxy.posts[1].count("eth_getLogs") == 1 and "eth_call" in proxy.posts[1], proxy.posts
    assert re.fullmatch(rf"liquidated: {dev_account(LIQUIDATOR).address} repaid [0-9]+ of the debt \({v.d.weth}\) "
                        rf"and took [0-9]+ of the collateral \({v.d.usdc}\) in tx 0x[0-9a-f]{{64}} \(block [0-9]+\); "
                        "the next plan re-hedges what is left", note), note
    assert [kind for kind, _ in sent].count("liquidated") == 1      # (beside liquidation_distance: HF near 1)
    # what is left is re-hedged: the short back to the holding, the health factor back in its band
    a = v.account()
    assert abs(a.size + 10 * WETH_UNIT) <= WETH_UNIT // 10**4
    assert hf(a) == pytest.approx(1.6, abs=0.03)
    rep = build_report(Journal(v.env["HEDGER_JOURNAL_PATH"]), dev_account(SIGNER).address, v.d.addresses_provider,
                       eth_usd=5700 * UNIT)
    assert note in rep.notes                                                        # `hedger report` lists it
    # once only: the next cycle finds no new liquidation; a dry run's reads, the lookup included, take
    # three HTTP requests once the keeper knows its fixed facts (five before: an eth_getLogs of its own,
    # and the block number every cycle)
    with MethodsProxy(v.env["HEDGER_RPC_URL"]) as proxy:
        k = v.keeper(HEDGER_RPC_URL=proxy.url())
        k.read()
        proxy.reset_counts()
        proxy.posts.clear()
        res = k.cycle(dry_run=True)
    assert proxy.http_requests == 3 and proxy.calls["eth_getLogs"] == 1, proxy.posts
    assert res.outcome in ("held", "dry_run"), (res.outcome, res.error)
    assert not any(n.startswith("liquidated:") for n in res.notes), res.notes
    # a node that refuses the logs (its limit on results, say) loses nothing else of the cycle: a note
    v.w3.provider.make_request("evm_mine", [])
    k = v.keeper()
    batch = k.reader._batch

    def refusing(reqs: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        return [{"jsonrpc": "2.0", "id": r["id"], "error": {"code": -32005, "message": "query returned more than "
                 "10000 results"}} if method == "eth_getLogs" else r for (method, _), r in zip(reqs, batch(reqs))]

    monkeypatch.setattr(k.reader, "_batch", refusing)
    res = k.cycle(dry_run=True)
    assert res.outcome in ("held", "dry_run") and res.snapshot is not None, (res.outcome, res.error)
    assert any(n.startswith("the venue's liquidation records of blocks ") and "more than 10000 results" in n
               for n in res.notes), res.notes


# ------------------------------------------------------------------ the pool's TWAP as the second price
def test_a_manipulated_spot_price_is_caught_by_the_twap_risk_increasing_refused_risk_reducing_sent(v: Venue) -> None:
    window = 300
    env = {"HEDGER_SECOND_ORACLE": f"univ3:{v.d.uniswap_pool}:{window}"}
    v.w3.provider.make_request("evm_increaseTime", [2 * window])   # the pool's observations cover the window
    v.price(3000)
    v.mint(v.d.weth, HOLDER, 10 * WETH_UNIT)
    res = v.keeper(**env).cycle()
    assert (res.outcome, res.exit_code) == ("acted", 0), res.error or res.decision.reason
    v.w3.provider.make_request("evm_increaseTime", [2 * window])
    # a big swap moves the pool's spot price 20% and the feed follows; the TWAP lags at ~3000
    v.price(3600)
    s = v.keeper(**env).read()
    assert s.reference_price is not None and s.reference_price < 3100 * UNIT
    # the holding grows: growing the short increases risk at a price in doubt: refused, nothing sent
    v.mint(v.d.weth, HOLDER, 5 * WETH_UNIT)
    nonce = v.w3.eth.get_transaction_count(dev_account(SIGNER).address)
    debt = v.account().debt
    res = v.keeper(**env).cycle()
    assert not res.sent and "disagree" in res.decision.reason and "not growing the hedge" in res.decision.reason
    assert v.w3.eth.get_transaction_count(dev_account(SIGNER).address) == nonce and v.account().debt == debt
    # the holding shrinks instead: reducing the short lowers the risk, and goes at the same prices
    weth = ArtifactDeployer(sender(v.w3, HOLDER))
    weth.call(artifact("MintableERC20"), v.d.weth, "transfer", dev_account(TRADER).address, 10 * WETH_UNIT)
    res = v.keeper(**env).cycle()
    assert (res.outcome, res.exit_code) == ("acted", 0), res.error or res.decision.reason
    assert res.decision.size_delta > 0 and any(t.call.function == "repay" for t in res.sent)
    assert abs(v.account().size + 5 * WETH_UNIT) <= WETH_UNIT // 10**4
