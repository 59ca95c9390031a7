"""HEDGER_LP_POSITIONS and HEDGER_HOLDER: the asset held by a real Uniswap v3 position (npm
artifacts, beside the reference market on the test chain) counts as exposure, as a static
decreaseLiquidity + collect would pay it; it moves as the price crosses the position's range,
for both token orders; and a holder other than the signing account is whose holding counts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from web3 import Web3
from web3.logs import DISCARD

from hedger.config import Settings
from hedger.core.errors import ConfigError
from hedger.cycle.keeper import Keeper
from hedger.sim.aave_uniswap import AaveUniswapDeployment, artifact, deploy_aave_uniswap, swap_exact_input
from tests.conftest import HEDGER, USDC, WETH, Chain, Hedge

SPACING = 10          # fee 500
HOLDER = 3            # a treasury's dev account


def mint(chain: Chain, index: int, d: AaveUniswapDeployment, token: str, amount: int) -> None:
    c = chain.w3.eth.contract(address=token, abi=artifact("WETH9Mocked").abi)
    chain.sender(index).send(token, c.functions.mint(chain.sender(index).signer.address, amount)
                             ._encode_transaction_data())


def tick_now(chain: Chain, d: AaveUniswapDeployment) -> int:
    pool = chain.w3.eth.contract(address=d.uniswap_pool, abi=artifact("UniswapV3Pool").abi)
    return int(pool.functions.slot0().call()[1])


def open_position(chain: Chain, index: int, d: AaveUniswapDeployment, width: int = 200) -> int:
    """A concentrated position of dev account ``index`` around the pool's price: its token id."""
    owner = chain.sender(index)
    me = owner.signer.address
    for token, amount in ((d.weth, 20 * WETH), (d.usdc, 60_000 * USDC)):
        mint(chain, index, d, token, amount)
        erc20 = chain.w3.eth.contract(address=token, abi=artifact("WETH9Mocked").abi)
        owner.send(token, erc20.functions.approve(d.position_manager, amount)._encode_transaction_data())
    t = tick_now(chain, d) // SPACING * SPACING
    amounts = (20 * WETH, 60_000 * USDC) if d.asset_is_token0 else (60_000 * USDC, 20 * WETH)
    npm = chain.w3.eth.contract(address=d.position_manager, abi=artifact("NonfungiblePositionManager").abi)
    deadline = chain.now() + 600
    receipt = owner.send(d.position_manager, npm.functions.mint(
        (d.token0, d.token1, d.fee, t - width, t + width, amounts[0], amounts[1], 0, 0, me, deadline)
    )._encode_transaction_data())
    ev = npm.events.IncreaseLiquidity().process_receipt(receipt, errors=DISCARD)
    return int(ev[0]["args"]["tokenId"])


def paid_in_asset(chain: Chain, owner: str, d: AaveUniswapDeployment, token_id: int) -> int:
    """What a static decreaseLiquidity of all the liquidity, then collect, pays in WETH (the chain's answer)."""
    npm = chain.w3.eth.contract(address=d.position_manager, abi=artifact("NonfungiblePositionManager").abi)
    liquidity = npm.functions.positions(token_id).call()[7]
    calls = [npm.functions.decreaseLiquidity((token_id, liquidity, 0, 0, chain.now() + 600))._encode_transaction_data(),
             npm.functions.collect((token_id, owner, 2**128 - 1, 2**128 - 1))._encode_transaction_data()]
    out = npm.functions.multicall(calls).call({"from": owner})
    collected = chain.w3.codec.decode(["uint256", "uint256"], out[1])
    return int(collected[0] if d.asset_is_token0 else collected[1])


def keeper(hedge: Hedge, d: AaveUniswapDeployment, token_id: int, **extra: str) -> Keeper:
    env = {**hedge.env, "HEDGER_SPOT_TOKEN": d.weth, "HEDGER_LP_POSITIONS": f"{d.position_manager}:{token_id}",
           **extra}
    return Keeper.from_settings(Settings.from_env(env, dotenv=False))


@pytest.mark.parametrize("asset_is_token0", [False, True], ids=["asset-token1", "asset-token0"])
def test_an_lp_positions_asset_is_exposure_and_moves_across_its_range(chain: Chain, hedge: Hedge,
                                                                        asset_is_token0: bool) -> None:
    d = deploy_aave_uniswap(chain.w3, sender=chain.deployer, asset_is_token0=asset_is_token0,
                            pool_weth=500 * WETH)
    token_id = open_position(chain, HEDGER, d)
    k = keeper(hedge, d, token_id)
    s = k.read()
    inside = paid_in_asset(chain, hedge.address, d, token_id)
    assert 0 < s.exposure.lp == inside <= 20 * WETH       # in range: what the mint took of the 20 WETH
    assert s.exposure.total == s.exposure.spot_balance + inside     # plus the wallet's dust left by the mint
    # a swap that sells WETH through the range: the position ends up all WETH (and owes fees)
    trader = chain.sender(2)
    mint(chain, 2, d, d.weth, 300 * WETH)
    swap_exact_input(trader, d, d.weth, 300 * WETH)
    below = keeper(hedge, d, token_id).read().exposure.lp
    assert below == paid_in_asset(chain, hedge.address, d, token_id) > inside
    # and buying WETH back through it: none left in the position
    mint(chain, 2, d, d.usdc, 3_000_000 * USDC)
    swap_exact_input(trader, d, d.usdc, 3_000_000 * USDC)
    above = keeper(hedge, d, token_id).read().exposure.lp
    assert above == paid_in_asset(chain, hedge.address, d, token_id) < inside


def test_the_hedge_covers_the_holders_spot_and_lp(chain: Chain, hedge: Hedge) -> None:
    """A treasury (HEDGER_HOLDER) holds the asset and the position; the hedger signs from its own key."""
    d = deploy_aave_uniswap(chain.w3, sender=chain.deployer, pool_weth=500 * WETH)
    treasury = chain.sender(HOLDER).signer.address
    token_id = open_position(chain, HOLDER, d)
    mint(chain, HOLDER, d, d.weth, 5 * WETH)
    k = keeper(hedge, d, token_id, HEDGER_HOLDER=treasury)
    assert k.holder == Web3.to_checksum_address(treasury) != k.account
    res = k.cycle()
    lp = res.snapshot.exposure.lp
    assert 5 * WETH <= res.snapshot.exposure.spot_balance < 5 * WETH + 10**6   # (the mint's dust)
    assert lp == paid_in_asset(chain, treasury, d, token_id) > 0
    assert res.outcome == "acted", (res.decision.reason, res.error)
    spot = res.snapshot.exposure.spot_balance
    assert hedge.position()[0] == -(spot + lp)


def test_a_position_without_the_hedged_asset_is_a_configuration_error(chain: Chain, hedge: Hedge) -> None:
    d = deploy_aave_uniswap(chain.w3, sender=chain.deployer, pool_weth=500 * WETH)
    token_id = open_position(chain, HEDGER, d)
    k = Keeper.from_settings(Settings.from_env(
        {**hedge.env, "HEDGER_LP_POSITIONS": f"{d.position_manager}:{token_id}"}, dotenv=False))  # spot: another WETH
    with pytest.raises(ConfigError) as err:
        k.read()
    assert err.value.variable == "HEDGER_LP_POSITIONS" and "HEDGER_SPOT_TOKEN" in str(err.value)


@pytest.mark.parametrize("raw, expect", [
    ("0x12:1", "is not an address"), ("0x" + "11" * 20, "is not <position manager>:<tokenId>"),
    ("0x" + "11" * 20 + ":x", "is not a whole number"), ("0x" + "11" * 20 + ":0", "below 1"),
    ("0x" + "11" * 20 + ":5," + "0x" + "11" * 20 + ":5", "listed twice")])
def test_bad_lp_positions_name_the_variable_and_the_fix(hedge: Hedge, raw: str, expect: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env({**hedge.env, "HEDGER_LP_POSITIONS": raw}, dotenv=False)
    assert err.value.variable == "HEDGER_LP_POSITIONS" and expect in str(err.value) and err.value.fix


def test_lp_positions_and_a_twap_add_no_round_trip_to_a_cycles_reads(chain: Chain, hedge: Hedge) -> None:
    """The pools' and positions' fixed facts are read once per keeper; after that a cycle's reads
    stay two round trips (the head, then one batch pinned to it), LP positions and TWAP included."""
    d = deploy_aave_uniswap(chain.w3, sender=chain.deployer, pool_weth=500 * WETH)
    token_id = open_position(chain, HEDGER, d)
    chain.advance(1860)
    chain.set_price(3000)
    k = keeper(hedge, d, token_id, HEDGER_SECOND_ORACLE=f"univ3:{d.uniswap_pool}:1800")
    k.read()                                    # the first read also learns the pools' tokens and ticks
    before = k.reader.round_trips
    s = k.read()
    assert k.reader.round_trips - before == 2
    assert s.exposure.lp > 0 and s.reference_problem is None and s.reference_price is not None


def test_a_position_that_does_not_exist_is_named(chain: Chain, hedge: Hedge) -> None:
    from hedger.core.errors import ChainGuardError
    d = deploy_aave_uniswap(chain.w3, sender=chain.deployer, pool_weth=500 * WETH)
    with pytest.raises(ChainGuardError) as err:
        keeper(hedge, d, 999_999).read()
    assert err.value.context["variable"] == "HEDGER_LP_POSITIONS" and str(err.value).startswith("HEDGER_LP_POSITIONS")
    assert "Fix:" in str(err.value) and err.value.exit_code == 5


def multi_keeper(hedge: Hedge, spot: str, lp_positions: str) -> Any:
    from hedger.cycle.multimarket import MultiKeeper
    d = hedge.chain.d
    entries = [{"name": "ETH", "market": d.market, "oracle": d.oracle, "spot_token": spot,
                "lp_positions": lp_positions}]
    env = {k: v for k, v in hedge.env.items() if k not in ("HEDGER_MARKET", "HEDGER_ORACLE", "HEDGER_SPOT_TOKEN")}
    return MultiKeeper.from_settings(Settings.from_env({**env, "HEDGER_MARKETS": json.dumps(entries)}, dotenv=False))


def test_a_markets_entry_hedges_its_lp_positions(chain: Chain, hedge: Hedge) -> None:
    """HEDGER_MARKETS entries take "lp_positions": the position's asset is hedged with the wallet's."""
    d = deploy_aave_uniswap(chain.w3, sender=chain.deployer, pool_weth=500 * WETH)
    token_id = open_position(chain, HEDGER, d)
    mint(chain, HEDGER, d, d.weth, 4 * WETH)
    res = multi_keeper(hedge, d.weth, f"{d.position_manager}:{token_id}").cycle()
    r = res.results["ETH"]
    assert r.outcome == "acted", (r.decision.reason, r.error)
    lp = r.snapshot.exposure.lp
    assert lp == paid_in_asset(chain, hedge.address, d, token_id) > 0
    assert hedge.position()[0] == -(r.snapshot.exposure.spot_balance + lp)


def test_an_entrys_position_without_its_asset_names_the_entry(chain: Chain, hedge: Hedge) -> None:
    d = deploy_aave_uniswap(chain.w3, sender=chain.deployer, pool_weth=500 * WETH)
    token_id = open_position(chain, HEDGER, d)
    mk = multi_keeper(hedge, chain.d.spot, f"{d.position_manager}:{token_id}")     # the entry's asset: another WETH
    with pytest.raises(ConfigError) as err:
        mk.read()
    e = err.value
    assert e.variable == "HEDGER_MARKETS" and "the \"lp_positions\" of HEDGER_MARKETS entry 'ETH'" in e.problem
    assert "(\"spot_token\")" in e.problem and "HEDGER_LP_POSITIONS" not in str(e), str(e)
