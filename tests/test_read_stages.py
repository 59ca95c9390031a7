"""Reads in stages (issue 10): an adapter whose second stage needs stage 1's answers reads,
for one market or ten, in three HTTP requests (the head, every market's stage 1, every
market's stage 2), all pinned to the head's block; one-stage adapters still take two.

The staged adapter (``tests/staged.py``) asks, in stage 2, the feed whose address stage 1
returned (the market's ``feed()``), and takes the market price from it. To see which block
stage 2 reads, a test mines new rounds between the stages: pinned to the head's block,
stage 2 still sees the old price; read at ``latest`` it would see the new one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from web3 import Web3

from hedger.config import Settings
from hedger.cycle.multimarket import MultiKeeper
from hedger.sim.deploy import MarketParams, deploy_contract, transact
from tests.conftest import PRICE_DECIMALS, Hedge
from tests.rpcproxy import FaultProxy
from tests.staged import StagedMarket, use_staged

UNIT = 10**18


def feed_price(hedge: Hedge, feed: str) -> int:
    """A feed's latest answer as E18 USD, at the latest block."""
    return hedge.chain.contract("PriceFeed", feed).functions.latestRoundData().call()[1] * 10 ** (18 - PRICE_DECIMALS)


def set_feed(hedge: Hedge, feed: str, usd: int) -> None:
    transact(hedge.chain.deployer, "PriceFeed", feed, "setAnswer", usd * 10**PRICE_DECIMALS)


def markets_with_own_feeds(hedge: Hedge, n: int) -> list[tuple[str, str, int]]:
    """``n`` markets on the reference collateral, each reading a feed of its own at its own price:
    (market, feed, price in USD)."""
    out = []
    for i in range(n):
        usd = 3000 + 100 * i
        feed = deploy_contract(hedge.chain.deployer, "PriceFeed", PRICE_DECIMALS, f"ASSET{i} / USD", 1)
        set_feed(hedge, feed, usd)
        market = deploy_contract(hedge.chain.deployer, "PerpMarket", hedge.chain.d.collateral, feed,
                                 MarketParams().as_tuple())
        out.append((Web3.to_checksum_address(market), feed, usd))
    return out


def multi_keeper(hedge: Hedge, url: str, markets: list[tuple[str, str, int]], **env: str) -> MultiKeeper:
    entries = [{"name": f"M{i}", "market": m, "oracle": feed, "spot_token": hedge.chain.d.spot}
               for i, (m, feed, _) in enumerate(markets)]
    base = {k: v for k, v in hedge.env.items() if k not in ("HEDGER_MARKET", "HEDGER_ORACLE", "HEDGER_SPOT_TOKEN",
                                                             "HEDGER_PRIVATE_KEY")}
    # no signer: a whole cycle is a dry run, so its reads are all it asks of the node
    settings = Settings.from_env({**base, "HEDGER_RPC_URL": url, "HEDGER_ACCOUNT": hedge.address,
                                  "HEDGER_MARKETS": json.dumps(entries), **env}, dotenv=False)
    return MultiKeeper.from_settings(settings)


def test_one_market_reads_in_three_round_trips_with_a_second_stage(hedge: Hedge) -> None:
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        k = hedge.keeper(HEDGER_RPC_URL=proxy.url())
        proxy.reset_counts()
        one_stage = k.read()
        assert proxy.http_requests == 2, proxy.calls                    # the reference market: one stage
        use_staged(k)
        proxy.reset_counts()
        staged = k.read()
        assert proxy.http_requests == 3, proxy.calls
    assert staged.market.price == one_stage.market.price == 3000 * UNIT
    assert staged.account == one_stage.account and staged.oracle == one_stage.oracle


def test_stage_two_reads_the_heads_block_even_when_a_block_is_mined_between_stages(hedge: Hedge) -> None:
    c = hedge.chain
    with FaultProxy(c.anvil.url) as proxy:
        k = hedge.keeper(HEDGER_RPC_URL=proxy.url())
        use_staged(k, between=lambda: c.set_price(3500))     # a new round, mined after stage 1 was read
        proxy.reset_counts()
        snap = k.read()
        assert proxy.http_requests == 3, proxy.calls
    assert c.w3.eth.block_number > snap.chain.block_number                 # a block was mined meanwhile
    assert feed_price(hedge, c.d.oracle) == 3500 * UNIT                    # ... and 'latest' prices 3,500
    # stage 2 read at the head's block: the price that block had, as stage 1 saw it
    assert snap.market.price == 3000 * UNIT and snap.oracle.price_e18 == 3000 * UNIT


@pytest.mark.parametrize("n", [1, 10])
def test_every_market_reads_in_three_round_trips_pinned_to_one_block(hedge: Hedge, n: int) -> None:
    markets = markets_with_own_feeds(hedge, n)

    def new_rounds() -> None:          # every feed moves, in blocks mined between the stages
        for _, feed, usd in markets:
            set_feed(hedge, feed, usd + 1000)

    with FaultProxy(hedge.chain.anvil.url) as proxy:
        mk = multi_keeper(hedge, proxy.url(), markets, HEDGER_MULTICALL=hedge.chain.d.multicall)
        proxy.reset_counts()
        assert mk.read() and proxy.http_requests == 2, proxy.calls           # one stage: two round trips
        first = next(iter(mk.keepers.values()))
        use_staged(first, between=new_rounds)
        for k in list(mk.keepers.values())[1:]:
            use_staged(k)
        proxy.reset_counts()
        snaps = mk.read()
        assert proxy.http_requests == 3, proxy.calls
        assert proxy.calls["eth_call"] == 2                   # stage 1 and stage 2, one aggregate3 each
    assert len({s.chain.block_number for s in snaps.values()}) == 1
    assert hedge.chain.w3.eth.block_number >= next(iter(snaps.values())).chain.block_number + n
    for (market, feed, usd), (name, s) in zip(markets, snaps.items()):
        assert s.market.address == market, name
        assert feed_price(hedge, feed) == (usd + 1000) * UNIT                 # 'latest' has moved on
        assert s.market.price == usd * UNIT, name             # each market's own feed, at the head's block


def test_a_whole_dry_run_cycle_of_ten_staged_markets_takes_three_round_trips(hedge: Hedge) -> None:
    markets = markets_with_own_feeds(hedge, 10)
    with FaultProxy(hedge.chain.anvil.url) as proxy:
        mk = multi_keeper(hedge, proxy.url(), markets)            # JSON-RPC batches (no Multicall3 set)
        for k in mk.keepers.values():
            use_staged(k)
        mk.read()                      # the first read also probes the canonical Multicall3 (absent here)
        proxy.reset_counts()
        res = mk.cycle()
        assert proxy.http_requests == 3, proxy.calls
    assert res.exit_code == 0 and res.results["M0"].outcome == "dry_run"


def test_a_stage_two_key_that_repeats_a_stage_one_key_is_refused(hedge: Hedge) -> None:
    """A stage-2 answer under a stage-1 key would hide that answer from ``parse``: the adapter's error."""
    class Clashing(StagedMarket):
        def read_stage2(self, account: str, stage1: dict[str, Any]) -> list[Any]:
            first, second = super().read_stage2(account, stage1)
            return [first, replace(second, key="m.assetPrice")]

    k = hedge.keeper()
    a = k.adapter
    k.adapter = Clashing(a.w3, a.market, a.collateral, two_step=False)
    with pytest.raises(ValueError, match=r"stage-2 keys \['m.assetPrice'\] repeat stage-1 keys"):
        k.read()
