"""A venue that reads in two stages, for the tests and ``bench/reads.py``.

:class:`StagedMarket` is the reference market whose price is read in a second stage from
the feed whose address only stage 1 knows (the market's ``feed()``), as GMX v2's
``Reader.getPositionInfo`` takes the prices its stage 1 read. It is not registered: a test
puts it in place of a keeper's adapter with :func:`use_staged`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from hedger.chain.abi import AGGREGATOR_V3
from hedger.chain.reader import CallSpec
from hedger.core.types import AccountState, ChainView, MarketState
from hedger.protocols.reference.adapter import ReferenceMarket


class StagedMarket(ReferenceMarket):
    """``between``, when given, runs after stage 1 was read and before stage 2 is (a test mines a
    block there, to see which block stage 2 reads)."""

    def __init__(self, *args: Any, between: Callable[[], None] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.between = between

    def read_stage2(self, account: str, stage1: dict[str, Any]) -> list[CallSpec]:
        if self.between is not None:
            self.between()
        feed = stage1["m.feed"]
        return [CallSpec("s2.decimals", feed, AGGREGATOR_V3, "decimals"),
                CallSpec("s2.round", feed, AGGREGATOR_V3, "latestRoundData")]

    def parse(self, r: dict[str, Any], account: str, chain: ChainView) -> tuple[MarketState, AccountState]:
        market, acct = super().parse(r, account, chain)
        answer = int(r["s2.round"][1])
        return replace(market, price=answer * 10 ** (18 - int(r["s2.decimals"]))), acct


def use_staged(keeper: Any, between: Callable[[], None] | None = None) -> StagedMarket:
    """Put a :class:`StagedMarket` in place of a keeper's reference adapter (same market, mode)."""
    a = keeper.adapter
    keeper.adapter = StagedMarket(a.w3, a.market, a.collateral, two_step=a.two_step,
                                  unlimited_approval=a.unlimited_approval, between=between)
    return keeper.adapter
