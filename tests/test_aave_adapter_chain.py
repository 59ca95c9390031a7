"""The aave-v3 adapter against the real Aave v3 and Uniswap v3 (npm artifacts) on anvil: it reads
the provider, the reserves and the account in three round trips, turns each action into its legs
(borrow, swap, supply; withdraw, swap, repay) with bounds from the oracle, and what the chain then
holds is what the model predicted. A swap the pool cannot fill within the bound reverts and sends
nothing more; the borrow before it is finished by ``resume``, never borrowed again."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterator

import pytest
from web3 import Web3
from web3.providers.base import BaseProvider

from hedger.chain.executor import KeySigner, TxSender
from hedger.chain.reader import ChainReader
from hedger.core.errors import SimulationFailed
from hedger.core.model import model_for
from hedger.core.secrets import Secret
from hedger.core.types import (Action, ActionKind, ChainView, Exposure, FeedRound, JournaledAction, Leg, Snapshot)
from hedger.decide.planner import price_bound
from hedger.protocols.aave_v3.adapter import AaveV3, AaveVenueAccount, AaveVenueState
from hedger.sim.aave_uniswap import (USDC_UNIT, WETH_UNIT, AaveUniswapDeployment, arbitrage_pool, artifact,
                                     deploy_aave_uniswap, pool_answer, set_prices)
from hedger.sim.localchain import Anvil, dev_account
from hedger.sim.npm_artifacts import ArtifactDeployer
from tests.conftest import web3_at

USER, TRADER = 1, 2
UNIT = 10**18
GAS: dict[str, list[int]] = {}


def sender(w3: Web3, index: int) -> TxSender:
    return TxSender(w3, KeySigner(Secret(dev_account(index).key.hex())))


@pytest.fixture(scope="module")
def w3(module_anvil: Anvil) -> Web3:
    return web3_at(module_anvil)


@pytest.fixture(scope="module", params=[False, True], ids=["asset-token1", "asset-token0"])
def deployed(request: pytest.FixtureRequest, w3: Web3) -> AaveUniswapDeployment:
    return deploy_aave_uniswap(w3, asset_is_token0=request.param)


@pytest.fixture()
def m(w3: Web3, deployed: AaveUniswapDeployment) -> Iterator[AaveUniswapDeployment]:
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        ArtifactDeployer(sender(w3, TRADER)).call(artifact("MintableERC20"), deployed.usdc, "mint",
                                                  dev_account(USER).address, 50_000 * USDC_UNIT)
        yield deployed
    finally:
        w3.provider.make_request("evm_revert", [snap])


def adapter(w3: Web3, d: AaveUniswapDeployment) -> AaveV3:
    return AaveV3(w3, d.addresses_provider, d.usdc, two_step=False, asset=d.weth, swap_router=d.swap_router,
                  swap_fee=d.fee, account=dev_account(USER).address)


def read(w3: Web3, ad: AaveV3) -> tuple[AaveVenueState, AaveVenueAccount]:
    r = ChainReader(w3)
    head = r.head()
    me = dev_account(USER).address
    res = r.call_many(ad.read_specs(me), head.block_number)
    res = {**res, **r.call_many(ad.read_stage2(me, res), head.block_number)}
    assert r.round_trips == 3
    return ad.parse(res, me, head)


def model(market: Any, acct: Any) -> Any:
    head = ChainView(chain_id=31337, block_number=0, block_timestamp=0, wall_clock=0)
    feed = FeedRound(address="0x" + "00" * 20, decimals=18, round_id=1, answer=market.price, started_at=0,
                     updated_at=0)
    return model_for(Snapshot(chain=head, oracle=feed, sequencer=None, market=market, account=acct,
                              exposure=Exposure(spot_balance=0, spot_decimals=18, extra=0), venue="aave-v3"))


def send(w3: Web3, calls: list[Any]) -> list[dict[str, Any]]:
    s = sender(w3, USER)
    out = []
    for c in calls:
        r = s.send(c.to, c.data)
        GAS.setdefault(f"{c.action.value}/{c.leg}/{c.function}", []).append(int(r["gasUsed"]))
        out.append(r)
    return out


def short_action(mdl: Any, size: int, slippage: int = UNIT // 200) -> Action:
    fill, _ = mdl.fill(size)
    return Action(ActionKind.TRADE, size, price_bound=price_bound(fill, size, slippage))


def test_reads_the_market_and_the_account_and_detects_the_router(w3: Web3, m: AaveUniswapDeployment) -> None:
    ad = adapter(w3, m)
    market, acct = read(w3, ad)
    assert market.pool == m.pool and ad.spender == m.pool and not market.router02    # v3-periphery SwapRouter
    assert market.price == 3000 * UNIT and market.collateral_price == UNIT and market.asset_decimals == 18
    assert (market.liquidation_threshold_bps, market.ltv_bps) == (8000, 7700)
    assert market.asset_available == 20_000 * WETH_UNIT and market.collateral_available == 100_000_000 * USDC_UNIT
    assert market.feed == m.weth_feed
    assert (acct.size, acct.debt, acct.supplied, acct.asset_wallet) == (0, 0, 0, 0)
    assert acct.collateral_wallet == 50_000 * USDC_UNIT and acct.e_mode == 0 and acct.other_reserves == ""
    ok, detail = ad.interface_check()                       # `hedger check`: the pool's revision, the reserves
    assert ok and "revision 1" in detail and "borrowing=on" in detail


def test_legs_do_what_the_actions_say_and_the_chain_holds_what_the_model_predicted(
        w3: Web3, m: AaveUniswapDeployment) -> None:
    ad = adapter(w3, m)
    market, acct = read(w3, ad)
    dep = ad.build_calls((Action(ActionKind.DEPOSIT, 10_000 * USDC_UNIT, risk_reducing=True),), acct, market)
    assert [(c.leg, c.function) for c in dep] == [("approve", "approve"), ("main", "supply")]
    assert dep[0].args == (m.pool, 10_000 * USDC_UNIT)                      # bounded to the deposit
    send(w3, dep)
    market, acct = read(w3, ad)
    assert acct.supplied == 10_000 * USDC_UNIT and acct.collateral_wallet == 40_000 * USDC_UNIT

    mdl = model(market, acct)
    predicted = mdl.after(-2 * WETH_UNIT, 0)
    act = short_action(mdl, -2 * WETH_UNIT)
    calls = ad.build_calls((act,), acct, market)
    assert [(c.leg, c.function) for c in calls] == [("borrow", "borrow"), ("approve", "approve"),
                                                    ("main", "exactInputSingle"), ("approve", "approve"),
                                                    ("supply", "supply")]
    swap = calls[2]
    params = swap.args[0]
    min_out = params[6]
    assert params[5] == 2 * WETH_UNIT and min_out == -(-2 * act.price_bound // 10**12)   # the bound, in USDC
    assert params[4] == market.block_timestamp + 600                                   # deadline from the block
    assert calls[3].args == (m.pool, min_out) and calls[4].args[1] == min_out
    send(w3, calls)
    market, acct = read(w3, ad)
    assert acct.debt >= 2 * WETH_UNIT and acct.debt - 2 * WETH_UNIT <= WETH_UNIT // 10**6
    assert acct.size == -acct.debt and acct.asset_wallet == 0
    assert acct.supplied >= 10_000 * USDC_UNIT + min_out - 1
    surplus = acct.collateral_wallet - 40_000 * USDC_UNIT
    assert 0 <= surplus < 2 * 3000 * USDC_UNIT // 100                        # a better fill stays in the wallet
    hf = acct.health_factor
    assert abs(mdl.health_after(predicted) - hf) <= hf // 100                # within the 0.5% bound and impact

    # reduce by 1: withdraw the maximum in, buy exactly 1 WETH, repay it (an empty wallet: all withdrawn)
    send(w3, [ad._call(m.usdc, "ERC20", "collateral", "transfer", (m.deployer, acct.collateral_wallet),
                       Action(ActionKind.WITHDRAW, 0), "main", "empty the wallet")])
    market, acct = read(w3, ad)
    mdl = model(market, acct)
    act = short_action(mdl, WETH_UNIT)
    calls = ad.build_calls((act,), acct, market)
    assert [(c.leg, c.function) for c in calls] == [("withdraw", "withdraw"), ("approve", "approve"),
                                                    ("main", "exactOutputSingle"), ("approve", "approve"),
                                                    ("repay", "repay")]
    max_in = calls[2].args[0][6]
    assert calls[0].args[1] == max_in == WETH_UNIT * act.price_bound // UNIT // 10**12
    send(w3, calls)
    market, acct2 = read(w3, ad)
    assert abs(acct2.debt - WETH_UNIT) <= WETH_UNIT // 10**6 and acct2.asset_wallet == 0
    assert acct2.collateral_wallet > acct.collateral_wallet                  # the unspent maximum in
    # withdraw collateral
    send(w3, ad.build_calls((Action(ActionKind.WITHDRAW, 1_000 * USDC_UNIT),), acct2, market))
    assert read(w3, ad)[1].collateral_wallet == acct2.collateral_wallet + 1_000 * USDC_UNIT


def test_a_reduce_pays_from_the_wallets_collateral_before_withdrawing(w3: Web3, m: AaveUniswapDeployment) -> None:
    ad = adapter(w3, m)
    assert ad.spender == m.pool                               # before any read: the provider names the pool
    market, acct = read(w3, ad)
    send(w3, ad.build_calls((Action(ActionKind.DEPOSIT, 10_000 * USDC_UNIT, risk_reducing=True),), acct, market))
    market, acct = read(w3, ad)
    send(w3, ad.build_calls((short_action(model(market, acct), -2 * WETH_UNIT),), acct, market))
    market, acct = read(w3, ad)
    assert acct.collateral_wallet > 40_000 * USDC_UNIT
    calls = ad.build_calls((short_action(model(market, acct), WETH_UNIT),), acct, market)
    assert "withdraw" not in [c.function for c in calls]     # 40,000 in the wallet covers the buy-back
    send(w3, calls)
    market, acct2 = read(w3, ad)
    assert acct2.supplied >= acct.supplied and abs(acct2.debt - (acct.debt - WETH_UNIT)) <= WETH_UNIT // 10**6
    # with too little in the wallet, only the rest is withdrawn
    acct3 = replace(acct2, collateral_wallet=1_000 * USDC_UNIT)
    calls = ad.build_calls((short_action(model(market, acct2), WETH_UNIT // 2),), acct3, market)
    max_in = [c for c in calls if c.leg == "main"][0].args[0][6]
    assert calls[0].function == "withdraw" and calls[0].args[1] == max_in - 1_000 * USDC_UNIT


def test_swapRouter02_from_its_npm_package_is_told_apart_and_carries_the_hedge(w3: Web3,
                                                                              m: AaveUniswapDeployment) -> None:
    """Uniswap's SwapRouter02 (@uniswap/swap-router-contracts, deployed from its artifact): answered
    factoryV2(), so the adapter sends the 7-field structs (no deadline); a short opens and shrinks
    through it on the real pool."""
    ad = AaveV3(w3, m.addresses_provider, m.usdc, two_step=False, asset=m.weth, swap_router=m.swap_router02,
                swap_fee=m.fee, account=dev_account(USER).address)
    market, acct = read(w3, ad)
    assert market.router02
    send(w3, ad.build_calls((Action(ActionKind.DEPOSIT, 10_000 * USDC_UNIT, risk_reducing=True),), acct, market))
    market, acct = read(w3, ad)
    mdl = model(market, acct)
    calls = ad.build_calls((short_action(mdl, -2 * WETH_UNIT),), acct, market)
    swap = [c for c in calls if c.leg == "main"][0]
    assert swap.data.startswith("0x04e45aaf") and len(swap.args[0]) == 7     # exactInputSingle, no deadline
    send(w3, calls)
    market, acct = read(w3, ad)
    assert acct.debt >= 2 * WETH_UNIT and acct.asset_wallet == 0 and acct.supplied > 15_900 * USDC_UNIT
    mdl = model(market, acct)
    calls = ad.build_calls((short_action(mdl, WETH_UNIT),), acct, market)
    assert [c for c in calls if c.leg == "main"][0].data.startswith("0x5023b4df")    # exactOutputSingle, 7 fields
    send(w3, calls)
    market, acct = read(w3, ad)
    assert abs(acct.debt - WETH_UNIT) <= WETH_UNIT // 10**6 and acct.asset_wallet == 0
    # the v3-periphery SwapRouter of the same deployment keeps its 8-field shape
    calls = adapter(w3, m).build_calls((Action(ActionKind.TRADE, -WETH_UNIT, price_bound=2900 * UNIT),), acct,
                                       replace(market, router02=False))
    assert [c for c in calls if c.leg == "main"][0].data.startswith("0x414bf389")


def _journaled(kind: ActionKind, amount: int, legs: list[str]) -> JournaledAction:
    return JournaledAction(id=1, cycle_id=1, seq=0, market="0x", kind=kind, amount=amount, legs_planned=5,
                           legs=tuple(Leg(leg=lg, amount=0, state="mined", tx_hash="0x") for lg in legs))


def test_a_swap_the_pool_cannot_fill_reverts_and_resume_sells_without_borrowing_again(
        w3: Web3, m: AaveUniswapDeployment) -> None:
    ad = adapter(w3, m)
    market, acct = read(w3, ad)
    send(w3, ad.build_calls((Action(ActionKind.DEPOSIT, 10_000 * USDC_UNIT, risk_reducing=True),), acct, market))
    market, acct = read(w3, ad)
    calls = ad.build_calls((short_action(model(market, acct), -2 * WETH_UNIT),), acct, market)
    send(w3, calls[:2])                                        # borrow and approve mined
    # someone pushes the pool's WETH price 5% down: the sale's minimum out cannot be met
    arbitrage_pool(sender(w3, TRADER), m, 2850 * 10**8)
    with pytest.raises(SimulationFailed):
        send(w3, calls[2:3])
    market, acct = read(w3, ad)
    debt = acct.debt
    assert acct.asset_wallet == 2 * WETH_UNIT and acct.size == -(acct.debt - 2 * WETH_UNIT)   # unsold: no short yet
    assert abs(acct.size) <= WETH_UNIT // 10**6
    # the pool comes back; reconcile asks the venue: finish, selling the wallet's asset, borrowing nothing
    arbitrage_pool(sender(w3, TRADER), m)
    assert abs(pool_answer(w3, m) - 3000 * 10**8) <= 10**8
    r = ad.resume(_journaled(ActionKind.TRADE, -2 * WETH_UNIT, ["borrow", "approve"]))
    assert r.how == "finish" and "never borrowing again" in r.note
    assert "borrow" not in [c.function for c in r.calls]
    send(w3, list(r.calls))
    market, acct = read(w3, ad)
    assert acct.asset_wallet == 0 and acct.debt - debt <= WETH_UNIT // 10**6     # borrowed once
    assert acct.size == -acct.debt and acct.supplied > 10_000 * USDC_UNIT + 5_900 * USDC_UNIT


def test_resume_finishes_a_reduce_whose_withdrawal_was_mined(w3: Web3, m: AaveUniswapDeployment) -> None:
    ad = adapter(w3, m)
    market, acct = read(w3, ad)
    send(w3, ad.build_calls((Action(ActionKind.DEPOSIT, 10_000 * USDC_UNIT, risk_reducing=True),), acct, market))
    market, acct = read(w3, ad)
    send(w3, ad.build_calls((short_action(model(market, acct), -2 * WETH_UNIT),), acct, market))
    market, acct = read(w3, ad)
    calls = ad.build_calls((short_action(model(market, acct), WETH_UNIT),), acct, market)
    send(w3, calls[:1])                                        # only the withdrawal mined
    r = ad.resume(_journaled(ActionKind.TRADE, WETH_UNIT, ["withdraw"]))
    assert r.how == "finish" and [c.function for c in r.calls][-1] == "repay"
    assert "withdraw" not in [c.function for c in r.calls]
    send(w3, list(r.calls))
    market, acct2 = read(w3, ad)
    assert abs(acct2.debt - (acct.debt - WETH_UNIT)) <= WETH_UNIT // 10**6


def test_an_account_in_emode_or_with_other_reserves_is_refused_by_the_model(w3: Web3,
                                                                           m: AaveUniswapDeployment) -> None:
    ad = adapter(w3, m)
    u = ArtifactDeployer(sender(w3, USER))
    me = dev_account(USER).address
    u.call(artifact("WETH9Mocked"), m.weth, "mint", me, WETH_UNIT)
    u.call(artifact("MintableERC20"), m.weth, "approve", m.pool, WETH_UNIT)
    u.call(artifact("Pool"), m.pool, "supply", m.weth, WETH_UNIT, me, 0)      # WETH as collateral: another use
    market, acct = read(w3, ad)
    assert acct.other_reserves and model(market, acct).account_refusal() is not None
    assert "other Aave reserves" in model(market, acct).account_refusal()


def test_resume_leaves_the_sale_to_the_guarded_plan_when_the_feed_is_stale(w3: Web3,
                                                                         m: AaveUniswapDeployment) -> None:
    ad = adapter(w3, m)
    market, acct = read(w3, ad)
    send(w3, ad.build_calls((Action(ActionKind.DEPOSIT, 10_000 * USDC_UNIT, risk_reducing=True),), acct, market))
    market, acct = read(w3, ad)
    calls = ad.build_calls((short_action(model(market, acct), -WETH_UNIT),), acct, market)
    send(w3, calls[:1])                                        # the borrow mined
    w3.provider.make_request("evm_increaseTime", [7200])
    w3.provider.make_request("evm_mine", [])
    r = ad.resume(_journaled(ActionKind.TRADE, -WETH_UNIT, ["borrow"]))
    assert r.how == "replan" and "stale" in r.note and r.calls == ()
    # and a plan sells what the wallet holds before it borrows any
    market, acct = read(w3, ad)
    again = ad.build_calls((short_action(model(market, acct), -WETH_UNIT),), acct, market)
    assert "borrow" not in [c.function for c in again]


# ------------------------------------------------------------------ liquidation records (no chain)
POOL_AT, OTHER_POOL = "0x" + "a1" * 20, "0x" + "b2" * 20
ME, LIQUIDATOR = "0x" + "c3" * 20, "0x" + "d4" * 20
COLLATERAL, ASSET = "0x" + "e5" * 20, "0x" + "f6" * 20
TX = "0x" + "07" * 32


def liquidation_log(pool: str, debt: int, taken: int) -> dict[str, Any]:
    """A raw JSON-RPC log of a pool's LiquidationCall of ME (hex strings, as a node answers it)."""
    def topic(a: str) -> str:
        return "0x" + "00" * 12 + a[2:].lower()
    data = Web3().codec.encode(["uint256", "uint256", "address", "bool"], [debt, taken, LIQUIDATOR, False])
    return {"address": pool, "blockNumber": "0x2a", "transactionHash": TX, "logIndex": "0x0",
            "transactionIndex": "0x0", "blockHash": "0x" + "08" * 32, "removed": False, "data": "0x" + data.hex(),
            "topics": [_event_topic(), topic(COLLATERAL), topic(ASSET), topic(ME)]}


def _event_topic() -> str:
    from eth_utils import keccak
    return "0x" + keccak(text="LiquidationCall(address,address,address,uint256,uint256,address,bool)").hex()


class Logs(BaseProvider):
    """Answers eth_getLogs with ``logs`` (and records the filters); nothing else."""

    def __init__(self, logs: list[dict[str, Any]]) -> None:
        super().__init__()
        self.logs = logs
        self.filters: list[dict[str, Any]] = []

    def make_request(self, method: Any, params: Any) -> Any:
        assert method == "eth_getLogs", method
        self.filters.append(params[0])
        return {"jsonrpc": "2.0", "id": 1, "result": self.logs}


def offline(logs: list[dict[str, Any]], pool: str = "") -> AaveV3:
    ad = AaveV3(Web3(Logs(logs)), "0x" + "99" * 20, COLLATERAL, two_step=False, asset=ASSET)
    ad._pool = pool                          # as a stage-2 read of the provider leaves it
    return ad


def test_the_liquidation_query_names_the_pool_once_known_and_the_account_by_its_topic() -> None:
    fresh = offline([]).liquidation_log_filter(ME, 10, 42)
    assert fresh == {"fromBlock": "0xa", "toBlock": "0x2a", "topics": [_event_topic(), None, None,
                                                                       "0x" + "00" * 12 + ME[2:]]}
    known = offline([], Web3.to_checksum_address(POOL_AT)).liquidation_log_filter(ME, 10, 42)
    assert known == {**fresh, "address": Web3.to_checksum_address(POOL_AT)}
    assert offline([]).liquidation_log_filter(ME, 43, 42) is None          # nothing new since the last reading


def test_liquidation_lines_from_raw_logs_keep_the_pools_own_events_only() -> None:
    ad = offline([], Web3.to_checksum_address(POOL_AT))
    ours, fork = liquidation_log(POOL_AT, 5 * 10**18, 9_000 * 10**6), liquidation_log(OTHER_POOL, 1, 2)
    assert ad.liquidations_from_logs([ours, fork]) == [
        f"liquidated: {Web3.to_checksum_address(LIQUIDATOR)} repaid {5 * 10**18} of the debt "
        f"({Web3.to_checksum_address(ASSET)}) and took {9_000 * 10**6} of the collateral "
        f"({Web3.to_checksum_address(COLLATERAL)}) in tx {TX} (block 42); the next plan re-hedges what is left"]


def test_liquidations_asks_its_own_get_logs_with_the_same_query() -> None:
    ad = offline([liquidation_log(POOL_AT, 7, 8)], Web3.to_checksum_address(POOL_AT))
    (line,) = ad.liquidations(ME, 10, 42)
    assert line.startswith(f"liquidated: {Web3.to_checksum_address(LIQUIDATOR)} repaid 7 of the debt")
    assert ad.w3.provider.filters == [ad.liquidation_log_filter(ME, 10, 42)]


def test_zz_gas_per_leg(w3: Web3) -> None:
    """Prints the gas each leg used in this module (for the report)."""
    for k, v in sorted(GAS.items()):
        print(f"gas {k}: {min(v)}-{max(v)}")
    assert GAS
