"""Adapter for GMX v2 (``HEDGER_PROTOCOL=gmx-v2``): every change is an order a GMX keeper executes.

Reads (docs/VENUE-SEAM.md): stage 1 the hedger's oracle (GMX's keepers sign their own prices; the
hedger values everything at the feed it trusts), DataStore keys (fees, impact, gas limits,
MIN_COLLATERAL_USD, min collateral factors, REQUEST_EXPIRATION_TIME), ``Reader.getAccountOrders``,
``Reader.getAccountPositions``, the wallet and its allowance to GMX's Router; stage 2
``Reader.getMarketInfo`` and ``Reader.getPositionInfo`` with the oracle's prices in GMX's units
(USD per smallest unit x 1e30). The addresses behind ``ExchangeRouter`` (dataStore, router,
orderHandler, eventEmitter, roleStore; the handler's orderVault and referralStorage) and the
market's tokens are fixed: read once, then cached.

Orders: ``ExchangeRouter.multicall([sendWnt(orderVault, fee), sendTokens(collateral, orderVault,
amount), createOrder(params)])`` with ``value`` = the execution fee (GMX's minimum at the current
gas price x ``fee_margin_pct`` / 100); a deposit planned with a trade rides in the trade's order
(GMX takes an increase's collateral with it; an opening without it would be cancelled), a deposit
alone is a MarketIncrease of size 0, a withdrawal a MarketDecrease of size 0 with
``initialCollateralDeltaAmount``; cancelling is ``cancelOrder(key)``. The key of an order is
GMX's (from NONCE at execution time, so not known before it is mined on a shared chain): the
journal learns it from the venue's order list.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any

from web3 import Web3

from hedger.chain.abi import AGGREGATOR_V3, ABI_DIR, ERC20, contract_artifact, load_abi
from hedger.chain.reader import CallSpec
from hedger.core.errors import ChainGuardError, ConfigError
from hedger.core.types import (AccountState, Action, ActionKind, Call, ChainView, Fill, MarketState, Order, OrderKind,
                               OrderState)
from hedger.protocols.base import PerpAdapter, register
from hedger.protocols.gmx_v2 import interface as gi
from hedger.protocols.gmx_v2.model import GmxMarketState, ImpactParams, Position  # (registers the "gmx-v2" model)

DATA_STORE, READER, EXCHANGE_ROUTER, EVENT_EMITTER = ("gmx-v2/DataStore", "gmx-v2/Reader", "gmx-v2/ExchangeRouter",
                                                      "gmx-v2/EventEmitter")
MIN_POSITION_SIZE_USD = gi.hash_string("MIN_POSITION_SIZE_USD")
ZERO = "0x" + "00" * 20
MAX_UINT = 2**256 - 1
DEPLOYMENTS = ("arbitrum", "avalanche")
# claimable collateral is kept by time key (timestamp // CLAIMABLE_COLLATERAL_TIME_DIVISOR, an hour on
# GMX's deployments): the reads look this many time keys back from the oracle's last update
CLAIM_WINDOW = 24
# views GMX publishes no ABI for in the SDK (interface.EXTRA_VIEWS): minimal ABIs of them
_VIEW_ABI = [{"type": "function", "name": n, "stateMutability": "view", "inputs": [],
              "outputs": [{"name": "", "type": "address"}]} for n in ("orderVault", "referralStorage")]
_ROLE_ABI = [{"type": "function", "name": "hasRole", "stateMutability": "view",
              "inputs": [{"name": "account", "type": "address"}, {"name": "roleKey", "type": "bytes32"}],
              "outputs": [{"name": "", "type": "bool"}]}]


def deployment_addresses(name: str) -> tuple[str, str]:
    """(ExchangeRouter, Reader) of a GMX deployment from the SDK's address book (abis/gmx-v2/addresses.json)."""
    if name not in DEPLOYMENTS:
        raise ConfigError("HEDGER_GMX_DEPLOYMENT", f"unknown deployment {name!r}", f"use one of: {', '.join(DEPLOYMENTS)}")
    book = json.loads((ABI_DIR / "gmx-v2" / "addresses.json").read_text())[name]
    return Web3.to_checksum_address(book["ExchangeRouter"]), Web3.to_checksum_address(book["Reader"])


def _to_e18(price_gmx: int, index_decimals: int) -> int:
    """A GMX price (USD per smallest unit x 1e30) as E18 USD per whole token."""
    return price_gmx * 10**index_decimals // 10**12


@register("gmx-v2")
class GmxV2(PerpAdapter):
    order_modes = ("delayed",)  # every change is an order GMX's keeper executes (no direct mode)

    @classmethod
    def venue_options(cls, settings: Any, account: str) -> dict[str, Any]:
        """GMX's own settings: the two addresses everything is read from (or the SDK's address book
        of a deployment), the asset's feed (its price forms the stage-2 reads), the fee margin."""
        return dict(exchange_router=settings.gmx_exchange_router, reader=settings.gmx_reader,
                    deployment=settings.gmx_deployment, oracle=settings.oracle or None,
                    fee_margin_pct=settings.gmx_fee_margin_pct)

    def __init__(self, w3: Web3, market: str, collateral: str, *, two_step: bool = True,
                 unlimited_approval: bool = False, exchange_router: str | None = None, reader: str | None = None,
                 deployment: str | None = None, oracle: str | None = None, fee_margin_pct: int = 120) -> None:
        super().__init__(w3, market, collateral, two_step=True, unlimited_approval=unlimited_approval)
        self.deployment = deployment
        if deployment:
            book_router, book_reader = deployment_addresses(deployment)
            exchange_router, reader = exchange_router or book_router, reader or book_reader
        if not exchange_router or not reader:
            raise ConfigError("HEDGER_GMX_EXCHANGE_ROUTER", "GMX v2 needs its ExchangeRouter and Reader addresses",
                              "set HEDGER_GMX_DEPLOYMENT=arbitrum|avalanche, or HEDGER_GMX_EXCHANGE_ROUTER and "
                              "HEDGER_GMX_READER")
        if fee_margin_pct < 100:
            raise ConfigError("HEDGER_GMX_FEE_MARGIN", f"{fee_margin_pct / 100} is below 1.0",
                              "use at least 1.0 (GMX refuses an execution fee below its minimum), e.g. 1.2")
        self.exchange_router = Web3.to_checksum_address(exchange_router)
        self.reader = Web3.to_checksum_address(reader)
        self.oracle = Web3.to_checksum_address(oracle) if oracle else None
        self.fee_margin_pct = fee_margin_pct
        self._er = w3.eth.contract(address=self.exchange_router, abi=load_abi(EXCHANGE_ROUTER))
        self._reader = w3.eth.contract(address=self.reader, abi=load_abi(READER))
        self._token_c = w3.eth.contract(address=self.collateral, abi=load_abi(ERC20))

    # ------------------------------------------------------------------ fixed addresses (read once)
    @cached_property
    def addresses(self) -> dict[str, str]:
        er = self._er.functions
        try:
            out = {"dataStore": er.dataStore().call(), "router": er.router().call(),
                   "orderHandler": er.orderHandler().call(), "eventEmitter": er.eventEmitter().call(),
                   "roleStore": er.roleStore().call()}
            handler = self.w3.eth.contract(address=out["orderHandler"], abi=_VIEW_ABI).functions
            out["orderVault"] = handler.orderVault().call()
            out["referralStorage"] = handler.referralStorage().call()
        except Exception as err:
            # a wrong address, or an address book of another chain than the node's
            if self.deployment:
                where = (f"HEDGER_GMX_DEPLOYMENT={self.deployment}'s ExchangeRouter {self.exchange_router} does not "
                         f"answer on chain {self.w3.eth.chain_id}")
                fix = (f"point HEDGER_RPC_URL at a node of {self.deployment}, or set HEDGER_GMX_EXCHANGE_ROUTER "
                       "and HEDGER_GMX_READER to GMX's contracts on this chain")
            else:
                where = f"HEDGER_GMX_EXCHANGE_ROUTER {self.exchange_router} does not answer as GMX's ExchangeRouter"
                fix = "set HEDGER_GMX_EXCHANGE_ROUTER to GMX v2's ExchangeRouter on this chain"
            raise ChainGuardError(f"{where} ({type(err).__name__}). Fix: {fix}",
                                  address=self.exchange_router) from None
        return {k: Web3.to_checksum_address(v) for k, v in out.items()}

    @cached_property
    def tokens(self) -> dict[str, Any]:
        """The market's index, long and short tokens and their decimals (fixed for a market)."""
        # the tokens do not depend on the prices, but the view computes rates with them: prices of an
        # 18-decimal asset at $1 and a 6-decimal stablecoin at $1 keep its arithmetic in range
        prices = ((10**12, 10**12), (10**12, 10**12), (10**24, 10**24))
        data_store = self.addresses["dataStore"]
        try:
            info = self._reader.functions.getMarketInfo(data_store, prices, self.market).call()
        except Exception as err:
            raise ChainGuardError(
                f"the Reader {self.reader} (HEDGER_GMX_READER) cannot tell HEDGER_MARKET {self.market}'s market info "
                f"({type(err).__name__}). Fix: set HEDGER_GMX_READER to GMX v2's Reader on this chain, and "
                "HEDGER_MARKET to a GM market token of its DataStore", address=self.reader) from None
        market_token, index, long_t, short_t = info[0]
        if Web3.to_checksum_address(market_token) != self.market:
            raise ConfigError("HEDGER_MARKET", f"{self.market} is not a GMX v2 market of this DataStore",
                              "set HEDGER_MARKET to the GM market token (e.g. ETH/USD [WETH-USDC])")

        def decimals(t: str) -> int:
            return int(self.w3.eth.contract(address=Web3.to_checksum_address(t), abi=load_abi(ERC20))
                       .functions.decimals().call())

        return {"index": Web3.to_checksum_address(index), "long": Web3.to_checksum_address(long_t),
                "short": Web3.to_checksum_address(short_t), "index_decimals": decimals(index),
                "short_decimals": decimals(short_t)}

    @property
    def spender(self) -> str:
        """GMX's Router pulls the collateral (``sendTokens`` through the ExchangeRouter)."""
        return self.addresses["router"]

    # ------------------------------------------------------------------ reads
    def _keys(self) -> list[tuple[str, bytes]]:
        m = self.market
        t = self.tokens
        return [
            ("expiry", gi.REQUEST_EXPIRATION_TIME), ("min_collateral_usd", gi.MIN_COLLATERAL_USD),
            ("min_position_usd", MIN_POSITION_SIZE_USD), ("nonce", gi.NONCE),
            ("gas_increase", gi.INCREASE_ORDER_GAS_LIMIT), ("gas_decrease", gi.DECREASE_ORDER_GAS_LIMIT),
            ("gas_base", gi.ESTIMATED_GAS_FEE_BASE_AMOUNT), ("gas_per_price", gi.ESTIMATED_GAS_FEE_PER_ORACLE_PRICE),
            ("gas_multiplier", gi.ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR),
            ("fee_improved", gi.position_fee_factor_key(m, True)), ("fee_not", gi.position_fee_factor_key(m, False)),
            ("min_cf", gi.min_collateral_factor_key(m)), ("min_cf_liq", gi.min_collateral_factor_for_liquidation_key(m)),
            ("impact_pos", gi.position_impact_factor_key(m, True)), ("impact_neg", gi.position_impact_factor_key(m, False)),
            ("impact_exp_pos", gi.position_impact_exponent_factor_key(m, True)),
            ("impact_exp_neg", gi.position_impact_exponent_factor_key(m, False)),
            ("max_impact_pos", gi.max_position_impact_factor_key(m, True)),
            ("max_impact_neg", gi.max_position_impact_factor_key(m, False)),
            ("max_impact_liq", gi.max_position_impact_factor_for_liquidations_key(m)),
            ("impact_pool", gi.position_impact_pool_amount_key(m)),
            ("oi_long_l", gi.open_interest_key(m, t["long"], True)), ("oi_long_s", gi.open_interest_key(m, t["short"], True)),
            ("oi_short_l", gi.open_interest_key(m, t["long"], False)),
            ("oi_short_s", gi.open_interest_key(m, t["short"], False)),
            ("claim_divisor", gi.CLAIMABLE_COLLATERAL_TIME_DIVISOR),
        ]

    def read_specs(self, account: str) -> list[CallSpec]:
        if self.oracle is None:
            raise ConfigError("HEDGER_ORACLE", "the gmx-v2 adapter values orders at the hedger's price feed",
                              "set HEDGER_ORACLE to the asset's Chainlink feed")
        a, ds = self.addresses, self.addresses["dataStore"]
        specs = [CallSpec("g.oracle.round", self.oracle, AGGREGATOR_V3, "latestRoundData"),
                 CallSpec("g.oracle.decimals", self.oracle, AGGREGATOR_V3, "decimals")]
        specs += [CallSpec(f"g.ds.{name}", ds, DATA_STORE, "getUint", (key,)) for name, key in self._keys()]
        specs.append(CallSpec("g.ds.claimable_funding", ds, DATA_STORE, "getUint",
                              (gi.claimable_funding_amount_key(self.market, self.collateral, account),)))
        specs += [CallSpec("g.orders", self.reader, READER, "getAccountOrders", (ds, account, 0, 1000)),
                  CallSpec("g.positions", self.reader, READER, "getAccountPositions", (ds, account, 0, 1000)),
                  CallSpec("c.decimals", self.collateral, ERC20, "decimals"),
                  CallSpec("c.balance", self.collateral, ERC20, "balanceOf", (account,)),
                  CallSpec("c.allowance", self.collateral, ERC20, "allowance", (account, a["router"]))]
        return specs

    def _prices(self, stage1: dict[str, Any]) -> tuple[int, tuple[Any, ...]]:
        """(index price in GMX units, MarketPrices) from the oracle's answer: the long token priced as
        the index (GMX's ETH/USD [WETH-USDC] shape), the short token as a USD stablecoin."""
        _, answer, _, _, _ = stage1["g.oracle.round"]
        dec = int(stage1["g.oracle.decimals"])
        price_e18 = int(answer) * 10**18 // 10**dec
        p = max(price_e18 * 10**12 // 10**self.tokens["index_decimals"], 1)
        short = 10**30 // 10**self.tokens["short_decimals"]
        return p, ((p, p), (p, p), (short, short))

    def _our_positions(self, stage1: dict[str, Any], account: str) -> list[tuple[bytes, bool]]:
        out = []
        for pos in stage1["g.positions"]:
            addrs, numbers, flags = pos
            if (Web3.to_checksum_address(addrs[1]) == self.market and Web3.to_checksum_address(addrs[2]) == self.collateral
                    and int(numbers[0]) > 0):
                out.append((gi.position_key(account, self.market, self.collateral, bool(flags[0])), bool(flags[0])))
        return out

    @staticmethod
    def _time_keys(stage1: dict[str, Any]) -> range:
        """The time keys under which capped price impact may wait to be claimed: CLAIM_WINDOW back
        from the oracle's last update (the chain's time within the oracle's allowed age), 2 ahead."""
        div = max(int(stage1["g.ds.claim_divisor"]), 1)
        now = int(stage1["g.oracle.round"][3]) // div
        return range(max(now - CLAIM_WINDOW, 0), now + 3)

    def read_stage2(self, account: str, stage1: dict[str, Any]) -> list[CallSpec]:
        ds = self.addresses["dataStore"]
        _, prices = self._prices(stage1)
        specs = [CallSpec("g.marketInfo", self.reader, READER, "getMarketInfo", (ds, prices, self.market))]
        specs += [CallSpec(f"g.claim_coll.{tk}", ds, DATA_STORE, "getUint",
                           (gi.claimable_collateral_amount_key(self.market, self.collateral, tk, account),))
                  for tk in self._time_keys(stage1)]
        for key, is_long in self._our_positions(stage1, account):
            specs.append(CallSpec(f"g.positionInfo.{'long' if is_long else 'short'}", self.reader, READER,
                                  "getPositionInfo", (ds, self.addresses["referralStorage"], key, prices, 0, ZERO, True)))
        return specs

    def parse(self, r: dict[str, Any], account: str, chain: ChainView) -> tuple[GmxMarketState, AccountState]:
        u = {k[len("g.ds."):]: int(v) for k, v in r.items() if k.startswith("g.ds.")}
        claim_coll = tuple(sorted((int(k[len("g.claim_coll."):]), int(v)) for k, v in r.items()
                                  if k.startswith("g.claim_coll.") and int(v) > 0))
        index_price, _ = self._prices(r)
        dec = self.tokens["index_decimals"]
        price = _to_e18(index_price, dec)
        info = r["g.marketInfo"]
        infos = [(side, r[f"g.positionInfo.{side}"]) for side in ("short", "long") if f"g.positionInfo.{side}" in r]
        if len(infos) > 1:
            raise ConfigError("HEDGER_MARKET", f"{account} holds both a long and a short on {self.market} with this "
                              "collateral", "close one of them by hand: the hedger keeps one position per market")
        position, borrowing_usd, funding_amount = None, 0, 0
        size = 0
        margin = pnl = 0
        if infos:
            _, pi = infos[0]
            n, flags, fees = pi[1][1], pi[1][2], pi[2]
            position = Position(is_long=bool(flags[0]), size_in_usd=int(n[0]), size_in_tokens=int(n[1]),
                                collateral_amount=int(n[2]), pending_impact_amount=int(n[3]),
                                borrowing_factor=int(n[4]), funding_fee_amount_per_size=int(n[5]))
            borrowing_usd, funding_amount = int(fees[3][0]), int(fees[2][0])
            size = position.size_in_tokens * 10**18 // 10**dec * (1 if position.is_long else -1)
            pnl = int(pi[4]) // 10**12
        market = GmxMarketState(
            address=self.market, price=price, price_invalid=price <= 0, collateral_decimals=int(r["c.decimals"]),
            two_step=True, feed=self.oracle, index_decimals=dec,
            long_open_interest=u["oi_long_l"] + u["oi_long_s"], short_open_interest=u["oi_short_l"] + u["oi_short_s"],
            impact_pool_amount=u["impact_pool"],
            impact=ImpactParams(factor_positive=u["impact_pos"], factor_negative=u["impact_neg"],
                                exponent_positive=u["impact_exp_pos"], exponent_negative=u["impact_exp_neg"],
                                max_factor_positive=u["max_impact_pos"], max_factor_negative=u["max_impact_neg"],
                                max_factor_for_liquidations=u["max_impact_liq"]),
            position_fee_factor_improved=u["fee_improved"], position_fee_factor_not_improved=u["fee_not"],
            min_collateral_usd=u["min_collateral_usd"], min_collateral_factor=u["min_cf"],
            min_collateral_factor_for_liquidation=u["min_cf_liq"], min_position_size_usd=u["min_position_usd"],
            borrowing_factor_per_second_longs=int(info[1]), borrowing_factor_per_second_shorts=int(info[2]),
            longs_pay_shorts=bool(info[4][0]), funding_factor_per_second=int(info[4][1]),
            request_expiration_time=u["expiry"],
            execution_fee_increase=self._fee(u, gi.MARKET_INCREASE, 1),
            execution_fee_decrease=self._fee(u, gi.MARKET_DECREASE, 1),
            position=position, pending_borrowing_usd=borrowing_usd, pending_funding_amount=funding_amount,
            claimable_funding_amount=u["claimable_funding"], claimable_collateral=claim_coll, native_balance=chain.account_balance)
        self._params = u
        orders = tuple(self._order(key, o, size, dec, u["expiry"], chain.block_timestamp, position)
                       for key, o in r["g.orders"]
                       if Web3.to_checksum_address(o[0][5]) == self.market)
        if position is not None:
            from hedger.protocols.gmx_v2.model import GmxModel
            mdl = GmxModel(market, AccountState(address=account, size=size, margin=0, accessible_margin=0,
                                                liquidation_price=0, accrued_funding=0, pnl=0, orders=(),
                                                collateral_wallet=0, collateral_allowance=0), price, 10**18)
            pt = mdl.after(0, 0)
            margin, liq, accessible = pt.margin, pt.liquidation_price, mdl.collateral_usd(mdl.max_withdrawal())
        else:
            liq = accessible = 0
        acct = AccountState(address=account, size=size, margin=margin, accessible_margin=accessible,
                            liquidation_price=liq, accrued_funding=-funding_amount * 10**(18 - int(r["c.decimals"])),
                            pnl=pnl, orders=orders, collateral_wallet=int(r["c.balance"]),
                            collateral_allowance=int(r["c.allowance"]))
        return market, acct

    @staticmethod
    def order_size(size_delta_usd: int, acceptable_price: int, index_decimals: int, sign: int) -> int:
        """An order's size (E18 asset units, signed) as the hedger books it: its USD size at its
        acceptable price, so the journal's record and the venue's list agree exactly."""
        if size_delta_usd == 0 or acceptable_price in (0, MAX_UINT):
            return 0
        return sign * (size_delta_usd * 10**18 // acceptable_price // 10**index_decimals)

    @staticmethod
    def decrease_size(size_delta_usd: int, pos: Position, index_decimals: int, sign: int) -> int:
        """A decrease's size (E18 asset units, signed) as GMX will close it: the position's
        sizeInTokens x sizeDeltaUsd / sizeInUsd (DecreasePositionUtils), so the journal's record and
        the venue's list agree exactly."""
        if size_delta_usd == 0 or pos.size_in_usd == 0:
            return 0
        return sign * (size_delta_usd * pos.size_in_tokens // pos.size_in_usd * 10**18 // 10**index_decimals)

    def _order(self, key: bytes, o: Any, size: int, dec: int, expiry: int, now: int,
               pos: Position | None = None) -> Order:
        numbers, flags = o[1], o[2]
        otype, usd, coll, accept, updated = int(numbers[0]), int(numbers[2]), int(numbers[3]), int(numbers[5]), int(numbers[9])
        is_long, frozen = bool(flags[0]), bool(flags[2])
        increase = otype in (gi.MARKET_INCREASE, gi.LIMIT_INCREASE)
        sign = (1 if is_long else -1) * (1 if increase else -1)
        if usd == 0:
            kind = OrderKind.COLLATERAL_IN if increase else OrderKind.COLLATERAL_OUT
        else:
            kind = OrderKind.INCREASE if increase else OrderKind.DECREASE
        expires = updated + expiry
        state = OrderState.FROZEN if frozen else OrderState.EXPIRED if now > expires else OrderState.PENDING
        booked = self.decrease_size(usd, pos, dec, sign) if not increase and pos is not None and pos.size_in_tokens \
            else self.order_size(usd, accept, dec, sign)
        return Order(key=Web3.to_hex(key), kind=kind, size_delta=booked,
                     collateral_delta=coll if increase else -coll,
                     acceptable_price=0 if accept == MAX_UINT else _to_e18(accept, dec), submitted_at=updated,
                     executable_at=updated + 1, expires_at=expires, state=state)

    # ------------------------------------------------------------------ orders
    def _fee(self, u: dict[str, int], order_type: int, gas_price: int) -> int:
        fee = gi.min_execution_fee(order_type=order_type, gas_price=gas_price, increase_gas_limit=u["gas_increase"],
                                   decrease_gas_limit=u["gas_decrease"], base_amount=u["gas_base"],
                                   per_oracle_price=u["gas_per_price"], multiplier_factor=u["gas_multiplier"])
        return fee * self.fee_margin_pct // 100

    @staticmethod
    def execution_fee(market: GmxMarketState, order_type: int, gas_price: int) -> int:
        """GMX's minimum execution fee at ``gas_price`` with the configured margin (wei)."""
        per_gas = market.execution_fee_increase if order_type == gi.MARKET_INCREASE else market.execution_fee_decrease
        return per_gas * gas_price

    def _call(self, contract: Any, name: str, fn: str, args: tuple[Any, ...], action: ActionKind, risk_reducing: bool,
              note: str, notional_usd: int = 0, *, value: int = 0, leg: str = "main", amount: int = 0,
              creates_order: bool = False, order_key: str = "") -> Call:
        data = contract.get_function_by_name(fn)(*args)._encode_transaction_data()
        return Call(to=contract.address, contract=name, function=fn, args=args, data=data, action=action,
                    risk_reducing=risk_reducing, note=note, notional_usd=notional_usd, value=value, leg=leg,
                    amount=amount, creates_order=creates_order, order_key=order_key)

    def _approve(self, account: AccountState, amount: int, act: Action) -> list[Call]:
        if amount <= 0 or account.collateral_allowance >= amount:
            return []
        calls = []
        if account.collateral_allowance != 0:
            calls.append(self._call(self._token_c, "collateral", "approve", (self.spender, 0), act.kind, act.risk_reducing,
                                    "reset the leftover allowance to zero first (USDT-style tokens)", leg="approve"))
        bound = MAX_UINT if self.unlimited_approval else amount
        calls.append(self._call(self._token_c, "collateral", "approve", (self.spender, bound), act.kind,
                                act.risk_reducing, "approve exactly the collateral the order sends to GMX's Router",
                                leg="approve"))
        return calls

    def _order_call(self, act: Action, market: GmxMarketState, *, is_long: bool, increase: bool, size_usd: int,
                    collateral: int, acceptable: int, note: str, amount: int, gas_price: int) -> Call:
        a = self.addresses
        otype = gi.MARKET_INCREASE if increase else gi.MARKET_DECREASE
        fee = self.execution_fee(market, otype, gas_price)
        params = ((self._receiver, ZERO, ZERO, ZERO, self.market, self.collateral, []),
                  (size_usd, collateral, 0, acceptable, fee, 0, 0, 0),
                  otype, 0, is_long, False, False, b"\x00" * 32, [])
        er = self._er.functions
        inner = [er.sendWnt(a["orderVault"], fee)._encode_transaction_data()]
        if increase and collateral > 0:
            inner.append(er.sendTokens(self.collateral, a["orderVault"], collateral)._encode_transaction_data())
        inner.append(er.createOrder(params)._encode_transaction_data())
        data = [bytes.fromhex(c[2:]) for c in inner]
        scale = 10 ** (18 - market.collateral_decimals)
        notional = size_usd // 10**12 if size_usd else collateral * scale
        return self._call(self._er, "exchangeRouter", "multicall", (data,), act.kind, act.risk_reducing, note,
                          notional, value=fee, amount=amount, creates_order=True)

    def _claim_calls(self, act: Action, market: GmxMarketState) -> list[Call]:
        """``claimFundingFees`` of the funding received and ``claimCollateral`` of the capped impact
        by time key, each paid to the account (``amount``: the collateral units claimed)."""
        calls = []
        er, m, c, me = self._er, self.market, self.collateral, self._receiver
        if market.claimable_funding_amount > 0:
            calls.append(self._call(er, "exchangeRouter", "claimFundingFees", ([m], [c], me), act.kind, False,
                                    act.note or "claim funding received", leg="claim_funding",
                                    amount=market.claimable_funding_amount))
        if market.claimable_collateral:
            keys = [k for k, _ in market.claimable_collateral]
            calls.append(self._call(er, "exchangeRouter", "claimCollateral", ([m] * len(keys), [c] * len(keys), keys, me),
                                    act.kind, False, act.note or "claim capped price impact", leg="claim_collateral",
                                    amount=sum(a for _, a in market.claimable_collateral)))
        return calls

    def build_calls(self, actions: tuple[Action, ...], account: AccountState, market: MarketState) -> list[Call]:
        return [c for i, cs in self._plan(actions, account, market) for c in cs]

    def plan_calls(self, actions: tuple[Action, ...], account: AccountState, market: MarketState) -> list[Call]:
        from dataclasses import replace
        return [replace(c, action_index=i) for i, cs in self._plan(actions, account, market) for c in cs]

    def _plan(self, actions: tuple[Action, ...], account: AccountState,
              market: MarketState) -> list[tuple[int, list[Call]]]:
        """Calls per action. A deposit planned with a trade that grows the position rides in that
        trade's order (its approval stays the deposit's leg)."""
        assert isinstance(market, GmxMarketState), "the gmx-v2 adapter plans on its own market reading"
        self._receiver = Web3.to_checksum_address(account.address)
        gas_price = int(self.w3.eth.gas_price)
        dec = market.index_decimals
        index_price = market.price * 10**12 // 10**dec
        size = account.size
        growing = [i for i, a in enumerate(actions) if a.kind is ActionKind.TRADE
                   and (size == 0 or (size > 0) == (a.amount > 0))]
        riding = {i: next(iter(growing)) for i, a in enumerate(actions) if a.kind is ActionKind.DEPOSIT and growing}
        carried = {t: sum(actions[d].amount for d, tt in riding.items() if tt == t) for t in growing}
        out: list[tuple[int, list[Call]]] = []
        for i, act in enumerate(actions):
            calls: list[Call] = []
            if act.kind is ActionKind.DEPOSIT:
                calls += self._approve(account, act.amount, act)
                if i not in riding:
                    is_long = size > 0
                    calls.append(self._order_call(act, market, is_long=is_long, increase=True, size_usd=0,
                                                  collateral=act.amount, acceptable=MAX_UINT if is_long else 0,
                                                  note=act.note or "collateral in: a MarketIncrease of size 0",
                                                  amount=act.amount, gas_price=gas_price))
            elif act.kind is ActionKind.WITHDRAW:
                is_long = size > 0
                calls.append(self._order_call(act, market, is_long=is_long, increase=False, size_usd=0,
                                              collateral=act.amount, acceptable=0 if is_long else MAX_UINT,
                                              note=act.note or "collateral out: a MarketDecrease of size 0",
                                              amount=-act.amount, gas_price=gas_price))
            elif act.kind is ActionKind.TRADE:
                increase = i in carried
                is_long = act.amount > 0 if increase else size > 0
                tokens = abs(act.amount) * 10**dec // 10**18
                size_usd = tokens * index_price
                pos = market.position
                decrease_of = pos if not increase and pos is not None and pos.size_in_tokens > 0 else None
                if decrease_of is not None:
                    # GMX closes sizeInTokens x sizeDeltaUsd / sizeInUsd (DecreasePositionUtils): a
                    # decrease is sized in the position's own USD (its entry value), not at the price;
                    # rounded up so that it closes at least the tokens asked
                    size_usd = -(-tokens * decrease_of.size_in_usd // decrease_of.size_in_tokens)
                    if abs(act.amount) >= abs(size):
                        size_usd = decrease_of.size_in_usd    # a close: exactly the position's size, no dust
                bound = act.price_bound * 10**12 // 10**dec
                # a long's increase and a short's decrease buy: they execute at or below the bound
                buys = is_long == increase
                acceptable = (bound if bound > 0 else MAX_UINT) if buys else bound
                collateral = carried.get(i, 0)
                sign = (1 if is_long else -1) * (1 if increase else -1)
                amount = (self.decrease_size(size_usd, decrease_of, dec, sign) if decrease_of is not None
                          else self.order_size(size_usd, acceptable, dec, sign)) or act.amount
                calls.append(self._order_call(act, market, is_long=is_long, increase=increase, size_usd=size_usd,
                                              collateral=collateral, acceptable=acceptable,
                                              note=act.note, amount=amount, gas_price=gas_price))
            elif act.kind is ActionKind.CLAIM:
                calls += self._claim_calls(act, market)
            elif act.kind is ActionKind.CANCEL_ORDER:
                key = bytes.fromhex(act.order_key.removeprefix("0x"))
                calls.append(self._call(self._er, "exchangeRouter", "cancelOrder", (key,), act.kind, act.risk_reducing,
                                        act.note or "cancel our expired order", order_key=act.order_key))
            out.append((i, calls))
        return out

    # ------------------------------------------------------------------ fills and fees
    def _events(self, receipt: dict[str, Any]) -> list[tuple[str, dict[str, dict[str, Any]]]]:
        from web3.logs import DISCARD
        ee = self.w3.eth.contract(address=self.addresses["eventEmitter"], abi=load_abi(EVENT_EMITTER))
        out = []
        for kind in ("EventLog1", "EventLog2"):
            for log in ee.events[kind]().process_receipt(receipt, errors=DISCARD):
                if log["address"] == self.addresses["eventEmitter"]:
                    out.append((log["args"]["eventName"], gi.event_items(log["args"]["eventData"])))
        return out

    def order_fill(self, account: str, order_key: str, size_delta: int, from_block: int, to_block: int) -> Fill | None:
        """The keeper's transaction that executed ``order_key``: found by its ``OrderExecuted``
        (EventLog2, topic1 = the key); the fill price is ``PositionIncrease/Decrease.executionPrice``
        and the fees ``PositionFeesCollected.totalCostAmount`` (position fee, borrowing, funding)
        at the collateral price GMX used, for that order key."""
        if not order_key:
            return None
        key = bytes.fromhex(order_key.removeprefix("0x"))
        ee = self.w3.eth.contract(address=self.addresses["eventEmitter"], abi=load_abi(EVENT_EMITTER))
        logs = ee.events.EventLog2().get_logs(from_block=from_block, to_block=to_block,
                                              argument_filters={"topic1": key})
        for log in logs:
            if log["args"]["eventName"] != "OrderExecuted":
                continue
            receipt = self.w3.eth.get_transaction_receipt(log["transactionHash"])
            price, fee, size = 0, 0, None
            for name, items in self._events(receipt):
                if items.get("bytes32Items", {}).get("orderKey") != key:
                    continue
                if name in ("PositionIncrease", "PositionDecrease"):
                    price = _to_e18(int(items["uintItems"]["executionPrice"]), self.tokens["index_decimals"])
                    # sizeDeltaInTokens, in the index token's decimals: what this order added or removed
                    tokens = int(items["uintItems"]["sizeDeltaInTokens"]) * 10 ** (18 - self.tokens["index_decimals"])
                    grows = (name == "PositionIncrease") == bool(items["boolItems"]["isLong"])
                    size = (size or 0) + (tokens if grows else -tokens)
                elif name == "PositionFeesCollected":
                    u = items["uintItems"]
                    fee = int(u["totalCostAmount"]) * int(u["collateralTokenPrice.min"]) // 10**12
            return Fill(price=price, fee=fee, tx_hash=Web3.to_hex(log["transactionHash"]),
                        block_number=int(log["blockNumber"]), size_delta=size)
        return None

    def fill_costs(self, receipt: dict[str, Any], account: str) -> tuple[int, int] | None:
        """What a keeper's transaction charged ``account`` (E18 USD, as paid): the position fee,
        and apart from it the borrowing and funding it settled (``PositionFeesCollected``'s
        ``positionFeeAmount`` and ``borrowingFeeAmount + fundingFeeAmount``, at the collateral
        price GMX used). None when the transaction charged the account nothing."""
        account = Web3.to_checksum_address(account)
        fee = carry = 0
        found = False
        for name, items in self._events(receipt):
            if name != "PositionFeesCollected" or \
                    Web3.to_checksum_address(str(items["addressItems"]["trader"])) != account:
                continue
            u = items["uintItems"]
            price = int(u["collateralTokenPrice.min"])
            fee += int(u["positionFeeAmount"]) * price // 10**12
            carry += (int(u["borrowingFeeAmount"]) + int(u["fundingFeeAmount"])) * price // 10**12
            found = True
        return (fee, carry) if found else None

    def created_order_key(self, tx_hash: str) -> str | None:
        """The key ``OrderCreated`` names in our multicall's receipt (GMX derives it from NONCE at
        creation, so it is known only once mined)."""
        receipt = self.w3.eth.get_transaction_receipt(tx_hash)
        for name, items in self._events(dict(receipt)):
            if name == "OrderCreated" and Web3.to_checksum_address(str(items["addressItems"]["account"])) == \
                    Web3.to_checksum_address(receipt["from"]):
                return Web3.to_hex(items["bytes32Items"]["key"])  # type: ignore[arg-type]
        return None

    def trade_fee(self, receipt: dict[str, Any], account: str) -> int | None:
        """None: our own transactions only create or cancel orders; GMX charges its fees in the
        keeper's transaction (read by :meth:`order_fill`)."""
        return None

    def interface_check(self) -> tuple[bool, str]:
        a = self.addresses
        roles = self.w3.eth.contract(address=a["roleStore"], abi=_ROLE_ABI).functions
        controller = roles.hasRole(self.exchange_router, gi.CONTROLLER).call()
        t = self.tokens
        ok = controller and self.collateral in (t["short"], t["long"])
        detail = (f"ExchangeRouter {self.exchange_router} {'holds' if controller else 'LACKS'} GMX's CONTROLLER role "
                  f"(a redeployed router stops working); market {self.market} index {t['index']}, long {t['long']}, "
                  f"short {t['short']}" + ("" if self.collateral in (t["short"], t["long"])
                                           else f"; collateral {self.collateral} is neither of its tokens"))
        return ok, detail

    def fill_order_call(self, account: str) -> Call | None:
        """The stand-in's keeper: ``GmxOrderHandler.executeOrder`` of the account's oldest order in
        this market at the oracle's price (tests and the simulator; GMX's own keepers sign prices)."""
        if self.oracle is None:
            return None
        ds = self.addresses["dataStore"]
        orders = [(k, o) for k, o in self._reader.functions.getAccountOrders(ds, account, 0, 1000).call()
                  if Web3.to_checksum_address(o[0][5]) == self.market]
        if not orders:
            return None
        feed = self.w3.eth.contract(address=self.oracle, abi=load_abi(AGGREGATOR_V3)).functions
        _, answer, _, _, _ = feed.latestRoundData().call()
        price = int(answer) * 10**18 // 10**int(feed.decimals().call()) * 10**12 // 10**self.tokens["index_decimals"]
        short = 10**30 // 10**self.tokens["short_decimals"]
        handler = self.w3.eth.contract(address=self.addresses["orderHandler"],
                                       abi=contract_artifact("GmxOrderHandler")["abi"])
        key = orders[0][0]
        return self._call(handler, "orderHandler", "executeOrder", (key, price, price, short, short),
                          ActionKind.TRADE, False, "the stand-in's keeper executes a due order",
                          order_key=Web3.to_hex(key))
