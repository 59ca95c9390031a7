"""The real Aave v3 and Uniswap v3 (npm artifacts) on an anvil of this module's own.

Deployed once per token order (the asset as token1, as on Ethereum mainnet, and as token0, as on
Arbitrum); each test runs on both and is reverted to the fresh deployment afterwards."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from web3 import Web3
from web3.exceptions import ContractLogicError

from hedger.core.errors import ConfigError, SimulationFailed
from hedger.chain.executor import KeySigner, TxSender
from hedger.core.secrets import Secret
from tests.conftest import web3_at
from hedger.sim.localchain import Anvil, dev_account
from hedger.sim.aave_uniswap import (USDC_UNIT, WETH_UNIT, AaveUniswapDeployment, answer_from_sqrt_price,
                                     arbitrage_pool, artifact, deploy_aave_uniswap, feed_answer, pool_answer,
                                     set_prices, sqrt_price_x96, swap_exact_input, twap_tick)
from hedger.sim.npm_artifacts import (ArtifactDeployer, create_address, library_placeholder, link_bytecode,
                                      load_artifact)

USER, TRADER = 1, 2
PRICE = 3000 * 10**8
MAX_UINT = 2**256 - 1
EXACT_INPUT_SINGLE = "0x414bf389"   # SwapRouter (v3-periphery): 8-field struct, deadline included


def sender(w3: Web3, index: int) -> TxSender:
    return TxSender(w3, KeySigner(Secret(dev_account(index).key.hex())))


def c(w3: Web3, name: str, address: str) -> Any:
    return w3.eth.contract(address=address, abi=artifact(name).abi)


def advance(w3: Web3, seconds: int) -> None:
    w3.provider.make_request("evm_increaseTime", [seconds])
    w3.provider.make_request("evm_mine", [])


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def w3(module_anvil: Anvil) -> Web3:
    return web3_at(module_anvil)


_DEPLOYED: dict[bool, AaveUniswapDeployment] = {}


@pytest.fixture(scope="module", params=[False, True], ids=["asset-token1", "asset-token0"])
def market(request: pytest.FixtureRequest, w3: Web3) -> AaveUniswapDeployment:
    order = bool(request.param)
    if order not in _DEPLOYED:
        started = time.monotonic()
        d = deploy_aave_uniswap(w3, asset_is_token0=order)
        wall = time.monotonic() - started
        print(f"\n[deploy asset_is_token0={order}] {d.transactions} transactions, {d.gas_used:,} gas, "
              f"{wall:.2f} s wall time")
        _DEPLOYED[order] = d
    return _DEPLOYED[order]


@pytest.fixture()
def m(w3: Web3, market: AaveUniswapDeployment) -> Iterator[AaveUniswapDeployment]:
    """The deployment, reverted to its fresh state after the test."""
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        yield market
    finally:
        w3.provider.make_request("evm_revert", [snap])


# ------------------------------------------------------------------ artifacts and linking (no chain)

BORROW_LOGIC = "contracts/protocol/libraries/logic/BorrowLogic.sol:BorrowLogic"


def test_library_placeholder_is_the_one_in_the_bytecode() -> None:
    flash = artifact("FlashLoanLogic")
    assert flash.libraries == [BORROW_LOGIC]
    assert library_placeholder(BORROW_LOGIC) == "__$c3724b8d563dc83a94e797176cddecb3b9$__"
    assert library_placeholder(BORROW_LOGIC) in flash.bytecode


def test_link_places_every_library_and_names_the_missing_ones() -> None:
    pool = artifact("Pool")
    with pytest.raises(ValueError, match="libraries without an address") as err:
        pool.linked_bytecode({"BorrowLogic": "0x" + "11" * 20})
    for lib in ("PoolLogic", "SupplyLogic", "BridgeLogic", "FlashLoanLogic", "EModeLogic", "LiquidationLogic"):
        assert lib in str(err.value)
    assert "BorrowLogic.sol" not in str(err.value)

    addresses = {qn.split(":")[1]: "0x" + f"{i + 1:02x}" * 20 for i, qn in enumerate(pool.libraries)}
    linked = pool.linked_bytecode(addresses)
    assert "__$" not in linked and len(linked) == len(pool.bytecode)
    for source, libs in pool.link_references.items():
        for lib, refs in libs.items():
            for ref in refs:
                at = 2 + 2 * ref["start"]
                assert linked[at:at + 40] == addresses[lib][2:]


def test_link_refuses_an_offset_without_the_placeholder() -> None:
    flash = artifact("FlashLoanLogic")
    wrong = {src: {lib: [{"start": r["start"] + 1, "length": 20} for r in refs] for lib, refs in libs.items()}
             for src, libs in flash.link_references.items()}
    with pytest.raises(ValueError, match="not the placeholder"):
        link_bytecode(flash.bytecode, wrong, {"BorrowLogic": "0x" + "22" * 20})
    with pytest.raises(ValueError, match="unlinked library placeholder"):
        link_bytecode(flash.bytecode, {}, {})


def test_a_missing_artifact_names_the_package_and_the_fix() -> None:
    with pytest.raises(ConfigError, match="make deps") as err:
        load_artifact("@aave/core-v3", "protocol/pool/NoSuchPool.sol/NoSuchPool")
    assert err.value.variable == "@aave/core-v3" and "NoSuchPool" in str(err.value)
    with pytest.raises(ConfigError, match="is not installed") as err:
        load_artifact("@hedger-test/not-a-package", "X")
    assert "make deps" in str(err.value)


def test_both_artifact_layouts_load() -> None:
    feed = load_artifact("@chainlink/contracts", "abi/v0.6/MockV3Aggregator")        # solc output
    assert feed.contract_name == "MockV3Aggregator" and feed.bytecode.startswith("0x6080")
    assert any(x.get("name") == "latestAnswer" for x in feed.abi)
    router = load_artifact("@uniswap/v3-periphery", "artifacts/contracts/SwapRouter.sol/SwapRouter.json")
    assert router is not feed and router.contract_name == "SwapRouter" and router.libraries == []


def test_create_address_is_anvils_first_contract() -> None:
    # the first contract dev account 0 creates on a fresh anvil (nonce 0), a well-known address
    assert create_address(dev_account(0).address, 0) == "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    assert create_address(dev_account(0).address, 1) == "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"


@given(nonce=st.one_of(st.integers(0, 300), st.integers(0, 2**64 - 2)))
@example(nonce=0)
@example(nonce=127)         # the last nonce RLP encodes as itself
@example(nonce=128)
@example(nonce=256)
def test_create_address_matches_rlp(nonce: int) -> None:
    import rlp    # the reference encoder (a web3 dependency)
    me = dev_account(3).address
    expected = Web3.to_checksum_address(Web3.keccak(rlp.encode([bytes.fromhex(me[2:]), nonce]))[12:])
    assert create_address(me, nonce) == expected


@given(answer=st.integers(min_value=10**6, max_value=10**15), token0=st.booleans())
def test_pool_price_round_trips(answer: int, token0: bool) -> None:
    back = answer_from_sqrt_price(sqrt_price_x96(answer, token0), token0)
    assert abs(back - answer) <= answer // 10**9 + 1


# ------------------------------------------------------------------ the deployed market

@pytest.mark.parametrize("bad, field", [({"fee": 100}, "fee"), ({"weth_price": 0}, "weth_price"),
                                        ({"aave_usdc": -1}, "aave_usdc"), ({"pool_weth": 1.5}, "pool_weth"),
                                        ({"observation_cardinality": 70_000}, "observation_cardinality")])
def test_bad_deploy_parameters_are_named_and_send_nothing(w3: Web3, bad: dict[str, Any], field: str) -> None:
    deployer = dev_account(0).address
    nonce = w3.eth.get_transaction_count(deployer)
    with pytest.raises(ValueError, match=field):
        deploy_aave_uniswap(w3, **bad)
    assert w3.eth.get_transaction_count(deployer) == nonce


def test_deploy_wires_aave_and_uniswap(w3: Web3, m: AaveUniswapDeployment) -> None:
    print(f"\n[deploy asset_is_token0={m.asset_is_token0}] {m.transactions} transactions, {m.gas_used:,} gas, "
          f"{m.seconds:.2f} s inside deploy_aave_uniswap")
    provider = c(w3, "PoolAddressesProvider", m.addresses_provider).functions
    assert provider.getPool().call() == m.pool
    assert provider.getPoolConfigurator().call() == m.pool_configurator
    assert provider.getPriceOracle().call() == m.oracle
    assert provider.getPoolDataProvider().call() == m.data_provider
    assert provider.getACLManager().call() == m.acl_manager
    pool = c(w3, "Pool", m.pool).functions
    assert pool.getReservesList().call() == [m.weth, m.usdc]

    dp = c(w3, "AaveProtocolDataProvider", m.data_provider).functions
    # decimals, ltv, liquidation threshold, bonus, reserve factor, collateral, borrowing, stable, active, frozen
    assert dp.getReserveConfigurationData(m.weth).call() == [18, 8050, 8300, 10500, 1500, True, True, False, True, False]
    assert dp.getReserveConfigurationData(m.usdc).call() == [6, 7700, 8000, 10450, 1000, True, True, False, True, False]
    assert dp.getLiquidationProtocolFee(m.weth).call() == 1000 == dp.getLiquidationProtocolFee(m.usdc).call()
    weth_rates = c(w3, "DefaultReserveInterestRateStrategy", dp.getInterestRateStrategyAddress(m.weth).call()).functions
    assert weth_rates.OPTIMAL_USAGE_RATIO().call() == 9 * 10**26
    assert weth_rates.getVariableRateSlope1().call() == 27 * 10**24
    assert weth_rates.getVariableRateSlope2().call() == 8 * 10**26
    usdc_rates = c(w3, "DefaultReserveInterestRateStrategy", dp.getInterestRateStrategyAddress(m.usdc).call()).functions
    assert usdc_rates.getVariableRateSlope1().call() == 65 * 10**24
    assert usdc_rates.getVariableRateSlope2().call() == 6 * 10**26
    oracle = c(w3, "AaveOracle", m.oracle).functions
    assert oracle.getAssetPrice(m.weth).call() == PRICE and oracle.getAssetPrice(m.usdc).call() == 10**8
    assert c(w3, "MintableERC20", m.a_usdc).functions.balanceOf(m.deployer).call() == 100_000_000 * USDC_UNIT
    assert c(w3, "MintableERC20", m.a_weth).functions.balanceOf(m.deployer).call() == 20_000 * WETH_UNIT

    upool = c(w3, "UniswapV3Pool", m.uniswap_pool).functions
    assert (upool.token0().call(), upool.token1().call()) == (m.token0, m.token1)
    assert (upool.token0().call() == m.weth) is m.asset_is_token0
    assert upool.fee().call() == 500
    slot0 = upool.slot0().call()
    assert abs(pool_answer(w3, m) - PRICE) <= 1
    assert slot0[4] == 180                                       # observationCardinalityNext
    # the factory's runtime code is the npm artifact's, byte for byte, but for its one immutable
    # (NoDelegateCall's own address)
    on_chain = w3.eth.get_code(m.uniswap_factory).hex().removeprefix("0x")
    own = m.uniswap_factory[2:].lower()
    assert on_chain.count(own) >= 1
    assert on_chain.replace(own, "0" * 40) == artifact("UniswapV3Factory").deployed_bytecode.removeprefix("0x")
    npm = c(w3, "NonfungiblePositionManager", m.position_manager).functions
    assert npm.ownerOf(m.lp_token_id).call() == m.deployer
    pos = npm.positions(m.lp_token_id).call()
    assert (pos[5], pos[6]) == (-887270, 887270) and pos[7] == upool.liquidity().call() > 0


def test_supply_borrow_swap_and_health_factor(w3: Web3, m: AaveUniswapDeployment) -> None:
    user = sender(w3, USER)
    me = user.signer.address
    u = ArtifactDeployer(user)
    erc20, pool_art = artifact("MintableERC20"), artifact("Pool")
    pool = c(w3, "Pool", m.pool).functions

    u.call(erc20, m.usdc, "mint", me, 10_000 * USDC_UNIT)
    u.call(erc20, m.usdc, "approve", m.pool, 10_000 * USDC_UNIT)
    supply = u.call(pool_art, m.pool, "supply", m.usdc, 10_000 * USDC_UNIT, me, 0)
    collateral, debt, _, lt, ltv, hf = pool.getUserAccountData(me).call()
    assert (collateral, debt, lt, ltv, hf) == (10_000 * 10**8, 0, 8000, 7700, MAX_UINT)

    # more than the LTV allows (77% of 10,000 USD = 2.566 WETH): refused in simulation, nothing sent
    with pytest.raises(SimulationFailed):
        u.call(pool_art, m.pool, "borrow", m.weth, 26 * WETH_UNIT // 10, 2, 0, me)
    borrow = u.call(pool_art, m.pool, "borrow", m.weth, 2 * WETH_UNIT, 2, 0, me)
    assert c(w3, "MintableERC20", m.variable_debt_weth).functions.balanceOf(me).call() == 2 * WETH_UNIT
    collateral, debt, _, lt, _, hf = pool.getUserAccountData(me).call()
    assert abs(debt - 6000 * 10**8) <= 1
    expected_hf = collateral * lt * 10**18 // (10_000 * debt)
    assert abs(hf - expected_hf) <= expected_hf // 10**12 and abs(hf - 4 * 10**18 // 3) < 10**10

    # sell the borrowed WETH through the SwapRouter: the 8-field exactInputSingle
    fair = 2 * 3000 * USDC_UNIT * (10**6 - m.fee) // 10**6          # fee only, no price impact
    swap = swap_exact_input(user, m, m.weth, 2 * WETH_UNIT, amount_out_minimum=fair * 999 // 1000)
    assert Web3.to_hex(w3.eth.get_transaction(swap.tx_hash)["input"])[:10] == EXACT_INPUT_SINGLE
    assert swap.amount_in == 2 * WETH_UNIT
    assert fair * 999 // 1000 <= swap.amount_out <= fair
    assert c(w3, "MintableERC20", m.usdc).functions.balanceOf(me).call() == swap.amount_out
    print(f"\n[gas asset_is_token0={m.asset_is_token0}] supply {supply['gasUsed']:,}, borrow {borrow['gasUsed']:,}, "
          f"swap {swap.gas_used:,}")

    # the WETH feed rises 10%: the debt is worth 10% more, the health factor falls by as much
    set_prices(sender(w3, TRADER), m, 3300 * 10**8)
    _, debt_up, _, _, _, hf_up = pool.getUserAccountData(me).call()
    assert abs(debt_up - 6600 * 10**8) <= 2
    assert hf_up < hf
    assert abs(hf_up * 11 - hf * 10) <= hf // 10**9
    # and falls: the health factor rises above where it started
    set_prices(sender(w3, TRADER), m, 2700 * 10**8)
    hf_down = pool.getUserAccountData(me).call()[5]
    assert hf_down > hf > hf_up


def test_deep_pool_and_arbitrage_to_the_feed(w3: Web3, m: AaveUniswapDeployment) -> None:
    trader = sender(w3, TRADER)
    ArtifactDeployer(trader).call(artifact("WETH9Mocked"), m.weth, "mint", trader.signer.address, 100 * WETH_UNIT)
    before = pool_answer(w3, m)
    sold = swap_exact_input(trader, m, m.weth, 100 * WETH_UNIT)
    after = pool_answer(w3, m)
    moved_bps = (before - after) * 10_000 / before
    print(f"\n[depth asset_is_token0={m.asset_is_token0}] 100 WETH sold moved the pool {moved_bps:.1f} bps, "
          f"got {sold.amount_out / USDC_UNIT:,.0f} USDC")
    assert after < before and (before - after) * 10_000 < 50 * before           # down, by less than 0.5%

    # the pool follows the feeds, up and down, within a rounding step
    for usd in (3900, 2100, 3000):
        set_prices(trader, m, usd * 10**8)
        assert feed_answer(w3, m) == usd * 10**8
        swaps = arbitrage_pool(trader, m)
        assert len(swaps) == 1 and swaps[0].amount_in > 0
        assert abs(pool_answer(w3, m) - usd * 10**8) <= 1
    assert arbitrage_pool(trader, m) == []                                      # already there
    # a USDC depeg moves WETH's price in USDC too
    set_prices(trader, m, 3000 * 10**8, 98 * 10**6)
    arbitrage_pool(trader, m)
    assert abs(pool_answer(w3, m) - 3000 * 10**8 * 100 // 98) <= 1


def _answer_at_tick(tick: int, asset_is_token0: bool) -> float:
    raw = 1.0001 ** tick                 # token1 per token0, raw units (report-only float)
    return raw * 1e12 * 1e8 if asset_is_token0 else 1e12 * 1e8 / raw


def test_twap_after_time_passes(w3: Web3, m: AaveUniswapDeployment) -> None:
    window = 1800
    # just deployed: no observation is 30 minutes old yet
    with pytest.raises(ContractLogicError, match="OLD"):
        twap_tick(w3, m, window)
    advance(w3, 2 * window)
    tick_a = c(w3, "UniswapV3Pool", m.uniswap_pool).functions.slot0().call()[1]
    assert twap_tick(w3, m, window) == tick_a
    assert abs(_answer_at_tick(tick_a, m.asset_is_token0) / 3000e8 - 1) < 2e-4      # one tick is 1 bp

    trader = sender(w3, TRADER)
    set_prices(trader, m, 3300 * 10**8)
    swaps = arbitrage_pool(trader, m)
    swap_time = int(w3.eth.get_block(w3.eth.get_transaction_receipt(swaps[-1].tx_hash)["blockNumber"])["timestamp"])
    slot0 = c(w3, "UniswapV3Pool", m.uniswap_pool).functions.slot0().call()
    tick_b = slot0[1]
    assert slot0[3] == 180          # the raised cardinality took effect at the first observation written
    assert (tick_b > tick_a) is m.asset_is_token0                 # dearer WETH: tick up iff WETH is token0
    advance(w3, 60)
    now = int(w3.eth.get_block("latest")["timestamp"])
    start = now - window
    expected = (tick_a * (swap_time - start) + tick_b * (now - swap_time)) // window
    twap = twap_tick(w3, m, window)
    assert twap == expected
    # the 30-minute mean lags the spot: between the old price and the new one, nearer the old
    lo, hi = sorted((tick_a, tick_b))
    assert lo < twap < hi and abs(twap - tick_a) < abs(twap - tick_b)
