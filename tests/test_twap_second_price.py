"""HEDGER_SECOND_ORACLE=univ3:<pool>[:<seconds>]: a real Uniswap v3 pool's TWAP (npm artifacts,
deployed on the test chain beside the reference market) as the independent second price.

The hedged asset is the pool's WETH; the hedger's own oracle is the reference market's feed. When
the two agree the hedge opens; when the oracle is pushed away from the pool's mean price the
risk-increasing step is refused and a risk-reducing one still goes; a spot price moved by one
large swap barely moves a 30-minute mean; a window the pool's observations cannot cover is a
refusal with the fix."""

from __future__ import annotations

import pytest

from hedger.config import Settings
from hedger.core.errors import ConfigError
from hedger.cycle.keeper import Keeper
from hedger.sim.aave_uniswap import AaveUniswapDeployment, artifact, deploy_aave_uniswap, swap_exact_input
from tests.conftest import HEDGER, WETH, Chain, Hedge

WINDOW = 1800


def uniswap_market(chain: Chain, hedge: Hedge, *, asset_is_token0: bool = False) -> AaveUniswapDeployment:
    """The real pool (at the oracle's 3,000), and the hedged account holding 10 of its WETH."""
    d = deploy_aave_uniswap(chain.w3, sender=chain.deployer, asset_is_token0=asset_is_token0)
    weth = chain.w3.eth.contract(address=d.weth, abi=artifact("WETH9Mocked").abi)
    chain.deployer.send(d.weth, weth.functions.mint(hedge.address, 10 * WETH)._encode_transaction_data())
    return d


def keeper(hedge: Hedge, d: AaveUniswapDeployment, window: int = WINDOW, **extra: str) -> Keeper:
    env = {**hedge.env, "HEDGER_SPOT_TOKEN": d.weth, "HEDGER_SECOND_ORACLE": f"univ3:{d.uniswap_pool}:{window}",
           **extra}
    return Keeper.from_settings(Settings.from_env(env, dotenv=False))


def past_the_window(chain: Chain, usd: float = 3000) -> None:
    """Let the pool's observations cover the window, then publish a fresh oracle round."""
    chain.advance(WINDOW + 60)
    chain.set_price(usd)


def position(hedge: Hedge) -> int:
    return hedge.position()[0]


@pytest.mark.parametrize("asset_is_token0", [False, True], ids=["asset-token1", "asset-token0"])
def test_an_agreeing_twap_lets_the_hedge_open(chain: Chain, hedge: Hedge, asset_is_token0: bool) -> None:
    d = uniswap_market(chain, hedge, asset_is_token0=asset_is_token0)
    past_the_window(chain)
    res = keeper(hedge, d).cycle()
    s = res.snapshot
    assert s.reference_source == f"Uniswap v3 TWAP of {d.uniswap_pool} over {WINDOW}s" and s.reference_problem is None
    assert abs(s.reference_price - 3000 * 10**18) <= 3 * 10**18        # the pool's mean: 3,000 within 0.1%
    assert res.outcome == "acted", (res.decision.reason, res.error)
    assert position(hedge) == -10 * WETH


def test_an_oracle_pushed_off_the_pools_mean_grows_nothing_but_still_reduces(chain: Chain, hedge: Hedge) -> None:
    d = uniswap_market(chain, hedge)
    past_the_window(chain)
    assert keeper(hedge, d).cycle().outcome == "acted" and position(hedge) == -10 * WETH
    past_the_window(chain, 3300)                      # the oracle +10%; the pool's mean stays at 3,000
    weth = chain.w3.eth.contract(address=d.weth, abi=artifact("WETH9Mocked").abi)
    # more WETH to hedge: growing the short is risk-increasing, refused while the prices disagree
    chain.deployer.send(d.weth, weth.functions.mint(hedge.address, 10 * WETH)._encode_transaction_data())
    res = keeper(hedge, d).cycle()
    assert res.decision.code == "price_divergence" and not res.sent, res.decision.reason
    assert "TWAP" in res.decision.reason and "disagree" in res.decision.reason
    assert position(hedge) == -10 * WETH
    # the holding shrinks: reducing the short is risk-reducing and goes through
    data = weth.functions.transfer(chain.deployer.signer.address, 15 * WETH)._encode_transaction_data()
    chain.sender(HEDGER).send(d.weth, data)
    res = keeper(hedge, d).cycle()
    assert res.outcome == "acted" and [t.call.risk_reducing for t in res.sent if t.call.leg == "main"] == [True]
    assert position(hedge) == -5 * WETH


def test_one_large_swap_barely_moves_a_thirty_minute_mean(chain: Chain, hedge: Hedge) -> None:
    d = uniswap_market(chain, hedge)
    past_the_window(chain)
    trader = chain.sender(2)
    weth = chain.w3.eth.contract(address=d.weth, abi=artifact("WETH9Mocked").abi)
    trader.send(d.weth, weth.functions.mint(trader.signer.address, 20_000 * WETH)._encode_transaction_data())
    swap_exact_input(trader, d, d.weth, 20_000 * WETH)   # dumps the spot price
    chain.set_price(3000)
    res = keeper(hedge, d).cycle()
    s = res.snapshot
    assert s.reference_problem is None
    assert abs(s.reference_price - 3000 * 10**18) < 3000 * 10**18 // 100   # the mean moved < 1%
    assert res.outcome == "acted" and position(hedge) == -10 * WETH


def test_a_window_the_pool_cannot_cover_is_a_refusal_with_the_fix(chain: Chain, hedge: Hedge) -> None:
    d = uniswap_market(chain, hedge)                 # just created: no 30 minutes of history
    res = keeper(hedge, d).cycle()
    assert res.snapshot.reference_problem is not None
    assert "increaseObservationCardinalityNext" in res.snapshot.reference_problem
    assert res.decision.code == "price_divergence" and not res.sent
    assert position(hedge) == 0


def test_a_pool_without_the_hedged_asset_is_a_configuration_error(chain: Chain, hedge: Hedge) -> None:
    d = uniswap_market(chain, hedge)
    past_the_window(chain)
    k = Keeper.from_settings(Settings.from_env(
        {**hedge.env, "HEDGER_SECOND_ORACLE": f"univ3:{d.uniswap_pool}"}, dotenv=False))   # spot: another WETH
    with pytest.raises(ConfigError) as err:
        k.cycle()
    assert err.value.variable == "HEDGER_SECOND_ORACLE" and "HEDGER_SPOT_TOKEN" in str(err.value)
