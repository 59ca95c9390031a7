"""Uniswap v3 math (hedger/protocols/uniswap_v3/math.py) against the real v3 contracts on anvil.

tests/test_uniswap_math.py checks the math against Uniswap's published vectors; here every
function is compared with what the deployed bytecode (``@uniswap/v3-core`` 1.0.1 and
``@uniswap/v3-periphery`` 1.4.4 from npm, deployed by ``hedger.sim.aave_uniswap``) says:

* ``slot0()`` after ``initialize`` and after swaps both ways, including swaps stopped by a price
  limit exactly on a tick (going down onto an initialised tick, the pool keeps ``tick - 1``);
* a static ``decreaseLiquidity`` of a concentrated position, the price below, inside, above and
  on each edge of its range (each edge reached from both sides);
* a static ``decreaseLiquidity`` + ``collect`` (through the manager's ``multicall``) for the fees,
  with swaps crossing the range, with ``tokensOwed`` already non-zero, and across the uint256
  wrap-around of the fee growth inside a range;
* the asset a position holds (principal + fees), as the price crosses its range;
* ``observe([s, 0])`` for the mean tick, with a timeline of ticks set by swaps at chosen times;
* the pool's price after ``arbitrage_pool`` to a feed price.

One deployment per token order (the asset, WETH, as token1 as on Ethereum mainnet, and as token0),
with a narrow position minted on top; each test is reverted to that state afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property, lru_cache
from math import floor
from typing import Any, Iterator

import pytest
from web3 import Web3
from web3.logs import DISCARD

from hedger.chain.executor import KeySigner, TxSender
from hedger.core.errors import SimulationFailed
from hedger.core.secrets import Secret
from hedger.protocols.uniswap_v3.math import (UINT128_MAX, UniswapMathError, amounts_for_liquidity,
                                              asset_amount_of_position, check_slot0, fee_growth_inside, fees_owed,
                                              mean_tick, price_e18_at_tick, sqrt_ratio_at_tick,
                                              tick_at_sqrt_ratio)
from hedger.sim.aave_uniswap import (USDC_UNIT, WETH_UNIT, AaveUniswapDeployment, arbitrage_pool, artifact,
                                     deploy_aave_uniswap, set_prices)
from tests.conftest import web3_at
from hedger.sim.localchain import Anvil, dev_account
from hedger.sim.npm_artifacts import ArtifactDeployer

LP, TRADER = 1, 2
TRADER_FUNDS = 10**33             # raw units of each token, minted to the trader once
SWAP_CEILING = 10**30             # amountIn of a swap stopped by its price limit (only what it needs is taken)
SWAP_GAS = 10_000_000             # ample: the longest swap here crosses ~197,000 ticks (~80 bitmap words)
SPACING = 10                      # fee 500
FAR = 10**12                      # deadlines: far beyond any block of a test


@lru_cache(maxsize=None)
def _dev(index: int) -> tuple[str, str]:
    """(address, key) of anvil's dev account ``index``: derived once (the derivation is slow)."""
    account = dev_account(index)
    return account.address, account.key.hex()


def sender(w3: Web3, index: int) -> TxSender:
    """A fresh sender (its nonce read from the chain: tests revert to snapshots)."""
    return TxSender(w3, KeySigner(Secret(_dev(index)[1])))


@dataclass(frozen=True)
class Market:
    """The deployment plus the LP's narrow position [lower, upper) around the starting price."""

    w3: Web3
    d: AaveUniswapDeployment
    token_id: int
    lower: int
    upper: int
    start_tick: int

    @property
    def lp(self) -> str:
        return _dev(LP)[0]

    @cached_property
    def pool(self) -> Any:
        return self.w3.eth.contract(address=self.d.uniswap_pool, abi=artifact("UniswapV3Pool").abi)

    @cached_property
    def npm(self) -> Any:
        return self.w3.eth.contract(address=self.d.position_manager,
                                    abi=artifact("NonfungiblePositionManager").abi)

    @property
    def asset_index(self) -> int:
        return 0 if self.d.asset_is_token0 else 1


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def w3(module_anvil: Anvil) -> Web3:
    return web3_at(module_anvil)


_MARKETS: dict[bool, Market] = {}


def _set_up(w3: Web3, asset_is_token0: bool) -> Market:
    d = deploy_aave_uniswap(w3, asset_is_token0=asset_is_token0)
    weth9, erc20 = artifact("WETH9Mocked"), artifact("MintableERC20")
    trader = ArtifactDeployer(sender(w3, TRADER))
    for token, art in ((d.weth, weth9), (d.usdc, erc20)):
        trader.call(art, token, "mint", trader.address, TRADER_FUNDS)
        trader.call(erc20, token, "approve", d.swap_router, 2**256 - 1)
    # a narrow position (8 spacings, about 0.8% wide) around the price: its liquidity is of the
    # order of the deep full-range position's, so crossing its ticks changes the pool's liquidity
    tick = int(w3.eth.contract(address=d.uniswap_pool, abi=artifact("UniswapV3Pool").abi)
               .functions.slot0().call()[1])
    lower = tick // SPACING * SPACING - 3 * SPACING
    upper = lower + 8 * SPACING
    lp = ArtifactDeployer(sender(w3, LP))
    want = {d.weth: 100 * WETH_UNIT, d.usdc: 400_000 * USDC_UNIT}
    for token, art in ((d.weth, weth9), (d.usdc, erc20)):
        lp.call(art, token, "mint", lp.address, want[token])
        lp.call(erc20, token, "approve", d.position_manager, want[token])
    npm_art = artifact("NonfungiblePositionManager")
    receipt = lp.call(npm_art, d.position_manager, "mint",
                      (d.token0, d.token1, d.fee, lower, upper, want[d.token0], want[d.token1], 0, 0, lp.address,
                       FAR))
    minted = lp.contract(npm_art, d.position_manager).events.IncreaseLiquidity().process_receipt(
        receipt, errors=DISCARD)
    return Market(w3=w3, d=d, token_id=int(minted[0]["args"]["tokenId"]), lower=lower, upper=upper,
                  start_tick=tick)


@pytest.fixture(scope="module", params=[False, True], ids=["asset-token1", "asset-token0"])
def market(request: pytest.FixtureRequest, w3: Web3) -> Market:
    order = bool(request.param)
    if order not in _MARKETS:
        started = time.monotonic()
        _MARKETS[order] = _set_up(w3, order)
        print(f"\n[set-up asset_is_token0={order}] {time.monotonic() - started:.2f} s")
    return _MARKETS[order]


@pytest.fixture()
def m(w3: Web3, market: Market) -> Iterator[Market]:
    """The market with its narrow position, reverted to that state after the test."""
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        yield market
    finally:
        w3.provider.make_request("evm_revert", [snap])


# ------------------------------------------------------------------ chain helpers

def slot0(m: Market, block: int | str = "latest") -> tuple[int, int]:
    s = m.pool.functions.slot0().call(block_identifier=block)
    return int(s[0]), int(s[1])


def swap(m: Market, zero_for_one: bool, amount_in: int, limit: int = 0) -> dict[str, Any]:
    """exactInputSingle from the trader (already approved); ``limit`` 0 means none. Sent with a
    fixed gas limit rather than an estimate (a revert still raises, from the receipt)."""
    d = m.d
    token_in, token_out = (d.token0, d.token1) if zero_for_one else (d.token1, d.token0)
    trader = sender(m.w3, TRADER)
    router = m.w3.eth.contract(address=d.swap_router, abi=artifact("SwapRouter").abi)
    data = router.functions.exactInputSingle(
        (token_in, token_out, d.fee, trader.signer.address, FAR, amount_in, 0, limit))._encode_transaction_data()
    return trader.send(d.swap_router, data, gas=SWAP_GAS)


def move_to(m: Market, target: int) -> None:
    """Swap until the pool's sqrtPriceX96 is exactly ``target`` (the swap's price limit)."""
    current, _ = slot0(m)
    if target != current:
        swap(m, target < current, SWAP_CEILING, target)
    assert slot0(m)[0] == target


def at_tick(tick: int) -> int:
    return sqrt_ratio_at_tick(tick)


def position_inputs(m: Market, block: int) -> dict[str, Any]:
    """Everything fees_owed / asset_amount_of_position take, read at one block."""
    pool = m.pool.functions
    price, tick = slot0(m, block)
    pos = m.npm.functions.positions(m.token_id).call(block_identifier=block)
    assert (pos[5], pos[6]) == (m.lower, m.upper)
    lower = pool.ticks(m.lower).call(block_identifier=block)
    upper = pool.ticks(m.upper).call(block_identifier=block)
    return dict(sqrt_price_x96=price, tick_current=tick, tick_lower=m.lower, tick_upper=m.upper,
                liquidity=int(pos[7]),
                fee_growth_global_x128=(int(pool.feeGrowthGlobal0X128().call(block_identifier=block)),
                                        int(pool.feeGrowthGlobal1X128().call(block_identifier=block))),
                lower_fee_growth_outside_x128=(int(lower[2]), int(lower[3])),
                upper_fee_growth_outside_x128=(int(upper[2]), int(upper[3])),
                fee_growth_inside_last_x128=(int(pos[8]), int(pos[9])),
                tokens_owed=(int(pos[10]), int(pos[11])))


def fee_inputs(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in inputs.items() if k != "sqrt_price_x96"}


def static_decrease(m: Market, liquidity: int, block: int) -> tuple[int, int]:
    """What decreaseLiquidity(liquidity) would return, by eth_call from the owner."""
    got = m.npm.functions.decreaseLiquidity((m.token_id, liquidity, 0, 0, FAR)).call(
        {"from": m.lp}, block_identifier=block)
    return int(got[0]), int(got[1])


def static_exit(m: Market, block: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(principal, collected) of decreaseLiquidity(all) + collect(everything) in one static
    multicall from the owner, at ``block``."""
    npm = m.npm.functions
    liquidity = int(npm.positions(m.token_id).call(block_identifier=block)[7])
    calls = [npm.collect((m.token_id, m.lp, UINT128_MAX, UINT128_MAX))._encode_transaction_data()]
    if liquidity:
        calls.insert(0, npm.decreaseLiquidity((m.token_id, liquidity, 0, 0, FAR))._encode_transaction_data())
    results = npm.multicall(calls).call({"from": m.lp}, block_identifier=block)
    decoded = [tuple(int(x) for x in m.w3.codec.decode(["uint256", "uint256"], r)) for r in results]
    principal = decoded[0] if liquidity else (0, 0)
    return principal, decoded[-1]


def chain_fees(m: Market, block: int) -> tuple[int, int]:
    principal, collected = static_exit(m, block)
    return collected[0] - principal[0], collected[1] - principal[1]


def check_fees(m: Market) -> tuple[int, int]:
    """fees_owed from the chain's state equals what a static decrease + collect pays in fees."""
    block = m.w3.eth.block_number
    inputs = position_inputs(m, block)
    owed = fees_owed(**fee_inputs(inputs))
    assert owed == chain_fees(m, block), f"at tick {inputs['tick_current']} (range [{m.lower}, {m.upper}))"
    return owed


def mine_at(w3: Web3, timestamp: int) -> None:
    w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp])


# ------------------------------------------------------------------ 1. TickMath and slot0

def test_slot0_after_initialize_is_the_tick_math(m: Market) -> None:
    events = m.pool.events.Initialize().get_logs(from_block=0)
    assert len(events) == 1
    price, tick = int(events[0]["args"]["sqrtPriceX96"]), int(events[0]["args"]["tick"])
    assert tick_at_sqrt_ratio(price) == tick
    check_slot0(price, tick)
    assert sqrt_ratio_at_tick(tick) <= price < sqrt_ratio_at_tick(tick + 1)
    assert slot0(m) == (price, tick) and tick == m.start_tick      # minting does not move the price

    # new pools (the other fee tiers) initialised exactly on a tick's price, and one unit below it:
    # the contract's getTickAtSqrtRatio puts the first on that tick, the second on the tick below
    factory = ArtifactDeployer(sender(m.w3, TRADER))
    pool_art = artifact("UniswapV3Pool")
    for fee, tick_offset, delta in ((3000, 1234, 0), (10000, -4321, -1)):
        target_tick = m.start_tick + tick_offset
        factory.call(artifact("UniswapV3Factory"), m.d.uniswap_factory, "createPool", m.d.token0, m.d.token1, fee)
        address = factory.contract(artifact("UniswapV3Factory"), m.d.uniswap_factory).functions.getPool(
            m.d.token0, m.d.token1, fee).call()
        factory.call(pool_art, address, "initialize", sqrt_ratio_at_tick(target_tick) + delta)
        price, tick = (int(x) for x in factory.contract(pool_art, address).functions.slot0().call()[:2])
        assert (price, tick) == (sqrt_ratio_at_tick(target_tick) + delta, target_tick + delta)
        assert tick_at_sqrt_ratio(price) == tick
        check_slot0(price, tick)


def test_swaps_both_ways_leave_slot0_as_the_tick_math_says(m: Market) -> None:
    # swaps without a price limit, of sizes from dust to a few percent of the pool, both ways
    seen = set()
    for zero_for_one, amount in ((True, 1), (False, 1), (True, 10**6), (False, 10**9), (True, 10**13),
                                 (False, 10**16), (True, 10**19), (False, 3 * 10**20), (True, 10**21),
                                 (False, 2 * 10**21), (True, 15 * 10**20), (False, 5 * 10**10)):
        before = slot0(m)
        # amounts are in raw units of the token paid in: scale USDC ones down to comparable value
        if (m.d.token0 if zero_for_one else m.d.token1) == m.d.usdc:
            amount = max(amount // 10**9, 1)
        swap(m, zero_for_one, amount)
        price, tick = slot0(m)
        assert (price <= before[0]) if zero_for_one else (price >= before[0])
        assert tick_at_sqrt_ratio(price) == tick, f"after a swap of {amount} ({'0->1' if zero_for_one else '1->0'})"
        check_slot0(price, tick)
        seen.add(tick)
    assert len(seen) >= 6                                       # the price really moved around


def test_swaps_stopped_on_a_tick_price(m: Market) -> None:
    """A swap whose limit is sqrt_ratio_at_tick(t) ends exactly there. Not on an initialised tick,
    the pool computes the tick with getTickAtSqrtRatio: t itself (and t - 1 one unit below), from
    either side, which pins sqrt_ratio_at_tick(t) to the contract's value bit for bit."""
    base = m.start_tick // SPACING * SPACING
    for t in (base + 3, base - 7, base + 117, base - 1111, base + 2999):
        assert t % SPACING                      # never a tick a swap step can stop at by itself
        for delta, expected in ((0, t), (-1, t - 1), (1, t)):
            move_to(m, at_tick(t) + delta)
            price, tick = slot0(m)
            assert tick == expected, f"limit sqrt_ratio_at_tick({t}) {delta:+d}: pool tick {tick}"
            assert tick_at_sqrt_ratio(price) == tick
            check_slot0(price, tick)


def test_a_swap_ending_exactly_on_an_initialised_tick_going_down(m: Market) -> None:
    """Going down onto an initialised tick t (the position's), the pool crosses it and keeps
    tick t - 1 with the price sqrt_ratio_at_tick(t): check_slot0 accepts that, and only it."""
    for edge in (m.upper, m.lower):
        move_to(m, at_tick(edge + 25))                    # from above
        move_to(m, at_tick(edge))                         # down onto the tick
        price, tick = slot0(m)
        assert (price, tick) == (sqrt_ratio_at_tick(edge), edge - 1)
        assert tick_at_sqrt_ratio(price) == edge          # the price's own tick is the one above
        check_slot0(price, tick)
        move_to(m, at_tick(edge - 25))                    # from below, up onto the tick: tick t
        move_to(m, at_tick(edge))
        assert slot0(m) == (sqrt_ratio_at_tick(edge), edge)
        check_slot0(*slot0(m))
    # a price and a tick from two different blocks do not go together
    block = m.w3.eth.block_number
    swap(m, True, SWAP_CEILING, at_tick(m.lower - 300))
    with pytest.raises(UniswapMathError, match="tick_current"):
        check_slot0(slot0(m, block)[0], slot0(m)[1])


# ------------------------------------------------------------------ 2. amounts for liquidity

def test_amounts_for_liquidity_equal_a_static_decrease_liquidity(m: Market) -> None:
    lo, hi = m.lower, m.upper
    liquidity = int(m.npm.functions.positions(m.token_id).call()[7])
    assert liquidity > 0
    # (target price, expected tick in slot0, where it is) in an order that reaches each edge from
    # both sides: going up onto an edge gives its tick, going down onto it the tick below
    path = [
        (at_tick(lo - 40) + 12345, lo - 40, "below"),
        (at_tick(lo), lo, "lower edge, from below"),
        (at_tick(lo + 17) + 999, lo + 17, "inside"),
        (at_tick(lo), lo - 1, "lower edge, from above"),
        (at_tick(lo - 1), lo - 1, "one tick below"),
        (at_tick(hi) - 1, hi - 1, "just below the upper edge"),
        (at_tick(hi), hi, "upper edge, from below"),
        (at_tick(hi + 33) + 5, hi + 33, "above"),
        (at_tick(hi), hi - 1, "upper edge, from above"),
        (at_tick(lo + 41) - 77, lo + 40, "inside again"),
    ]
    for target, tick_expected, where in path:
        move_to(m, target)
        block = m.w3.eth.block_number
        price, tick = slot0(m, block)
        assert tick == tick_expected, where
        ours = amounts_for_liquidity(price, lo, hi, liquidity)
        assert ours == static_decrease(m, liquidity, block), where
        # and for part of the liquidity (the rounding of a smaller amount)
        part = liquidity // 3 + 1
        assert amounts_for_liquidity(price, lo, hi, part) == static_decrease(m, part, block), where
        if tick < lo:
            assert ours[1] == 0 and ours[0] > 0, where
        elif tick >= hi:
            assert ours[0] == 0 and ours[1] > 0, where
        elif where.startswith("inside"):
            assert ours[0] > 0 and ours[1] > 0, where


# ------------------------------------------------------------------ 3. fees owed

def test_fees_owed_equal_a_static_decrease_and_collect(m: Market) -> None:
    lo, hi = m.lower, m.upper
    assert check_fees(m) == (0, 0)                              # nothing traded yet
    swap(m, True, 10**17 if m.d.asset_is_token0 else 300 * USDC_UNIT)      # 0 -> 1 inside the range
    check_fees(m)
    swap(m, False, 300 * USDC_UNIT if m.d.asset_is_token0 else 10**17)     # 1 -> 0 inside the range
    check_fees(m)
    for target in (at_tick(lo - 60) + 7,                        # down across the lower tick
                   at_tick(hi + 45) - 3,                        # up across both ticks
                   at_tick(lo + 30) + 1,                        # down across the upper tick into the range
                   at_tick(hi),                                 # up onto the upper edge (tick = upper)
                   at_tick(lo),                                 # down onto the lower edge (tick = lower - 1)
                   at_tick(hi + 10),
                   at_tick(hi),                                 # down onto the upper edge (tick = upper - 1)
                   at_tick(lo - 10),
                   at_tick(lo)):                                # up onto the lower edge (tick = lower)
        move_to(m, target)
        check_fees(m)
    owed = check_fees(m)
    assert owed[0] > 0 and owed[1] > 0


def test_fees_owed_with_tokens_owed_already_non_zero(m: Market) -> None:
    lo, hi = m.lower, m.upper
    lp = ArtifactDeployer(sender(m.w3, LP))
    npm_art = artifact("NonfungiblePositionManager")
    for target in (at_tick(lo + 5), at_tick(hi - 5), at_tick(lo + 50)):
        move_to(m, target)
    # the manager refuses decreaseLiquidity(0) (require(params.liquidity > 0)): the poke that
    # brings fees into tokensOwed without taking them is a collect of one unit of each
    with pytest.raises(SimulationFailed):
        lp.call(npm_art, m.d.position_manager, "decreaseLiquidity", (m.token_id, 0, 0, 0, FAR))
    block = m.w3.eth.block_number                                     # the same call with 1 passes
    assert static_decrease(m, 1, block) == amounts_for_liquidity(slot0(m, block)[0], lo, hi, 1)
    lp.call(npm_art, m.d.position_manager, "collect", (m.token_id, m.lp, 1, 1))
    pos = m.npm.functions.positions(m.token_id).call()
    assert pos[10] > 0 and pos[11] > 0                          # tokensOwed, after the poke
    check_fees(m)
    for target in (at_tick(hi + 20), at_tick(lo - 20), at_tick(lo + 44)):   # swaps crossing the range
        move_to(m, target)
        check_fees(m)
    # a partial decrease: its principal joins tokensOwed, the rest of the liquidity keeps earning
    liquidity = int(pos[7])
    lp.call(npm_art, m.d.position_manager, "decreaseLiquidity", (m.token_id, liquidity // 2, 0, 0, FAR))
    pos = m.npm.functions.positions(m.token_id).call()
    assert pos[7] == liquidity - liquidity // 2 and pos[10] > 0 and pos[11] > 0
    check_fees(m)
    for target in (at_tick(hi + 3), at_tick(lo + 21)):
        move_to(m, target)
        check_fees(m)
    # all the liquidity gone: only tokensOwed remains, collected as it is
    lp.call(npm_art, m.d.position_manager, "decreaseLiquidity", (m.token_id, int(pos[7]), 0, 0, FAR))
    move_to(m, at_tick(hi - 2))
    owed = check_fees(m)
    pos = m.npm.functions.positions(m.token_id).call()
    assert pos[7] == 0 and owed == (pos[10], pos[11])


def test_fees_owed_when_fee_growth_inside_wraps_around(m: Market) -> None:
    """A second position [lower - 100, lower) minted with the price below it, after the first
    position's lower tick recorded some fee growth: its fee growth inside starts "negative"
    (wrapped modulo 2**256, as the manager stores it), and once enough fees accrue inside it, the
    difference inside - last wraps too. fees_owed must follow both wraps as the contracts do."""
    lo = m.lower
    l2 = lo - 100
    # a little fee growth inside [lower, upper), both tokens
    swap(m, True, 10**15 if m.d.asset_is_token0 else 3 * USDC_UNIT)
    swap(m, False, 3 * USDC_UNIT if m.d.asset_is_token0 else 10**15)
    move_to(m, at_tick(l2 - 30))        # down across lower: its feeGrowthOutside is that growth
    lp = ArtifactDeployer(sender(m.w3, LP))
    token0_art = artifact("WETH9Mocked") if m.d.token0 == m.d.weth else artifact("MintableERC20")
    amount0 = 50 * WETH_UNIT if m.d.asset_is_token0 else 150_000 * USDC_UNIT
    lp.call(token0_art, m.d.token0, "mint", lp.address, amount0)
    lp.call(artifact("MintableERC20"), m.d.token0, "approve", m.d.position_manager, amount0)
    npm_art = artifact("NonfungiblePositionManager")
    receipt = lp.call(npm_art, m.d.position_manager, "mint",
                      (m.d.token0, m.d.token1, m.d.fee, l2, lo, amount0, 0, 0, 0, lp.address, FAR))
    minted = lp.contract(npm_art, m.d.position_manager).events.IncreaseLiquidity().process_receipt(
        receipt, errors=DISCARD)
    second = replace(m, token_id=int(minted[0]["args"]["tokenId"]), lower=l2, upper=lo)
    last = position_inputs(second, m.w3.eth.block_number)["fee_growth_inside_last_x128"]
    assert last[0] > 2**255 and last[1] > 2**255              # wrapped: -(the growth lower recorded)
    assert check_fees(second) == (0, 0)
    # trade inside [l2, lower) until its fee growth inside has come back past zero
    for target in (at_tick(l2 + 80), at_tick(l2 + 5), at_tick(l2 + 95), at_tick(l2 + 2), at_tick(l2 + 90)):
        move_to(m, target)
        check_fees(second)
    inputs = position_inputs(second, m.w3.eth.block_number)
    for i in (0, 1):
        inside = fee_growth_inside(inputs["tick_current"], l2, lo, inputs["fee_growth_global_x128"][i],
                                   inputs["lower_fee_growth_outside_x128"][i],
                                   inputs["upper_fee_growth_outside_x128"][i])
        assert inside < inputs["fee_growth_inside_last_x128"][i]      # inside - last wraps
    owed = check_fees(second)
    assert owed[0] > 0 and owed[1] > 0
    move_to(m, at_tick(lo + 20))                      # on into the first position's range
    check_fees(second)
    check_fees(m)


# ------------------------------------------------------------------ 4. the asset in a position

def test_asset_amount_of_position_as_the_price_crosses_the_range(m: Market) -> None:
    lo, hi = m.lower, m.upper
    i = m.asset_index
    # the asset's price from low to high and back: for the asset as token0 that is the tick going
    # up, as token1 the tick going down
    ticks = [lo - 50, lo, lo + 10, lo + 40, hi - 1, hi, hi + 50, lo + 25, lo - 5]
    if not m.d.asset_is_token0:
        ticks = [lo + hi - t for t in ticks]
    amounts: list[int] = []
    for t in ticks:
        move_to(m, at_tick(t))
        block = m.w3.eth.block_number
        inputs = position_inputs(m, block)
        ours = asset_amount_of_position(**inputs, asset_is_token0=m.d.asset_is_token0)
        _, collected = static_exit(m, block)
        assert ours == collected[i], f"tick {inputs['tick_current']}"
        assert ours == (amounts_for_liquidity(inputs["sqrt_price_x96"], lo, hi, inputs["liquidity"])[i]
                        + fees_owed(**fee_inputs(inputs))[i])
        amounts.append(ours)
    # the position's delta: all asset while the asset is cheap, none but fees once it is dear
    liquidity = position_inputs(m, m.w3.eth.block_number)["liquidity"]
    full = amounts_for_liquidity(at_tick(lo), lo, hi, liquidity)[0] if m.d.asset_is_token0 else \
        amounts_for_liquidity(at_tick(hi), lo, hi, liquidity)[1]
    assert amounts[0] >= full and amounts[0] - full < full // 100    # cheap: all asset (+ some fees)
    assert amounts[6] < full // 100                                   # dear: fees only
    assert amounts[2] > amounts[3] > amounts[4]                      # selling the asset as it rises
    print(f"\n[LP exposure asset_is_token0={m.d.asset_is_token0}] asset held along the path: "
          f"{[round(a / WETH_UNIT, 4) for a in amounts]} WETH")


# ------------------------------------------------------------------ 5. mean tick

def test_mean_tick_matches_observe(m: Market) -> None:
    """Ticks set by swaps at chosen times; the mean over each window is the exact time-weighted
    mean of that timeline, floored. The pool's ticks are about -196,000 for the asset as token0
    (WETH is worth 3000e6 / 1e18 USDC units) and +196,000 as token1; the last swap pushes the
    price across tick 0 (about 1,200 ticks past it), so in both orders some windows have a
    negative mean and others a positive one, most of them not whole numbers."""
    w3 = m.w3
    t0 = int(w3.eth.get_block("latest")["timestamp"])
    timeline = [(t0, slot0(m)[1])]                  # (from this time, the pool's tick)
    far = -m.start_tick // 160                        # the other side of tick 0
    for dt, target in ((400, at_tick(m.start_tick - 37) + 11), (137, at_tick(m.start_tick + 91) - 5),
                       (600, at_tick(m.start_tick - 3)), (29, at_tick(m.start_tick + 12) + 1),
                       (311, at_tick(far) + 3)):
        mine_at(w3, timeline[-1][0] + dt)
        move_to(m, target)
        block = w3.eth.get_block("latest")
        timeline.append((int(block["timestamp"]), slot0(m)[1]))
    now = timeline[-1][0] + 1000
    mine_at(w3, now)
    w3.provider.make_request("evm_mine", [])
    block = w3.eth.block_number
    assert int(w3.eth.get_block(block)["timestamp"]) == now

    def integral(start: int) -> int:
        total = 0
        for (since, tick), (until, _) in zip(timeline, timeline[1:] + [(now, 0)]):
            total += tick * max(0, until - max(since, start))
        return total

    signs = []
    for window in (1, 7, 300, 999, 1000, 1001, 1005, 1013, 1311, 1499, 1900, 2099, now - t0):
        cumulatives = [int(x) for x in m.pool.functions.observe([window, 0]).call(block_identifier=block)[0]]
        assert cumulatives[1] - cumulatives[0] == integral(now - window)     # the reference is the chain's
        exact = Fraction(integral(now - window), window)
        got = mean_tick(cumulatives, window)
        assert got == floor(exact), f"window {window}: exact mean {float(exact)}"
        if exact.denominator != 1:
            signs.append(exact < 0)
    assert (far > 0) is m.d.asset_is_token0 and timeline[-1][1] == far
    assert signs.count(True) >= 2 and signs.count(False) >= 2, signs     # non-whole means of each sign


# ------------------------------------------------------------------ 6. price

def test_price_e18_at_tick_near_the_pools_price_after_arbitrage(m: Market) -> None:
    """After arbitrage_pool to a feed price the pool's sqrtPriceX96 is the feed price to within
    the swap's rounding (1e-8 USDC); its tick is the floor of the log of that price, so the
    tick's price is within one tick (a factor 1.0001, 1 bp) of the pool's, on a known side: below
    it for the asset as token0 (the tick's price rounds down), above it as token1 (the asset's
    price is the reciprocal). So |price_e18_at_tick - feed| <= feed / 10,000 + 2e10 (1 bp plus
    two units of the feed's 8th decimal), and exactly: it lies between the prices of the ticks
    on either side of the pool's exact price."""
    trader = sender(m.w3, TRADER)
    erc20 = artifact("MintableERC20")
    d0 = int(m.w3.eth.contract(address=m.d.token0, abi=erc20.abi).functions.decimals().call())
    d1 = int(m.w3.eth.contract(address=m.d.token1, abi=erc20.abi).functions.decimals().call())
    assert {d0, d1} == {6, 18}
    for usd in (300_000_000_000, 345_678_000_000, 123_450_000_000, 789_012_345_678, 299_999_999_999):
        set_prices(trader, m.d, usd)
        arbitrage_pool(trader, m.d)
        price, tick = slot0(m)
        ours = price_e18_at_tick(tick, d0, d1, m.d.asset_is_token0)
        # the pool's exact price of WETH in USDC, 18 decimals
        raw = Fraction(price * price, 2**192)                      # token1 per token0, raw units
        exact = raw * 10**(18 + d0 - d1) if m.d.asset_is_token0 else 1 / raw * 10**(18 + d1 - d0)
        next_ = price_e18_at_tick(tick + 1, d0, d1, m.d.asset_is_token0)
        if m.d.asset_is_token0:
            assert ours <= exact < next_ + 1
        else:
            assert next_ <= exact <= ours + 1
        feed = usd * 10**10
        assert abs(ours - feed) <= feed // 10_000 + 2 * 10**10, f"feed {usd}: tick {tick} gives {ours}"
