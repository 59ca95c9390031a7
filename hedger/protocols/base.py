"""The adapter interface every perp protocol implements.

It fits a synchronous market (one call changes the position) and a two-step
market (an order is submitted, a keeper fills it later): ``two_step`` says
which, ``read_specs``/``parse`` report a pending order, and ``build_calls``
turns a TRADE action into either a direct trade or an order submission.

Reads come in at most two stages, each one round trip for every market of the
cycle, both pinned to the head's block: ``read_specs`` (stage 1), then
``read_stage2`` for the calls that need a stage-1 answer to be formed (GMX
v2's ``Reader.getPositionInfo`` takes the prices stage 1 read). A venue without
a second stage reads in two round trips (the head, then stage 1), one with it
in three, whatever the number of markets. The collateral token is approved to
``spender`` (the market by default; GMX v2 overrides it with its Router).

Adding a protocol: one file under ``hedger/protocols/``, its ABI under
``abis/``, ``@register("name")`` on the class, and the shared adapter test
suite (``tests/test_adapter_suite.py``) run against it. Its formulas go in a
pure market model (``hedger/protocols/<name>/model.py``, a
:class:`hedger.core.model.MarketModel` registered with
``@register_model("name")``, imported by the adapter): the keeper marks each
snapshot with the adapter's name, and the policy asks that model.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Any, Callable, ClassVar

from web3 import Web3

from hedger.core.errors import ConfigError, RpcError
from hedger.chain.reader import CallSpec
from hedger.core.types import (AccountState, Action, Call, ChainView, CollateralToken, Fill, JournaledAction, MarketState,
                               Resume)

_REGISTRY: dict[str, type["PerpAdapter"]] = {}


class PerpAdapter(ABC):
    """One perp market, seen from one account."""

    name: ClassVar[str]
    order_modes: ClassVar[tuple[str, ...]] = ("direct", "delayed")   # HEDGER_ORDER_MODE values the venue has

    def __init__(self, w3: Web3, market: str, collateral: str, *, two_step: bool,
                 unlimited_approval: bool = False) -> None:
        self.w3 = w3
        self.market = Web3.to_checksum_address(market)
        self.collateral = Web3.to_checksum_address(collateral)
        self.two_step = two_step
        self.unlimited_approval = unlimited_approval

    @classmethod
    def venue_options(cls, settings: Any, account: str) -> dict[str, Any]:
        """Keyword arguments of this venue's constructor beyond the common ones, from the settings
        (``hedger.config.Settings``) and the hedged account. Default: none."""
        return {}

    @abstractmethod
    def read_specs(self, account: str) -> list[CallSpec]:
        """View calls that describe the market and the account (batched with the rest of the cycle)."""

    def read_stage2(self, account: str, stage1: dict[str, Any]) -> list[CallSpec]:
        """View calls that can only be formed from stage 1's answers (``stage1``: key -> value, as
        :meth:`read_specs` named them), read in one more round trip at the same block; their
        answers reach :meth:`parse` beside stage 1's, so their keys must differ. Default: none."""
        return []

    @abstractmethod
    def parse(self, results: dict[str, Any], account: str, chain: ChainView) -> tuple[MarketState, AccountState]:
        """Turn the results of ``read_specs`` (and of ``read_stage2``) into market and account state."""

    @property
    def spender(self) -> str:
        """The contract the collateral token is approved to, the one that pulls it on a deposit:
        the market itself by default (a venue whose router pulls the tokens overrides this)."""
        return self.market

    def collateral_token(self, decimals: int, symbol: str = "", feed: str | None = None) -> CollateralToken:
        """The collateral as a token with a value: ``feed`` a USD price feed of it (None: a declared
        USD stablecoin, worth 1.0), approved to :attr:`spender`."""
        return CollateralToken(address=self.collateral, decimals=decimals, symbol=symbol, spender=self.spender,
                               feed=Web3.to_checksum_address(feed) if feed else None)

    @abstractmethod
    def build_calls(self, actions: tuple[Action, ...], account: AccountState, market: MarketState) -> list[Call]:
        """Concrete transactions for a plan's actions, in order (approvals bounded to the need)."""

    def plan_calls(self, actions: tuple[Action, ...], account: AccountState, market: MarketState) -> list[Call]:
        """The calls of a plan, each marked with the action it is a leg of (``Call.action_index``),
        so that the journal records every action's legs and reconciliation can tell an unfinished
        action from a finished one."""
        calls: list[Call] = []
        for i, act in enumerate(actions):
            calls += [replace(c, action_index=i) for c in self.build_calls((act,), account, market)]
        return calls

    def resume(self, action: JournaledAction) -> Resume:
        """What to do with an action an earlier run left with some legs mined and others not:
        finish it, unwind it, or leave it to the next plan. A venue whose legs leave no debt or
        loose tokens behind re-plans (the default); a venue with such legs (a borrow whose swap
        was never sent) overrides this."""
        return Resume("replan", f"{action.kind.value} left with {sum(lg.state == 'mined' for lg in action.legs)} of "
                                f"{action.legs_planned} transaction(s) mined; the next plan decides from the chain's state")

    def order_fill(self, account: str, order_key: str, size_delta: int, from_block: int, to_block: int) -> Fill | None:
        """How the venue filled an order of ``account`` that it reports executed, from the events of
        whichever transaction executed it (on a two-step venue a keeper's, not ours) between the
        two blocks; None when the venue's records do not say (the report then uses the estimate)."""
        return None

    def created_order_key(self, tx_hash: str) -> str | None:
        """The venue's key of the order our mined transaction ``tx_hash`` created, from its events,
        for a venue whose keys are not known before mining (GMX v2: from NONCE at creation). None:
        the key is the call's own, or is learned from the venue's order list."""
        return None

    @abstractmethod
    def trade_fee(self, receipt: dict[str, Any], account: str) -> int | None:
        """The trading fee (E18 USD) the market charged ``account`` in this receipt, from its
        events; None when the receipt holds no trade (for `hedger report`)."""

    @abstractmethod
    def interface_check(self) -> tuple[bool, str]:
        """For `hedger check`: does the market answer its interface, and take the configured
        collateral? (ok, detail)"""

    def liquidation_log_filter(self, account: str, from_block: int, to_block: int) -> dict[str, Any] | None:
        """The ``eth_getLogs`` filter, as JSON-RPC params (``address``, ``fromBlock``/``toBlock`` as hex
        quantities, ``topics``), of the venue's records of ``account`` liquidated by a third party
        between the two blocks (inclusive): the keeper sends it in the batch of its stage-1 read,
        before :meth:`parse`, so it may not ask the chain anything. None: nothing to ask (an empty
        range, or the default: a venue without such records; the journal's position check still
        notes a position changed outside)."""
        return None

    def liquidations_from_logs(self, logs: list[dict[str, Any]]) -> list[str]:
        """One line per liquidation in the raw JSON-RPC logs that :meth:`liquidation_log_filter`'s
        query returned (for the cycle's notes and the ``liquidated`` alert); called after
        :meth:`parse` of the same read. Default: none."""
        return []

    @staticmethod
    def events_in(event: Any, address: str, logs: list[dict[str, Any]]) -> list[tuple[Any, str, int]]:
        """(decoded arguments, transaction hash, block number) of each log of ``event`` that
        ``address`` emitted, from raw JSON-RPC logs (hex strings) or as web3 formats them."""
        out = []
        for log in logs:
            if Web3.to_checksum_address(log["address"]) != Web3.to_checksum_address(address):
                continue
            tx, block = log["transactionHash"], log["blockNumber"]
            out.append((event.process_log(log)["args"], tx.lower() if isinstance(tx, str) else Web3.to_hex(tx),
                        int(block, 16) if isinstance(block, str) else int(block)))
        return out

    def liquidations(self, account: str, from_block: int, to_block: int) -> list[str]:
        """The venue's records of ``account`` liquidated by a third party between the two blocks
        (inclusive), one line each, asked in an ``eth_getLogs`` of its own (the keeper's cycle
        asks the same filter inside its batched read instead)."""
        query = self.liquidation_log_filter(account, from_block, to_block)
        if query is None:
            return []
        resp = self.w3.provider.make_request("eth_getLogs", [query])   # type: ignore[arg-type]
        if "error" in resp or not isinstance(resp.get("result"), list):
            raise RpcError(f"eth_getLogs of the venue's liquidations failed: {resp.get('error')}")
        return self.liquidations_from_logs(resp["result"])

    def venue_checks(self, account: str, holder: str) -> list[tuple[str, bool, str, str]]:
        """For `hedger check`: the venue's own checks of ``account`` (the signer) hedging ``holder``'s
        exposure, as (name, ok, detail, fix). Default: none beyond :meth:`interface_check`."""
        return []

    @abstractmethod
    def fill_order_call(self, account: str) -> Call | None:
        """For a protocol keeper: the call that fills ``account``'s pending order (None on a synchronous market)."""


def register(name: str) -> Callable[[type[PerpAdapter]], type[PerpAdapter]]:
    def deco(cls: type[PerpAdapter]) -> type[PerpAdapter]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return deco


def registered() -> list[str]:
    return sorted(_REGISTRY)


def get_adapter(name: str) -> type[PerpAdapter]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError("HEDGER_PROTOCOL", f"unknown protocol {name!r}",
                          f"use one of: {', '.join(registered())}") from None
