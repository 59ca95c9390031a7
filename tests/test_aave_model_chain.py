"""The Aave v3 market model against the real Aave v3 and Uniswap v3 (npm artifacts) on anvil:
what the model predicts (health factor, liquidation price, largest withdrawal, the effect of a
borrow-sell-supply, the carry) is what the pool then reports. The readings are taken as the
venue's adapter will take them: the data provider, the oracle, the debt and aTokens."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from web3 import Web3

from hedger.chain.executor import KeySigner, TxSender
from hedger.core.errors import SimulationFailed
from hedger.core.model import INFINITE
from hedger.core.secrets import Secret
from hedger.protocols.aave_v3.model import AaveAccountState, AaveMarketState, AaveModel
from hedger.sim.aave_uniswap import (USDC_UNIT, WETH_UNIT, AaveUniswapDeployment, artifact, deploy_aave_uniswap,
                                     set_prices, swap_exact_input)
from hedger.sim.localchain import Anvil, dev_account
from hedger.sim.npm_artifacts import ArtifactDeployer
from tests.conftest import web3_at

USER, TRADER = 1, 2
UNIT = 10**18


def sender(w3: Web3, index: int) -> TxSender:
    return TxSender(w3, KeySigner(Secret(dev_account(index).key.hex())))


def c(w3: Web3, name: str, address: str) -> Any:
    return w3.eth.contract(address=address, abi=artifact(name).abi)


@pytest.fixture(scope="module")
def w3(module_anvil: Anvil) -> Web3:
    return web3_at(module_anvil)


@pytest.fixture(scope="module")
def deployed(w3: Web3) -> AaveUniswapDeployment:
    return deploy_aave_uniswap(w3)


@pytest.fixture()
def m(w3: Web3, deployed: AaveUniswapDeployment) -> Iterator[AaveUniswapDeployment]:
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        yield deployed
    finally:
        w3.provider.make_request("evm_revert", [snap])


def read(w3: Web3, d: AaveUniswapDeployment, user: str) -> AaveModel:
    """The two reserves and the account, as the adapter reads them (one block)."""
    block = w3.eth.block_number
    dp = c(w3, "AaveProtocolDataProvider", d.data_provider).functions
    oracle = c(w3, "AaveOracle", d.oracle).functions
    erc20 = artifact("MintableERC20").abi

    def call(fn: Any) -> Any:
        return fn.call(block_identifier=block)

    conf_a, conf_c = call(dp.getReserveConfigurationData(d.weth)), call(dp.getReserveConfigurationData(d.usdc))
    data_a, data_c = call(dp.getReserveData(d.weth)), call(dp.getReserveData(d.usdc))
    borrow_cap, _ = call(dp.getReserveCaps(d.weth))
    _, supply_cap = call(dp.getReserveCaps(d.usdc))
    a_available = call(w3.eth.contract(address=d.weth, abi=erc20).functions.balanceOf(d.a_weth))
    c_available = call(w3.eth.contract(address=d.usdc, abi=erc20).functions.balanceOf(d.a_usdc))
    total_debt = int(data_a[4]) + int(data_a[3])
    mkt = AaveMarketState(
        address=d.addresses_provider, price=int(call(oracle.getAssetPrice(d.weth))) * 10**10, price_invalid=False,
        collateral_decimals=int(conf_c[0]), two_step=False, asset_decimals=int(conf_a[0]),
        collateral_price=int(call(oracle.getAssetPrice(d.usdc))) * 10**10,
        liquidation_threshold_bps=int(conf_c[2]), ltv_bps=int(conf_c[1]),
        borrow_rate_ray=int(data_a[6]), supply_rate_ray=int(data_c[5]), asset_available=int(a_available),
        borrow_cap_room=None if borrow_cap == 0 else max(0, borrow_cap * 10 ** int(conf_a[0]) - total_debt),
        supply_cap_room=None if supply_cap == 0 else max(0, supply_cap * 10 ** int(conf_c[0]) - int(data_c[2])),
        collateral_available=int(c_available), borrowing_enabled=bool(conf_a[6]), asset_frozen=bool(conf_a[9]),
        asset_paused=bool(call(dp.getPaused(d.weth))), collateral_frozen=bool(conf_c[9]),
        collateral_paused=bool(call(dp.getPaused(d.usdc))), swap_fee_ppm=d.fee)
    supplied = int(call(dp.getUserReserveData(d.usdc, user))[0])
    debt = int(call(dp.getUserReserveData(d.weth, user))[2])
    hf = int(call(c(w3, "Pool", d.pool).functions.getUserAccountData(user))[5])
    acct = AaveAccountState(address=user, size=-debt, margin=0, accessible_margin=0, liquidation_price=0,
                            accrued_funding=0, pnl=0, orders=(), collateral_wallet=0, collateral_allowance=0,
                            supplied=supplied, debt=debt, health_factor=INFINITE if hf >= 2**255 else hf)
    return AaveModel(market=mkt, account=acct)


def short(w3: Web3, d: AaveUniswapDeployment, collateral: int, borrow: int) -> tuple[TxSender, ArtifactDeployer]:
    """Supply ``collateral`` USDC, borrow ``borrow`` WETH, sell it and supply the proceeds."""
    user = sender(w3, USER)
    me = user.signer.address
    u = ArtifactDeployer(user)
    erc20, pool = artifact("MintableERC20"), artifact("Pool")
    u.call(erc20, d.usdc, "mint", me, collateral)
    u.call(erc20, d.usdc, "approve", d.pool, collateral)
    u.call(pool, d.pool, "supply", d.usdc, collateral, me, 0)
    if borrow:
        u.call(pool, d.pool, "borrow", d.weth, borrow, 2, 0, me)
        out = swap_exact_input(user, d, d.weth, borrow).amount_out
        u.call(erc20, d.usdc, "approve", d.pool, out)
        u.call(pool, d.pool, "supply", d.usdc, out, me, 0)
    return user, u


def hf_on_chain(w3: Web3, d: AaveUniswapDeployment, who: str) -> int:
    return int(c(w3, "Pool", d.pool).functions.getUserAccountData(who).call()[5])


def test_model_health_factor_is_the_pools(w3: Web3, m: AaveUniswapDeployment) -> None:
    user, _ = short(w3, m, 10_000 * USDC_UNIT, 2 * WETH_UNIT)
    mdl = read(w3, m, user.signer.address)
    assert mdl.account.debt >= 2 * WETH_UNIT and mdl.account.supplied > 15_900 * USDC_UNIT
    predicted = mdl.health_after(mdl.after(0, 0))
    chain = mdl.account.health_factor
    assert abs(predicted - chain) <= chain // 10**12, (predicted, chain)


def test_at_the_models_liquidation_price_the_pools_health_factor_reaches_one(w3: Web3,
                                                                            m: AaveUniswapDeployment) -> None:
    user, _ = short(w3, m, 10_000 * USDC_UNIT, 2 * WETH_UNIT)
    me = user.signer.address
    pt = read(w3, m, me).after(0, 0)
    liq_answer = pt.liquidation_price // 10**10               # the feed's 8 decimals
    set_prices(sender(w3, TRADER), m, liq_answer - 2)
    assert hf_on_chain(w3, m, me) >= UNIT                     # just below the price: still safe
    set_prices(sender(w3, TRADER), m, liq_answer + 2)
    assert hf_on_chain(w3, m, me) < UNIT                      # just above: liquidatable
    # and the distance the model gave is that move from the price it read
    assert pt.liq_distance == (pt.liquidation_price - 3000 * UNIT) * UNIT // (3000 * UNIT)


def test_the_largest_withdrawal_goes_through_and_a_little_more_is_refused(w3: Web3,
                                                                         m: AaveUniswapDeployment) -> None:
    user, u = short(w3, m, 10_000 * USDC_UNIT, 2 * WETH_UNIT)
    me = user.signer.address
    mdl = read(w3, m, me)
    w = mdl.max_withdrawal()
    assert 0 < w < mdl.account.supplied
    with pytest.raises(SimulationFailed):                    # 0.01% more: below HF 1, the pool refuses
        u.call(artifact("Pool"), m.pool, "withdraw", m.usdc, w + w // 10_000, me)
    u.call(artifact("Pool"), m.pool, "withdraw", m.usdc, w, me)
    hf = hf_on_chain(w3, m, me)
    assert UNIT <= hf < UNIT + UNIT // 10_000                # on the edge, as predicted


def test_the_model_predicts_a_borrow_sell_supply_to_within_the_pools_price_impact(
        w3: Web3, m: AaveUniswapDeployment) -> None:
    user, u = short(w3, m, 10_000 * USDC_UNIT, 2 * WETH_UNIT)
    me = user.signer.address
    before = read(w3, m, me)
    pt = before.after(-WETH_UNIT, 0)
    pool = artifact("Pool")
    u.call(pool, m.pool, "borrow", m.weth, WETH_UNIT, 2, 0, me)
    out = swap_exact_input(user, m, m.weth, WETH_UNIT).amount_out
    u.call(artifact("MintableERC20"), m.usdc, "approve", m.pool, out)
    u.call(pool, m.pool, "supply", m.usdc, out, me, 0)
    after = read(w3, m, me)
    assert after.account.debt - before.account.debt >= WETH_UNIT and -pt.size <= after.debt_e18()
    assert abs(-pt.size - after.debt_e18()) <= WETH_UNIT // 10**6          # interest of a few blocks
    # the model sells at the oracle price net of the fee; the deep pool's impact on 1 WETH is tiny
    predicted_hf, chain_hf = before.health_after(pt), after.account.health_factor
    assert abs(predicted_hf - chain_hf) <= chain_hf // 1_000, (predicted_hf, chain_hf)
    assert out <= (pt.fill_price * 10**6) // UNIT + 1                    # never better than the bound


def test_carry_over_thirty_days_is_the_debts_interest_less_the_collaterals(w3: Web3, m: AaveUniswapDeployment) -> None:
    # another account borrows USDC, so that supplying it earns (the collateral's side of the carry)
    t = ArtifactDeployer(sender(w3, TRADER))
    erc20, pool = artifact("MintableERC20"), artifact("Pool")
    them = t.sender.signer.address
    # (80% of the 100M USDC the deployment supplied: USDC's supply rate ~4%, WETH's borrow rate ~0)
    t.call(erc20, m.weth, "mint", them, 40_000 * WETH_UNIT)
    t.call(erc20, m.weth, "approve", m.pool, 40_000 * WETH_UNIT)
    t.call(pool, m.pool, "supply", m.weth, 40_000 * WETH_UNIT, them, 0)
    t.call(pool, m.pool, "borrow", m.usdc, 80_000_000 * USDC_UNIT, 2, 0, them)
    user, _ = short(w3, m, 10_000 * USDC_UNIT, 2 * WETH_UNIT)
    me = user.signer.address
    mdl = read(w3, m, me)
    assert mdl.market.borrow_rate_ray > 0 and mdl.market.supply_rate_ray > mdl.market.borrow_rate_ray
    per_day = mdl.carry_per_day(mdl.account.size)
    assert per_day < 0                      # the collateral earns more than the debt costs here
    w3.provider.make_request("evm_increaseTime", [30 * 86_400])
    w3.provider.make_request("evm_mine", [])
    later = read(w3, m, me)
    interest = (later.account.debt - mdl.account.debt) * mdl.market.price // UNIT
    earned = (later.account.supplied - mdl.account.supplied) * 10**12
    paid = interest - earned
    # linear rates against the pool's per-second compounding over 30 days: within 1%
    assert abs(paid - per_day * 30) <= abs(per_day * 30) // 100 + 10**15, (paid, per_day * 30)
