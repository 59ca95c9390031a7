"""Adapter for the reference market (``contracts/PerpMarket.vy``, Synthetix PerpsV2 shape).

Direct mode trades with ``modifyPosition``; delayed mode submits with
``submitDelayedOrder`` and a protocol keeper fills with ``executeDelayedOrder``.
"""

from __future__ import annotations

from typing import Any

from web3 import Web3

from hedger.chain.abi import ERC20, PERP_MARKET, load_abi
from hedger.protocols.base import PerpAdapter, register
from hedger.protocols.reference.model import ReferenceMarketState  # (also registers the "reference" market model)
from hedger.chain.reader import CallSpec
from hedger.core.fixedpoint import fmt_units
from hedger.core.types import (AccountState, Action, ActionKind, Call, ChainView, Fill, JournaledAction, MarketState,
                               Order, OrderKind, OrderState, Resume)

PARAM_FIELDS = ("maxOracleAge", "skewScale", "maxFundingVelocity", "takerFee", "makerFee", "maxLeverage",
                "liquidationBufferRatio", "liquidationFeeRatio", "liquidationPremiumMultiplier", "minKeeperFee",
                "maxKeeperFee", "minInitialMargin", "orderKeeperFee", "minOrderDelay", "maxOrderDelay")


@register("reference")
class ReferenceMarket(PerpAdapter):
    def __init__(self, w3: Web3, market: str, collateral: str, *, two_step: bool,
                 unlimited_approval: bool = False) -> None:
        super().__init__(w3, market, collateral, two_step=two_step, unlimited_approval=unlimited_approval)
        self._market_c = w3.eth.contract(address=self.market, abi=load_abi(PERP_MARKET))
        self._token_c = w3.eth.contract(address=self.collateral, abi=load_abi(ERC20))

    def read_specs(self, account: str) -> list[CallSpec]:
        m, a = self.market, account
        specs = [
            CallSpec("m.params", m, PERP_MARKET, "params"),
            CallSpec("m.assetPrice", m, PERP_MARKET, "assetPrice"),
            CallSpec("m.skew", m, PERP_MARKET, "marketSkew"),
            CallSpec("m.fundingRate", m, PERP_MARKET, "currentFundingRate"),
            CallSpec("m.fundingVelocity", m, PERP_MARKET, "currentFundingVelocity"),
            CallSpec("m.collateral", m, PERP_MARKET, "collateral"),
            CallSpec("m.feed", m, PERP_MARKET, "feed"),
            CallSpec("a.position", m, PERP_MARKET, "positions", (a,)),
            CallSpec("a.remaining", m, PERP_MARKET, "remainingMargin", (a,)),
            CallSpec("a.accessible", m, PERP_MARKET, "accessibleMargin", (a,)),
            CallSpec("a.liqPrice", m, PERP_MARKET, "liquidationPrice", (a,)),
            CallSpec("a.funding", m, PERP_MARKET, "accruedFunding", (a,)),
            CallSpec("a.pnl", m, PERP_MARKET, "profitLoss", (a,)),
            CallSpec("a.order", m, PERP_MARKET, "delayedOrders", (a,)),
            CallSpec("c.decimals", self.collateral, ERC20, "decimals"),
            CallSpec("c.balance", self.collateral, ERC20, "balanceOf", (a,)),
            CallSpec("c.allowance", self.collateral, ERC20, "allowance", (a, self.spender)),
        ]
        return specs

    def parse(self, r: dict[str, Any], account: str, chain: ChainView) -> tuple[ReferenceMarketState, AccountState]:
        p = dict(zip(PARAM_FIELDS, r["m.params"]))
        price, invalid = r["m.assetPrice"]
        market = ReferenceMarketState(
            address=self.market, price=int(price), price_invalid=bool(invalid), skew=int(r["m.skew"]),
            skew_scale=p["skewScale"], funding_rate=int(r["m.fundingRate"]),
            funding_velocity=int(r["m.fundingVelocity"]), taker_fee=p["takerFee"], maker_fee=p["makerFee"],
            max_leverage=p["maxLeverage"], min_initial_margin=p["minInitialMargin"],
            liquidation_buffer_ratio=p["liquidationBufferRatio"], liquidation_fee_ratio=p["liquidationFeeRatio"],
            liquidation_premium_multiplier=p["liquidationPremiumMultiplier"], min_keeper_fee=p["minKeeperFee"],
            max_keeper_fee=p["maxKeeperFee"], order_keeper_fee=p["orderKeeperFee"] if self.two_step else 0,
            min_order_delay=p["minOrderDelay"], max_order_delay=p["maxOrderDelay"],
            collateral_decimals=int(r["c.decimals"]), two_step=self.two_step,
            feed=Web3.to_checksum_address(r["m.feed"]))
        _margin, size, _last_price, _entry = r["a.position"]
        o_size, o_desired, _o_fee, o_at = r["a.order"]
        orders: tuple[Order, ...] = ()
        if o_size != 0:
            # one delayed order per account, keyed by the account; it can no longer be executed once
            # chain time passes its expiry (executeDelayedOrder: "order expired"), only cancelled
            expires_at = int(o_at) + p["maxOrderDelay"]
            orders = (Order(key=Web3.to_checksum_address(account), kind=OrderKind.for_size(int(size), int(o_size)),
                            size_delta=int(o_size), collateral_delta=0, acceptable_price=int(o_desired),
                            submitted_at=int(o_at), executable_at=int(o_at) + p["minOrderDelay"],
                            expires_at=expires_at,
                            state=OrderState.EXPIRED if chain.block_timestamp > expires_at else OrderState.PENDING),)
        acct = AccountState(
            address=account, size=int(size), margin=int(r["a.remaining"][0]),
            accessible_margin=int(r["a.accessible"][0]), liquidation_price=int(r["a.liqPrice"][0]),
            accrued_funding=int(r["a.funding"][0]), pnl=int(r["a.pnl"][0]), orders=orders,
            collateral_wallet=int(r["c.balance"]), collateral_allowance=int(r["c.allowance"]))
        return market, acct

    def _call(self, contract: Any, name: str, fn: str, args: tuple[Any, ...], action: ActionKind,
              risk_reducing: bool, note: str, notional_usd: int = 0, *, leg: str = "main", amount: int = 0,
              creates_order: bool = False, order_key: str = "") -> Call:
        data = contract.get_function_by_name(fn)(*args)._encode_transaction_data()
        return Call(to=contract.address, contract=name, function=fn, args=args, data=data, action=action,
                    risk_reducing=risk_reducing, note=note, notional_usd=notional_usd, leg=leg, amount=amount,
                    creates_order=creates_order, order_key=order_key)

    def build_calls(self, actions: tuple[Action, ...], account: AccountState, market: MarketState) -> list[Call]:
        calls: list[Call] = []
        scale = 10 ** (18 - market.collateral_decimals)
        for act in actions:
            if act.kind is ActionKind.DEPOSIT:
                if account.collateral_allowance < act.amount:
                    if account.collateral_allowance != 0:
                        # USDT and tokens like it revert when a non-zero allowance is changed to
                        # another non-zero value (the ERC-20 approve race): clear the leftover first
                        calls.append(self._call(self._token_c, "collateral", "approve", (self.spender, 0),
                                                act.kind, act.risk_reducing,
                                                "reset the leftover allowance to zero first (USDT-style tokens "
                                                "refuse to change a non-zero allowance)", leg="approve"))
                    # bounded to this deposit unless HEDGER_UNLIMITED_APPROVAL is set
                    amount = 2**256 - 1 if self.unlimited_approval else act.amount
                    calls.append(self._call(self._token_c, "collateral", "approve", (self.spender, amount),
                                            act.kind, act.risk_reducing,
                                            "unlimited approval (configured)" if self.unlimited_approval
                                            else "approve exactly the deposit", act.amount * scale, leg="approve"))
                calls.append(self._call(self._market_c, "market", "transferMargin", (act.amount,), act.kind,
                                        act.risk_reducing, act.note, act.amount * scale, amount=act.amount))
            elif act.kind is ActionKind.WITHDRAW:
                calls.append(self._call(self._market_c, "market", "transferMargin", (-act.amount,), act.kind,
                                        act.risk_reducing, act.note, act.amount * scale, amount=-act.amount))
            elif act.kind is ActionKind.TRADE:
                fn = "submitDelayedOrder" if self.two_step else "modifyPosition"
                calls.append(self._call(self._market_c, "market", fn, (act.amount, act.price_bound), act.kind,
                                        act.risk_reducing, act.note, abs(act.amount) * market.price // 10**18,
                                        amount=act.amount, creates_order=self.two_step,
                                        # the account's one delayed order is keyed by the account
                                        order_key=Web3.to_checksum_address(account.address) if self.two_step
                                        else ""))
            elif act.kind is ActionKind.CANCEL_ORDER:
                calls.append(self._call(self._market_c, "market", "cancelDelayedOrder", (account.address,),
                                        act.kind, act.risk_reducing, act.note,
                                        order_key=act.order_key or Web3.to_checksum_address(account.address)))
        return calls

    def resume(self, action: JournaledAction) -> Resume:
        """Every leg here leaves the account consistent on its own: an approval without its deposit
        is an allowance bounded to that deposit (the next deposit uses it); one leg of a trade
        crossing zero is a smaller position. So an unfinished action is re-planned, never finished
        from a stale decision."""
        mined = [lg for lg in action.legs if lg.state == "mined"]
        if action.kind is ActionKind.DEPOSIT and mined and all(lg.leg == "approve" for lg in mined):
            return Resume("replan", f"deposit of {action.amount} (native units): only its approval was mined; the "
                                    "allowance stays, bounded to that deposit, and the next plan decides the deposit "
                                    "again from the chain's state")
        return super().resume(action)

    def order_fill(self, account: str, order_key: str, size_delta: int, from_block: int, to_block: int) -> Fill | None:
        """The protocol keeper's ``executeDelayedOrder`` emits ``PositionModified`` for the account:
        the first one of the order's size after it was submitted is its fill."""
        logs = self._market_c.events.PositionModified().get_logs(
            from_block=from_block, to_block=to_block, argument_filters={"account": Web3.to_checksum_address(account)})
        for ev in sorted(logs, key=lambda e: (e["blockNumber"], e["logIndex"])):
            a = ev["args"]
            if int(a["sizeDelta"]) == size_delta:
                return Fill(price=int(a["fillPrice"]), fee=int(a["fee"]) + int(a["keeperFee"]),
                            tx_hash=Web3.to_hex(ev["transactionHash"]), block_number=int(ev["blockNumber"]))
        return None

    def liquidation_log_filter(self, account: str, from_block: int, to_block: int) -> dict[str, Any] | None:
        """The market's ``PositionLiquidated`` events of ``account`` (its first indexed topic)."""
        if to_block < from_block:
            return None
        account_topic = "0x" + "00" * 12 + Web3.to_checksum_address(account)[2:].lower()
        return {"address": self.market, "fromBlock": hex(from_block), "toBlock": hex(to_block),
                "topics": [self._market_c.events.PositionLiquidated().topic, account_topic]}

    def liquidations_from_logs(self, logs: list[dict[str, Any]]) -> list[str]:
        """Who liquidated the position, its size and the price, the fee and the margin left, in which
        transaction, for each of the market's ``PositionLiquidated`` events in ``logs``."""
        return [f"liquidated: {ev['liquidator']} closed the position of {fmt_units(int(ev['size']), 18, 6)} at "
                f"{fmt_units(int(ev['price']), 18, 2)} (fee {fmt_units(int(ev['fee']), 18, 2)}, margin left "
                f"{fmt_units(int(ev['remainingMargin']), 18, 2)}) in tx {tx} (block {block}); the next plan re-hedges"
                for ev, tx, block in self.events_in(self._market_c.events.PositionLiquidated(), self.market, logs)]

    def trade_fee(self, receipt: dict[str, Any], account: str) -> int | None:
        from web3.logs import DISCARD
        fees = [int(ev["args"]["fee"]) + int(ev["args"]["keeperFee"])
                for ev in self._market_c.events.PositionModified().process_receipt(receipt, errors=DISCARD)
                if ev["args"]["account"] == account]
        return sum(fees) if fees else None

    def interface_check(self) -> tuple[bool, str]:
        params = dict(zip(PARAM_FIELDS, self._market_c.functions.params().call()))
        collateral = Web3.to_checksum_address(self._market_c.functions.collateral().call())
        feed = Web3.to_checksum_address(self._market_c.functions.feed().call())
        ok = collateral == self.collateral and params["skewScale"] > 0 and params["maxLeverage"] >= 10**18
        detail = (f"{self.market} reads feed {feed}, takes collateral {collateral}"
                  + ("" if collateral == self.collateral else f" (configured: {self.collateral})")
                  + f", max leverage {params['maxLeverage'] / 10**18:g}x, order delays "
                    f"{params['minOrderDelay']}-{params['maxOrderDelay']}s")
        return ok, detail

    def fill_order_call(self, account: str) -> Call | None:
        if not self.two_step:
            return None
        return self._call(self._market_c, "market", "executeDelayedOrder", (Web3.to_checksum_address(account),),
                          ActionKind.TRADE, False, "protocol keeper fills a due order")
