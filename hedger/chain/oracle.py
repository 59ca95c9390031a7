"""Price and sequencer feeds through Chainlink's AggregatorV3Interface.

Reading is batched with the rest of the cycle (:mod:`hedger.chain.reader`); the
guards that decide whether a round may be used are pure (:mod:`hedger.decide.guards`).
"""

from __future__ import annotations

from typing import Any

from hedger.chain.abi import AGGREGATOR_V3
from hedger.chain.reader import CallSpec
from hedger.core.types import FeedRound


def feed_specs(prefix: str, address: str) -> list[CallSpec]:
    return [CallSpec(f"{prefix}.decimals", address, AGGREGATOR_V3, "decimals"),
            CallSpec(f"{prefix}.round", address, AGGREGATOR_V3, "latestRoundData"),
            CallSpec(f"{prefix}.description", address, AGGREGATOR_V3, "description", optional=True)]


def parse_feed(prefix: str, address: str, r: dict[str, Any]) -> FeedRound:
    rid, answer, started, updated, _ = r[f"{prefix}.round"]
    return FeedRound(address=address, decimals=int(r[f"{prefix}.decimals"]), round_id=int(rid), answer=int(answer),
                     started_at=int(started), updated_at=int(updated), description=r.get(f"{prefix}.description") or "")
