"""Adapter for the Aave v3 borrow-and-sell short (``HEDGER_PROTOCOL=aave-v3``).

``HEDGER_MARKET`` is Aave's ``PoolAddressesProvider``. Stage 1 reads the pool, the data provider
and the oracle from it (and what needs no address from them: the wallet's balances, the router's
allowances, which router it is); stage 2 the two reserves, the oracle's prices, the account's
supply, debt, health factor, e-mode and configuration bitmap, and the pool's allowances.

Actions become legs (separate transactions, journaled under their action):

* deposit: approve(pool) -> ``Pool.supply``; withdraw: ``Pool.withdraw``;
* grow the short by ``s``: ``Pool.borrow`` (of what the wallet's unsold asset does not cover) ->
  approve(router) -> ``exactInputSingle`` (minimum out from the action's oracle-based bound, never a
  pool quote; deadline from the latest block's time) -> approve(pool) -> ``Pool.supply`` of the
  minimum out (a better fill leaves collateral in the wallet, which the next plan deposits);
* reduce by ``b``: ``Pool.withdraw`` (the maximum in, from the bound) -> approve(router) ->
  ``exactOutputSingle`` -> approve(pool) -> ``Pool.repay`` (of ``b`` and the wallet's unsold asset).

The swap's leg is the action's ``main`` leg (its notional is the trade's). ``resume`` finishes a
short whose borrow was mined and a reduce whose withdrawal was mined: never borrowing again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import Web3

from hedger.chain.abi import ERC20, load_abi
from hedger.chain.reader import CallSpec
from hedger.core.model import INFINITE
from hedger.core.types import (UNIT, AccountState, Action, ActionKind, Call, ChainView, JournaledAction, MarketState,
                               Resume)
from hedger.protocols.aave_v3.model import AaveAccountState, AaveMarketState, AaveModel
from hedger.protocols.base import PerpAdapter, register

PROVIDER = "aave-v3/PoolAddressesProvider"
POOL = "aave-v3/Pool"
DATA_PROVIDER = "aave-v3/AaveProtocolDataProvider"
ORACLE = "aave-v3/AaveOracle"
ROUTER = "aave-v3/SwapRouter"        # v3-periphery: 8-field structs with a deadline
ROUTER02 = "aave-v3/SwapRouter02"    # swap-router-contracts: 7 fields, no deadline
VARIABLE = 2                         # Aave's interest rate mode: variable
DEADLINE_S = 600                     # a swap's deadline after the latest block read
MAX_UINT = 2**256 - 1


@dataclass(frozen=True, kw_only=True)
class AaveVenueState(AaveMarketState):
    """The model's market state plus what the adapter needs to form calls."""

    pool: str = ""
    asset: str = ""
    router02: bool = False
    block_timestamp: int = 0
    debt_index: int = 0               # the asset's normalized variable debt index now (ray): `hedger report`'s
    supply_index: int = 0             # interest paid, and the collateral's normalized income (ray): interest earned


@dataclass(frozen=True, kw_only=True)
class AaveVenueAccount(AaveAccountState):
    """The model's account plus the allowances the legs spend (native units)."""

    asset_router_allowance: int = 0
    asset_pool_allowance: int = 0
    collateral_router_allowance: int = 0
    scaled_debt: int = 0              # the debt divided by the debt index (what the index's growth charges)


def _e18(amount: int, decimals: int) -> int:
    return amount * 10 ** (18 - decimals)


def _native(e18: int, decimals: int, round_up: bool = False) -> int:
    q = 10 ** (18 - decimals)
    return -(-e18 // q) if round_up else e18 // q


@register("aave-v3")
class AaveV3(PerpAdapter):
    order_modes = ("direct",)        # borrow, swap, supply: synchronous, no order a keeper fills

    def __init__(self, w3: Web3, market: str, collateral: str, *, two_step: bool, unlimited_approval: bool = False,
                 asset: str = "", swap_router: str = "", swap_fee: int = 500, account: str = "",
                 max_slippage: int = UNIT // 200, oracle_max_age: int = 3600) -> None:
        super().__init__(w3, market, collateral, two_step=two_step, unlimited_approval=unlimited_approval)
        self.asset = Web3.to_checksum_address(asset) if asset else ""
        self.router = Web3.to_checksum_address(swap_router) if swap_router else ""
        self.swap_fee = swap_fee
        self.account = Web3.to_checksum_address(account) if account else ""   # resume reads its wallet
        self.max_slippage = max_slippage           # resume's bound on a finishing swap (HEDGER_MAX_SLIPPAGE)
        self.oracle_max_age = oracle_max_age       # and the feed's age it accepts (HEDGER_ORACLE_MAX_AGE)
        self._pool = ""
        self._fixed: dict[str, Any] = {}

    @classmethod
    def venue_options(cls, settings: Any, account: str) -> dict[str, Any]:
        return {"asset": settings.spot_token, "swap_router": settings.swap_router or "", "swap_fee": settings.swap_fee,
                "account": account, "max_slippage": settings.policy.max_slippage,
                "oracle_max_age": settings.policy.oracle_max_age_s}

    @property
    def spender(self) -> str:
        """Aave's Pool pulls the collateral on supply (the provider names it: read once)."""
        if not self._pool:
            self._pool = Web3.to_checksum_address(self._c(self.market, PROVIDER).functions.getPool().call())
        return self._pool

    # ------------------------------------------------------------------ reads
    def read_specs(self, account: str) -> list[CallSpec]:
        m, a = self.market, account
        return [CallSpec("m.pool", m, PROVIDER, "getPool"),
                CallSpec("m.dataProvider", m, PROVIDER, "getPoolDataProvider"),
                CallSpec("m.oracle", m, PROVIDER, "getPriceOracle"),
                # SwapRouter02 answers factoryV2(); the v3-periphery SwapRouter has no such function
                CallSpec("m.router02", self.router, ROUTER02, "factoryV2", optional=True),
                CallSpec("c.decimals", self.collateral, ERC20, "decimals"),
                CallSpec("c.balance", self.collateral, ERC20, "balanceOf", (a,)),
                CallSpec("c.routerAllowance", self.collateral, ERC20, "allowance", (a, self.router)),
                CallSpec("a.assetDecimals", self.asset, ERC20, "decimals"),
                CallSpec("a.assetWallet", self.asset, ERC20, "balanceOf", (a,)),
                CallSpec("a.assetRouterAllowance", self.asset, ERC20, "allowance", (a, self.router))]

    def _tokens(self, dp: str) -> dict[str, Any]:
        """The reserves' aToken addresses: fixed for a reserve's life, read once per adapter (the
        latest block's number is asked then only, not every cycle)."""
        if not self._fixed:
            block = self.w3.eth.block_number
            c = self.w3.eth.contract(address=dp, abi=load_abi(DATA_PROVIDER)).functions
            self._fixed = {"aAsset": c.getReserveTokensAddresses(self.asset).call(block_identifier=block)[0],
                           "aCollateral": c.getReserveTokensAddresses(self.collateral).call(block_identifier=block)[0]}
        return self._fixed

    def read_stage2(self, account: str, stage1: dict[str, Any]) -> list[CallSpec]:
        pool = self._pool = Web3.to_checksum_address(stage1["m.pool"])
        dp = Web3.to_checksum_address(stage1["m.dataProvider"])
        oracle = Web3.to_checksum_address(stage1["m.oracle"])
        fixed = self._tokens(dp)
        a_asset, a_collateral = (Web3.to_checksum_address(fixed[k]) for k in ("aAsset", "aCollateral"))
        specs = []
        for tag, token in (("x", self.asset), ("k", self.collateral)):
            specs += [CallSpec(f"{tag}.reserve", pool, POOL, "getReserveData", (token,)),
                      CallSpec(f"{tag}.config", dp, DATA_PROVIDER, "getReserveConfigurationData", (token,)),
                      CallSpec(f"{tag}.data", dp, DATA_PROVIDER, "getReserveData", (token,)),
                      CallSpec(f"{tag}.caps", dp, DATA_PROVIDER, "getReserveCaps", (token,)),
                      CallSpec(f"{tag}.paused", dp, DATA_PROVIDER, "getPaused", (token,)),
                      CallSpec(f"{tag}.user", dp, DATA_PROVIDER, "getUserReserveData", (token, account)),
                      CallSpec(f"{tag}.price", oracle, ORACLE, "getAssetPrice", (token,))]
        return specs + [
            CallSpec("o.unit", oracle, ORACLE, "BASE_CURRENCY_UNIT"),
            CallSpec("o.source", oracle, ORACLE, "getSourceOfAsset", (self.asset,)),
            CallSpec("x.debtIndex", pool, POOL, "getReserveNormalizedVariableDebt", (self.asset,)),
            CallSpec("k.income", pool, POOL, "getReserveNormalizedIncome", (self.collateral,)),
            CallSpec("u.account", pool, POOL, "getUserAccountData", (account,)),
            CallSpec("u.emode", pool, POOL, "getUserEMode", (account,)),
            CallSpec("u.config", pool, POOL, "getUserConfiguration", (account,)),
            CallSpec("x.available", self.asset, ERC20, "balanceOf", (a_asset,)),
            CallSpec("k.available", self.collateral, ERC20, "balanceOf", (a_collateral,)),
            CallSpec("k.poolAllowance", self.collateral, ERC20, "allowance", (account, pool)),
            CallSpec("x.poolAllowance", self.asset, ERC20, "allowance", (account, pool))]

    def parse(self, r: dict[str, Any], account: str, chain: ChainView) -> tuple[AaveVenueState, AaveVenueAccount]:
        unit = int(r["o.unit"])
        conf_x, conf_k = r["x.config"], r["k.config"]
        data_x, data_k = r["x.data"], r["k.data"]
        dec_x, dec_k = int(conf_x[0]), int(conf_k[0])
        borrow_cap, supply_cap = int(r["x.caps"][0]), int(r["k.caps"][1])
        total_debt_x = int(data_x[3]) + int(data_x[4])
        source = r["o.source"]
        market = AaveVenueState(
            address=self.market, price=int(r["x.price"]) * UNIT // unit, price_invalid=int(r["x.price"]) <= 0,
            collateral_decimals=dec_k, two_step=False,
            feed=Web3.to_checksum_address(source) if int(source, 16) else None,
            asset_decimals=dec_x, collateral_price=int(r["k.price"]) * UNIT // unit,
            liquidation_threshold_bps=int(conf_k[2]), ltv_bps=int(conf_k[1]),
            borrow_rate_ray=int(data_x[6]), supply_rate_ray=int(data_k[5]), asset_available=int(r["x.available"]),
            borrow_cap_room=None if borrow_cap == 0 else max(0, borrow_cap * 10**dec_x - total_debt_x),
            supply_cap_room=None if supply_cap == 0 else max(0, supply_cap * 10**dec_k - int(data_k[2])),
            collateral_available=int(r["k.available"]),
            borrowing_enabled=bool(conf_x[6]), asset_frozen=bool(conf_x[9]), asset_paused=bool(r["x.paused"]),
            collateral_frozen=bool(conf_k[9]), collateral_paused=bool(r["k.paused"]), swap_fee_ppm=self.swap_fee,
            pool=self._pool, asset=self.asset, router02=r.get("m.router02") is not None,
            block_timestamp=chain.block_timestamp, debt_index=int(r["x.debtIndex"]), supply_index=int(r["k.income"]))
        self._collateral_value = (market.collateral_price, dec_k)
        supplied, debt = int(r["k.user"][0]), int(r["x.user"][2])
        hf = int(r["u.account"][5])
        wallet = int(r["a.assetWallet"])
        # the configuration bitmap: bit 2*id borrows reserve id, bit 2*id+1 uses it as collateral
        bits = int(r["u.config"][0])
        allowed = (1 << (2 * int(r["x.reserve"][7]))) | (1 << (2 * int(r["k.reserve"][7]) + 1))
        others = bits & ~allowed
        other = "" if others == 0 else f"configuration bits {others:#x} beyond borrowing the asset and " \
                                       "supplying the collateral"
        # the wallet's asset offsets the debt up to the debt (beyond it: dust a full repay left)
        base = AaveVenueAccount(address=account, size=-(_e18(debt, dec_x) - _e18(min(wallet, debt), dec_x)), margin=0,
                                accessible_margin=0, liquidation_price=0, accrued_funding=0, pnl=0, orders=(),
                                collateral_wallet=int(r["c.balance"]), collateral_allowance=int(r["k.poolAllowance"]),
                                supplied=supplied, debt=debt, health_factor=INFINITE if hf >= 2**255 else hf,
                                asset_wallet=wallet, e_mode=int(r["u.emode"]), other_reserves=other,
                                asset_router_allowance=int(r["a.assetRouterAllowance"]),
                                asset_pool_allowance=int(r["x.poolAllowance"]),
                                collateral_router_allowance=int(r["c.routerAllowance"]),
                                scaled_debt=int(r["x.user"][4]))
        mdl = AaveModel(market=market, account=base)
        pt = mdl.after(0, 0)
        from dataclasses import replace
        acct = replace(base, margin=pt.margin, liquidation_price=pt.liquidation_price,
                       accessible_margin=mdl.collateral_usd(mdl.max_withdrawal()))
        return market, acct

    # ------------------------------------------------------------------ calls
    def _c(self, address: str, abi: str) -> Any:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_abi(abi))

    def _call(self, address: str, abi: str, name: str, fn: str, args: tuple[Any, ...], act: Action, leg: str,
              note: str, amount: int = 0, notional: int = 0) -> Call:
        data = self._c(address, abi).get_function_by_name(fn)(*args)._encode_transaction_data()
        return Call(to=Web3.to_checksum_address(address), contract=name, function=fn, args=args, data=data,
                    action=act.kind, risk_reducing=act.risk_reducing, note=note, notional_usd=notional, leg=leg,
                    amount=amount)

    def _approve(self, token: str, name: str, spender: str, have: int, need: int, act: Action) -> list[Call]:
        """Approvals bounded to ``need`` (unless HEDGER_UNLIMITED_APPROVAL); a leftover non-zero
        allowance is cleared first (USDT-style tokens refuse to change it to another non-zero)."""
        if need <= 0 or have >= need:
            return []
        calls = []
        if have != 0:
            calls.append(self._call(token, ERC20, name, "approve", (spender, 0), act, "approve",
                                    "clear the leftover allowance first"))
        amount = MAX_UINT if self.unlimited_approval else need
        calls.append(self._call(token, ERC20, name, "approve", (spender, amount), act, "approve",
                                f"approve {'unlimited (configured)' if self.unlimited_approval else 'exactly ' + str(need)}"))
        return calls

    def _swap(self, m: AaveVenueState, act: Action, exact_in: bool, token_in: str, token_out: str, recipient: str,
              amount: int, bound: int, notional: int) -> Call:
        """``exactInputSingle`` (amount in, minimum out ``bound``) or ``exactOutputSingle`` (amount
        out, maximum in ``bound``) on the configured router, in its struct shape."""
        fn = "exactInputSingle" if exact_in else "exactOutputSingle"
        if m.router02:
            params: tuple[Any, ...] = (token_in, token_out, self.swap_fee, recipient, amount, bound, 0)
        else:
            params = (token_in, token_out, self.swap_fee, recipient, m.block_timestamp + DEADLINE_S, amount, bound, 0)
        return self._call(self.router, ROUTER02 if m.router02 else ROUTER, "router", fn, (params,), act, "main",
                          act.note or fn, act.amount, notional)

    def short_legs(self, m: AaveVenueState, a: AaveVenueAccount, act: Action, sell: int, borrow: int,
                   min_out: int) -> list[Call]:
        """Borrow ``borrow`` (native), sell ``sell`` for at least ``min_out``, supply ``min_out``."""
        me, calls = a.address, []
        if borrow > 0:
            calls.append(self._call(m.pool, POOL, "pool", "borrow", (m.asset, borrow, VARIABLE, 0, me), act,
                                    "borrow", f"borrow {borrow} of the asset (variable rate)", borrow))
        calls += self._approve(m.asset, "asset", self.router, a.asset_router_allowance, sell, act)
        calls.append(self._swap(m, act, True, m.asset, self.collateral, me, sell, min_out,
                                _e18(sell, m.asset_decimals) * m.price // UNIT))
        calls += self._approve(self.collateral, "collateral", m.pool, a.collateral_allowance, min_out, act)
        calls.append(self._call(m.pool, POOL, "pool", "supply", (self.collateral, min_out, me, 0), act, "supply",
                                "supply the sale's minimum proceeds as collateral", min_out))
        return calls

    @staticmethod
    def _interest_headroom(m: AaveVenueState, debt: int) -> int:
        """An hour of the variable rate on ``debt`` (native, rounded up), plus one unit."""
        return -(-debt * m.borrow_rate_ray * 3600 // (10**27 * 365 * 86400)) + 1

    def reduce_legs(self, m: AaveVenueState, a: AaveVenueAccount, act: Action, buy: int, max_in: int, repay: int,
                    withdraw: int) -> list[Call]:
        """Withdraw ``withdraw`` collateral, buy exactly ``buy`` of the asset for at most ``max_in``,
        repay ``repay``."""
        me, calls = a.address, []
        if withdraw > 0:
            calls.append(self._call(m.pool, POOL, "pool", "withdraw", (self.collateral, withdraw, me), act,
                                    "withdraw", "withdraw the buy-back's maximum cost", -withdraw))
        if buy > 0:
            calls += self._approve(self.collateral, "collateral", self.router, a.collateral_router_allowance, max_in,
                                   act)
            calls.append(self._swap(m, act, False, self.collateral, m.asset, me, buy, max_in,
                                    _e18(buy, m.asset_decimals) * m.price // UNIT))
        if repay > 0:
            # repaying all (type(uint256).max) pulls at most what was bought and what the wallet held
            need = buy + a.asset_wallet if repay == MAX_UINT else repay
            calls += self._approve(m.asset, "asset", m.pool, a.asset_pool_allowance, need, act)
            calls.append(self._call(m.pool, POOL, "pool", "repay", (m.asset, repay, VARIABLE, me), act, "repay",
                                    "repay all the debt, interest included" if repay == MAX_UINT else
                                    "repay the debt with the asset bought back", need))
        return calls

    def _usd_to_collateral(self, m: AaveVenueState, usd: int, round_up: bool) -> int:
        num, den = usd * 10**m.collateral_decimals, m.collateral_price
        return -(-num // den) if round_up else num // den

    def build_calls(self, actions: tuple[Action, ...], account: AccountState, market: MarketState) -> list[Call]:
        assert isinstance(market, AaveVenueState) and isinstance(account, AaveVenueAccount), \
            "aave-v3 builds calls from its own reading"
        m, a, calls = market, account, []
        wallet = a.collateral_wallet        # the wallet's collateral as the plan's earlier legs leave it
        for act in actions:
            if act.kind is ActionKind.DEPOSIT:
                wallet = max(0, wallet - act.amount)
                calls += self._approve(self.collateral, "collateral", m.pool, a.collateral_allowance, act.amount, act)
                calls.append(self._call(m.pool, POOL, "pool", "supply", (self.collateral, act.amount, a.address, 0),
                                        act, "main", act.note or "supply collateral", act.amount,
                                        m.collateral_price * act.amount // 10**m.collateral_decimals))
            elif act.kind is ActionKind.WITHDRAW:
                # all of it, once nothing is owed: type(uint256).max takes the aToken balance as mined
                # (it grows every second), so no dust of supply interest is left behind
                amount = MAX_UINT if a.debt == 0 and act.amount >= a.supplied > 0 else act.amount
                calls.append(self._call(m.pool, POOL, "pool", "withdraw", (self.collateral, amount, a.address),
                                        act, "main", act.note or "withdraw collateral", -act.amount,
                                        m.collateral_price * act.amount // 10**m.collateral_decimals))
            elif act.kind is ActionKind.TRADE and act.amount < 0:
                sell = _native(-act.amount, m.asset_decimals)
                borrow = max(0, sell - a.asset_wallet)
                # the bound: the worst fill the plan accepts, in collateral at Aave's price of it
                min_out = self._usd_to_collateral(m, _e18(sell, m.asset_decimals) * act.price_bound // UNIT, True)
                calls += self.short_legs(m, a, act, sell, borrow, min_out)
            elif act.kind is ActionKind.TRADE and act.amount > 0:
                buy = _native(act.amount, m.asset_decimals, round_up=True)
                repay = min(a.debt, buy + a.asset_wallet)
                if a.debt > 0 and buy + a.asset_wallet >= a.debt:
                    # closing the short: the debt grows every second until the repay is mined, so
                    # buy an hour's interest more and repay with type(uint256).max (all the debt
                    # then); what is left of the headroom stays in the wallet as dust
                    buy = a.debt + self._interest_headroom(m, a.debt) - a.asset_wallet
                    repay = MAX_UINT
                max_in = self._usd_to_collateral(m, _e18(buy, m.asset_decimals) * act.price_bound // UNIT, False)
                # the wallet's collateral pays first: a withdrawal lowers the health factor, and near
                # liquidation the pool refuses it exactly when the hedge must shrink
                calls += self.reduce_legs(m, a, act, buy, max_in, repay, max(0, max_in - wallet))
                wallet = max(0, wallet - max_in)
            elif act.kind is ActionKind.CANCEL_ORDER:
                raise ValueError("aave-v3 has no orders to cancel")
        return calls

    # ------------------------------------------------------------------ settling part-done actions
    def resume(self, action: JournaledAction) -> Resume:
        """A short whose borrow was mined but not its sale is finished: the wallet's unsold asset is
        sold (bounded by Aave's oracle price net of the pool fee and 1%) and the proceeds supplied,
        never borrowed again; one whose sale was mined but not its supply has its proceeds supplied.
        A reduce whose withdrawal was mined is finished: the buy-back and the repay; one whose
        buy-back was mined, the repay. Anything else leaves nothing loose: re-planned."""
        mined = {lg.leg for lg in action.legs if lg.state == "mined"}
        if action.kind is not ActionKind.TRADE or not (mined & {"borrow", "withdraw", "main"}):
            return super().resume(action)
        if not self.account:
            return Resume("replan", "the adapter does not know the account to finish for")
        m, a = self._read_now(self.account)
        stale = self._stale_feed(m)
        if stale:
            # the position counts the unsold asset, and a plan sells what the wallet holds before it
            # borrows: leaving it to the next plan (whose guards refuse a stale feed) borrows nothing
            return Resume("replan", f"{stale}: no swap is bounded by it; the next plan (its guards first) sells "
                                    "the wallet's asset before borrowing any")
        if action.amount < 0:
            if "supply" in mined:
                return super().resume(action)
            if "main" in mined:
                got = a.collateral_wallet
                act = Action(ActionKind.TRADE, action.amount, risk_reducing=False, note="finish: supply the proceeds")
                if got == 0:
                    return Resume("replan", "its sale was mined and the wallet holds no proceeds to supply")
                calls = self._approve(self.collateral, "collateral", m.pool, a.collateral_allowance, got, act) + [
                    self._call(m.pool, POOL, "pool", "supply", (self.collateral, got, a.address, 0), act, "supply",
                               "finish: supply the sale's proceeds", got)]
                return Resume("finish", f"its sale was mined, not its supply: supplying the {got} proceeds",
                              tuple(calls))
            sell = a.asset_wallet
            if sell == 0:
                return Resume("replan", "its borrow was mined and the wallet holds none of the asset now")
            bound = -(-m.price * (10**6 - self.swap_fee) // 10**6 * (UNIT - self.max_slippage) // UNIT)
            min_out = self._usd_to_collateral(m, _e18(sell, m.asset_decimals) * bound // UNIT, True)
            act = Action(ActionKind.TRADE, -_e18(sell, m.asset_decimals), price_bound=bound,
                         note="finish: sell the borrowed asset")
            calls = self.short_legs(m, a, act, sell, 0, min_out)
            return Resume("finish", f"its borrow was mined, not its sale: selling the wallet's {sell} of the asset "
                                    f"for at least {min_out} and supplying that (never borrowing again)", tuple(calls))
        # a reduce
        act = Action(ActionKind.TRADE, action.amount, risk_reducing=True, note="finish the buy-back")
        if "repay" in mined:
            return super().resume(action)
        repay = min(a.debt, a.asset_wallet)
        if "main" in mined:
            if repay == 0:
                return Resume("replan", "its buy-back was mined and there is nothing left to repay")
            return Resume("finish", f"its buy-back was mined, not its repay: repaying {repay}",
                          tuple(self.reduce_legs(m, a, act, 0, 0, repay, 0)))
        buy = _native(action.amount, m.asset_decimals, round_up=True)
        bound = -(-m.price * 10**6 // (10**6 - self.swap_fee)) * (UNIT + self.max_slippage) // UNIT
        max_in = min(a.collateral_wallet, self._usd_to_collateral(m, _e18(buy, m.asset_decimals) * bound // UNIT,
                                                                  False))
        repay = min(a.debt, buy + a.asset_wallet)
        return Resume("finish", f"its withdrawal was mined, not its buy-back: buying {buy} of the asset for at most "
                                f"{max_in} and repaying {repay}", tuple(self.reduce_legs(m, a, act, buy, max_in,
                                                                                         repay, 0)))

    def _stale_feed(self, m: AaveVenueState) -> str | None:
        """Aave's oracle checks no age: the asset's source feed is read here before a finishing swap
        is bounded by its price (the cycle's guards have not run yet)."""
        if not m.feed:
            return "Aave's oracle names no feed for the asset"
        feed = self.w3.eth.contract(address=m.feed, abi=load_abi("AggregatorV3Interface")).functions
        _rid, answer, _started, updated, _ans = feed.latestRoundData().call()
        age = m.block_timestamp - int(updated)
        if int(answer) <= 0 or age > self.oracle_max_age:
            return f"the asset's feed {m.feed} is stale or invalid (answer {answer}, {age}s old)"
        return None

    def _read_now(self, account: str) -> tuple[AaveVenueState, AaveVenueAccount]:
        from hedger.chain.reader import ChainReader
        r = ChainReader(self.w3)
        head = r.head()
        res = r.call_many(self.read_specs(account), head.block_number)
        res = {**res, **r.call_many(self.read_stage2(account, res), head.block_number)}
        return self.parse(res, account, head)

    def trade_fee(self, receipt: dict[str, Any], account: str) -> int | None:
        """The pool's fee on a swap leg of ``account`` (E18 USD, the collateral at Aave's price as last
        read): a sale's proceeds are net of it (fee = out x f / (1 - f)), a buy-back pays it on what
        goes in (fee = in x f); from the collateral token's Transfer events. None without a swap."""
        from web3.logs import DISCARD
        if not any(Web3.to_checksum_address(log["address"]) == self.router for log in receipt.get("logs", [])) \
                and Web3.to_checksum_address(receipt.get("to") or "0x" + "00" * 20) != self.router:
            return None
        token = self._c(self.collateral, ERC20)
        me = Web3.to_checksum_address(account)
        got = paid = 0
        for ev in token.events.Transfer().process_receipt(receipt, errors=DISCARD):
            if Web3.to_checksum_address(ev["address"]) != self.collateral:
                continue
            if ev["args"]["to"] == me:
                got += int(ev["args"]["value"])
            elif ev["args"]["from"] == me:
                paid += int(ev["args"]["value"])
        if got == 0 and paid == 0:
            return None
        f, ppm = self.swap_fee, 10**6
        native = got * f // (ppm - f) if got else paid * f // ppm
        price, decimals = self._collateral_value
        return native * price // 10**decimals

    _collateral_value: tuple[int, int] = (UNIT, 6)   # (Aave's E18 USD price of the collateral, its decimals)

    def interface_check(self) -> tuple[bool, str]:
        p = self._c(self.market, PROVIDER).functions
        pool = Web3.to_checksum_address(p.getPool().call())
        rev = int(self._c(pool, POOL).functions.POOL_REVISION().call())
        dp = self._c(p.getPoolDataProvider().call(), DATA_PROVIDER).functions
        conf_k = dp.getReserveConfigurationData(self.collateral).call()
        conf_x = dp.getReserveConfigurationData(self.asset).call()
        ok = bool(conf_k[8]) and bool(conf_x[8]) and bool(conf_x[6]) and int(conf_k[2]) > 0
        return ok, (f"Aave pool {pool} revision {rev}; collateral {self.collateral} active={bool(conf_k[8])} "
                    f"frozen={bool(conf_k[9])} LT {int(conf_k[2]) / 100:g}%; asset {self.asset} active="
                    f"{bool(conf_x[8])} borrowing={'on' if conf_x[6] else 'off'} frozen={bool(conf_x[9])}")

    def liquidation_log_filter(self, account: str, from_block: int, to_block: int) -> dict[str, Any] | None:
        """The pool's ``LiquidationCall`` events of ``account`` (its third indexed topic) between the
        blocks. The pool's address when this adapter already read it; a fresh adapter (the first
        read of `hedger run-once`) asks by the topics alone, asking nothing more of the chain, and
        :meth:`liquidations_from_logs` keeps the pool's own events (an Aave v2 pool or a fork on
        the same chain emits the same event)."""
        if to_block < from_block:
            return None
        user_topic = "0x" + "00" * 12 + Web3.to_checksum_address(account)[2:].lower()
        query: dict[str, Any] = {"fromBlock": hex(from_block), "toBlock": hex(to_block),
                                 "topics": [self._liquidation_event().topic, None, None, user_topic]}
        if self._pool:
            query["address"] = self._pool
        return query

    def liquidations_from_logs(self, logs: list[dict[str, Any]]) -> list[str]:
        """Who repaid how much of the debt and took how much collateral (native units), in which
        transaction, for each of the pool's ``LiquidationCall`` events in ``logs`` (raw JSON-RPC
        logs, or as web3 formats them)."""
        return [f"liquidated: {ev['liquidator']} repaid {ev['debtToCover']} of the debt ({ev['debtAsset']}) and took "
                f"{ev['liquidatedCollateralAmount']} of the collateral ({ev['collateralAsset']}) in tx {tx} (block "
                f"{block}); the next plan re-hedges what is left"
                for ev, tx, block in self.events_in(self._liquidation_event(), self.spender, logs)]

    def liquidations(self, account: str, from_block: int, to_block: int) -> list[str]:
        """As the base's, the pool's address read first (once): its own query names the pool."""
        _ = self.spender
        return super().liquidations(account, from_block, to_block)

    def _liquidation_event(self) -> Any:
        return self._c(self._pool or self.market, POOL).events.LiquidationCall()

    def venue_checks(self, account: str, holder: str) -> list[tuple[str, bool, str, str]]:
        """The pool's revision (this adapter uses only views and calls unchanged since 3.0), each
        reserve active, not frozen, not paused (and borrowing on for the asset), the account outside
        e-mode and using no other reserve, the router's kind, and the signer not the holder."""
        p = self._c(self.market, PROVIDER).functions
        pool = Web3.to_checksum_address(p.getPool().call())
        rev = int(self._c(pool, POOL).functions.POOL_REVISION().call())
        dp = self._c(p.getPoolDataProvider().call(), DATA_PROVIDER).functions
        out = [("aave pool revision", True, f"Aave pool {pool} revision {rev} (views and calls used: those of 3.0)",
                "")]
        for label, token in (("asset", self.asset), ("collateral", self.collateral)):
            conf = dp.getReserveConfigurationData(token).call()
            paused = bool(dp.getPaused(token).call())
            active, frozen = bool(conf[8]), bool(conf[9])
            borrowing = bool(conf[6]) if label == "asset" else True
            ok = active and not frozen and not paused and borrowing
            out.append((f"aave {label} reserve", ok,
                        f"{token} active={active} frozen={frozen} paused={paused}"
                        + (f" borrowing={'on' if conf[6] else 'off'}" if label == "asset" else ""),
                        "the reserve must be active, not frozen, not paused"
                        + (", with borrowing on" if label == "asset" else "") + ": wait for Aave's governance, or "
                        "hedge on another venue"))
        m, a = self._read_now(account)
        mdl = AaveModel(market=m, account=a)
        refusal = mdl.account_refusal()
        out.append(("aave account", refusal is None,
                    f"{account} e-mode {a.e_mode}, "
                    + ("no reserve beyond the hedge's two" if not a.other_reserves else a.other_reserves),
                    refusal or ""))
        out.append(("swap router", True, f"{self.router} is a "
                    + ("SwapRouter02 (no deadline in the struct)" if m.router02 else
                       "v3-periphery SwapRouter (deadline in the struct)"), ""))
        same = Web3.to_checksum_address(holder) == Web3.to_checksum_address(account)
        out.append(("signer vs holder", not same, f"signer {account}, HEDGER_HOLDER {holder}",
                    "set HEDGER_HOLDER to the address that holds the asset, and sign from another key: an unsold "
                    "borrow must never count as the holder's exposure"))
        return out

    def fill_order_call(self, account: str) -> Call | None:
        return None
