"""The policy's expectations checked against the contract itself, on anvil.

The pure tests recompute the state after a decision with the same fixed-point mirrors the
policy uses; here each decision is executed by the keeper and the figures it announced
(leverage after, liquidation distance after, fee, fill) are compared with the market's own
views and events once the action is mined.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from web3.logs import DISCARD

from hedger.sim.deploy import deploy_contract
from hedger.core.types import UNIT
from tests.conftest import USDC, WETH, Hedge

REL = 10**12            # leverage: agree to 1e-6 relative (seconds of funding between read and mining)
ABS = 10**12            # liquidation distance: agree to 1e-6 of the price


def views(h: Hedge) -> tuple[int, int, int]:
    """(size, leverage E18, liquidation distance E18) as the market reports them."""
    m = h.chain.market.functions
    size = m.positions(h.address).call()[1]
    margin = m.remainingMargin(h.address).call()[0]
    price = m.assetPrice().call()[0]
    liq = m.liquidationPrice(h.address).call()[0]
    lev = abs(size) * price // UNIT * UNIT // margin
    return size, lev, abs(liq - price) * UNIT // price


def trades(h: Hedge, res: Any) -> list[dict[str, Any]]:
    market = h.chain.market
    out = []
    for t in res.sent:
        receipt = h.chain.w3.eth.get_transaction_receipt(t.tx_hash)
        out += [ev["args"] for ev in market.events.PositionModified().process_receipt(receipt, errors=DISCARD)
                if ev["args"]["account"] == h.address and ev["args"]["sizeDelta"] != 0]
    return out


def _open(h: Hedge) -> dict[str, str]:
    return {}


def _top_up(h: Hedge) -> dict[str, str]:
    h.cycle()
    h.chain.set_price(4200)
    return {}


def _withdraw(h: Hedge) -> dict[str, str]:
    h.cycle()
    h.chain.set_price(1800)
    return {}


def _skewed_market_and_second_oracle(h: Hedge) -> dict[str, str]:
    """Others hold 20,000 ETH long (a 2% skew premium), and the hedger reads its own feed at
    3,030 while the market's feed says 3,000: the market's figures are at the market's price."""
    c = h.chain
    c.deposit(3, 30_000_000 * USDC)
    c.trade(3, 20_000 * WETH)
    mine = deploy_contract(c.deployer, "PriceFeed", 8, "ETH / USD (hedger's)", 1)
    c.admin("PriceFeed", mine, "setAnswer", 3030 * 10**8)
    return {"HEDGER_ORACLE": mine}


def _flip(h: Hedge) -> dict[str, str]:
    h.cycle()
    return {"HEDGER_EXTRA_EXPOSURE": "-18", "HEDGER_COOLDOWN": "0"}


def _collateral_limited(h: Hedge) -> dict[str, str]:
    h.chain.call_as(1, "ReferenceToken", h.chain.d.collateral, "transfer", h.chain.d.deployer, 45_000 * USDC)
    return {}


def _deleverage(h: Hedge) -> dict[str, str]:
    h.cycle()
    wallet = h.chain.usdc.functions.balanceOf(h.address).call()
    h.chain.call_as(1, "ReferenceToken", h.chain.d.collateral, "transfer", h.chain.d.deployer, wallet)
    h.chain.set_price(4300)
    return {}


@pytest.mark.parametrize("setup, code", [
    (_open, "rebalance"), (_top_up, "top_up"), (_withdraw, "withdraw_excess"),
    (_skewed_market_and_second_oracle, "rebalance"), (_flip, "rebalance"),
    (_collateral_limited, "collateral_limited"), (_deleverage, "deleverage"),
], ids=["open", "top_up", "withdraw", "skew_and_second_oracle", "flip", "collateral_limited", "deleverage"])
def test_announced_figures_are_the_markets(hedge: Hedge, setup: Callable[[Hedge], dict[str, str]],
                                           code: str) -> None:
    env = setup(hedge)
    res = hedge.cycle(**env)
    d = res.decision
    assert res.outcome == "acted" and d.code == code, (d.code, d.reason, res.error)
    size, lev, dist = views(hedge)
    assert size != 0
    assert abs(d.leverage_after - lev) * UNIT <= REL * lev, (d.leverage_after, lev)
    assert abs(d.liquidation_distance_after - dist) <= ABS, (d.liquidation_distance_after, dist)
    evs = trades(hedge, res)
    if d.size_delta:
        assert sum(e["sizeDelta"] for e in evs) == d.size_delta
        assert sum(e["fee"] for e in evs) == d.expected_fee
        fills = [e["fillPrice"] for e in evs]
        assert fills == (list(d.leg_fill_prices) if len(evs) == 2 else [d.expected_fill_price])
    else:
        assert evs == []
