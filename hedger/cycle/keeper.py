"""One hedge cycle: read -> decide -> plan -> execute -> journal, with its guards.

This is the code that production (`hedger run-once`, `ape run hedge`), the
demo and the simulator all run.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from web3 import Web3

from hedger.decide import guards, planner, policy
from hedger.chain.abi import ERC20, POSITION_MANAGER, UNISWAP_V3_FACTORY, UNISWAP_V3_POOL
from hedger.config import Settings
from hedger.core.secrets import RPC_FIX, redact_urls
from hedger.core.errors import (ActionTooLarge, ChainGuardError, ConfigError, ExecutionError, GasHeld, GasTooHigh,
                           HedgerError, PartialExecution, RpcError, SimulationFailed, StuckTransaction)
from hedger.chain.executor import Executor, Signer, TxSender, check_caps
from hedger.state.journal import Journal
from hedger.state.lock import AccountLock
from hedger.chain.oracle import feed_specs, parse_feed
from hedger.protocols import PerpAdapter, get_adapter
from hedger.protocols.uniswap_v3 import math as uniswap
from hedger.chain.reader import CallFailed, CallSpec, ChainReader
from hedger.core.types import (UNIT, Call, ChainView, CollateralStatus, CollateralToken, CycleResult, DailyBudget,
                               Decision, DecisionKind, Exposure, Fill, JournaledAction, MarketState, PolicyParams,
                               RefusalKind, Resume, Snapshot)

log = logging.getLogger("hedger.cycle.keeper")

REFUSAL_EXIT = {RefusalKind.ORACLE: 3, RefusalKind.SEQUENCER: 4, RefusalKind.CHAIN: 5, RefusalKind.ACCOUNT: 9}


EXPECTED = {   # what each address setting must point at, for messages
    "HEDGER_ORACLE": "an AggregatorV3 price feed",
    "HEDGER_SECOND_ORACLE": "an AggregatorV3 price feed or, as univ3:<pool>, a Uniswap v3 pool",
    "HEDGER_SEQUENCER_FEED": "a sequencer-uptime feed",
    "HEDGER_LP_POSITIONS": "<NonfungiblePositionManager>:<tokenId> of a position that exists",
    "HEDGER_SPOT_TOKEN": "an ERC20 token", "HEDGER_COLLATERAL_TOKEN": "the ERC20 token the market takes",
    "HEDGER_COLLATERAL_FEED": "an AggregatorV3 feed of the collateral token's USD price",
}

FIAT_TOKEN = "FiatToken"   # optional views of USDC-like tokens: paused(), isBlacklisted(address)


def make_web3(rpc_url: str, timeout: float = 20.0) -> Web3:
    """web3's own silent retries are off: reads are retried by the reader (counted, bounded),
    and a send is never repeated blindly (its hash is watched instead)."""
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout},
                                  exception_retry_configuration=None))


@dataclass
class Keeper:
    settings: Settings
    w3: Web3
    signer: Signer | None
    adapter: PerpAdapter
    reader: ChainReader
    journal: Journal | None
    account: str
    _sender: TxSender | None = None
    _twap_meta: tuple[int, int, bool] | None = None
    _lp_meta: list[tuple[str, int, int, bool]] | None = None
    # the adapters of the account's other markets (a multi-market keeper's reconciliation is
    # account-wide: an unfinished action is settled by the venue of the market it was on)
    peers: dict[str, PerpAdapter] = field(default_factory=dict)
    # the liquidation notes of the latest read (the venue's records found in its batch)
    last_liquidations: list[str] = field(default_factory=list)

    @classmethod
    def from_settings(cls, settings: Settings, *, w3: Web3 | None = None, signer: Signer | None = None,
                      journal: Journal | None = None, use_journal: bool = True) -> "Keeper":
        w3 = w3 or make_web3(settings.rpc_url, settings.rpc_timeout)
        signer = signer if signer is not None else settings.build_signer()
        account = settings.account
        if signer is not None:
            if account is not None and Web3.to_checksum_address(account) != signer.address:
                raise ConfigError("HEDGER_ACCOUNT", f"{account} is not the signer's address {signer.address}",
                                  "unset HEDGER_ACCOUNT or set it to the signer's address")
            account = signer.address
        if account is None:
            raise ConfigError("HEDGER_ACCOUNT", "no account to hedge", "set HEDGER_ACCOUNT or a signer")
        venue = get_adapter(settings.protocol)
        adapter = venue(w3, settings.market, settings.collateral_token, two_step=settings.order_mode == "delayed",
                        unlimited_approval=settings.unlimited_approval,
                        **venue.venue_options(settings, Web3.to_checksum_address(account)))
        if journal is None and use_journal:
            journal = Journal(settings.journal_path)
        return cls(settings=settings, w3=w3, signer=signer, adapter=adapter,
                   reader=ChainReader(w3, multicall=settings.multicall),
                   journal=journal, account=Web3.to_checksum_address(account))

    # ------------------------------------------------------------------ read
    def _specs(self) -> list[CallSpec]:
        s = self.settings
        specs = feed_specs("oracle", s.oracle)
        if s.sequencer_feed:
            specs += feed_specs("sequencer", s.sequencer_feed)
        if s.second_oracle:
            specs += feed_specs("second", s.second_oracle)
        if s.collateral_feed:
            specs += feed_specs("cfeed", s.collateral_feed)
        if s.second_twap:
            t = s.second_twap
            # optional: a window older than the pool's oldest observation reverts ("OLD")
            specs.append(CallSpec("twap.observe", t.pool, UNISWAP_V3_POOL, "observe", ((t.seconds, 0),),
                                  optional=True))
        for i, (pos, meta) in enumerate(zip(s.lp_positions, self._lp_positions())):
            pool = meta[0]
            specs += [CallSpec(f"lp{i}.position", pos.manager, POSITION_MANAGER, "positions", (pos.token_id,)),
                      CallSpec(f"lp{i}.slot0", pool, UNISWAP_V3_POOL, "slot0"),
                      CallSpec(f"lp{i}.growth0", pool, UNISWAP_V3_POOL, "feeGrowthGlobal0X128"),
                      CallSpec(f"lp{i}.growth1", pool, UNISWAP_V3_POOL, "feeGrowthGlobal1X128"),
                      CallSpec(f"lp{i}.lower", pool, UNISWAP_V3_POOL, "ticks", (meta[1],)),
                      CallSpec(f"lp{i}.upper", pool, UNISWAP_V3_POOL, "ticks", (meta[2],))]
        specs += [CallSpec("spot.balance", s.spot_token, ERC20, "balanceOf", (self.holder,)),
                  CallSpec("spot.decimals", s.spot_token, ERC20, "decimals"),
                  CallSpec("c.paused", s.collateral_token, FIAT_TOKEN, "paused", optional=True),
                  CallSpec("c.blacklisted", s.collateral_token, FIAT_TOKEN, "isBlacklisted", (self.account,),
                           optional=True),
                  CallSpec("c.marketBlacklisted", s.collateral_token, FIAT_TOKEN, "isBlacklisted",
                           (self.adapter.market,), optional=True)]
        return specs + self.adapter.read_specs(self.account)

    def stage2_specs(self, stage1: dict[str, Any]) -> list[CallSpec]:
        """The adapter's second-stage calls, formed from the answers to :meth:`_specs` (keyed as
        there); a key that repeats a stage-1 key is the adapter's error (it would hide an answer)."""
        specs = self.adapter.read_stage2(self.account, stage1)
        clash = sorted({spec.key for spec in specs} & stage1.keys())
        if clash:
            raise ValueError(f"adapter {self.adapter.name!r}: stage-2 keys {clash} repeat stage-1 keys")
        return specs

    def read(self) -> Snapshot:
        """The chain head, then every view call of stage 1 pinned to that block, then the adapter's
        second stage (if it has one) at the same block: two round trips, three with a second stage.
        With a journal, the venue's records of this account liquidated since the journal's last
        reading ride in stage 1's batch; their notes are left in :attr:`last_liquidations`."""
        snapshot, self.last_liquidations = self._read(liquidations=self.journal is not None)
        return snapshot

    def _read(self, liquidations: bool = False) -> tuple[Snapshot, list[str]]:
        """:meth:`read`; with ``liquidations``, also the venue's records of this account liquidated
        since the journal's last reading of this market, asked in stage 1's batch (no round trip
        of its own), as the cycle's notes."""
        try:
            head = self.reader.head(self.account)
        except RpcError as err:
            raise RpcError(f"cannot read the chain at {self.settings.rpc_display}: {err}. Fix: {RPC_FIX}") from err
        if self.settings.chain_id is not None and head.chain_id != self.settings.chain_id:
            raise ChainGuardError(f"the RPC at {self.settings.rpc_display} reports chain id {head.chain_id}, "
                                  f"HEDGER_CHAIN_ID is {self.settings.chain_id}: refusing to act on the wrong chain")
        query = self._liquidation_query(head) if liquidations else None
        try:
            r, logs = self.reader.call_many_with(self._specs(), head.block_number,
                                                 [("eth_getLogs", [query])] if query else [])
            stage2 = self.stage2_specs(r)
            if stage2:
                r = {**r, **self.reader.call_many(stage2, head.block_number)}
        except CallFailed as err:
            var = self.setting_of(err.spec.address, err.spec.key)
            expected = (f"a `{self.settings.protocol}` perp market (HEDGER_PROTOCOL)" if var == "HEDGER_MARKET"
                        else EXPECTED[var])
            raise ChainGuardError(f"{var}: {err}. Fix: check that {var} is the right address, {expected} "
                                  f"(`hedger check` tests every configured address)",
                                  address=err.spec.address, variable=var) from err
        snapshot = self.snapshot_from(r, head)
        return snapshot, (self._liquidation_notes(query, logs[0]) if query else [])

    def _liquidation_query(self, head: ChainView) -> dict[str, Any] | None:
        """The venue's log filter of this account's liquidations from the block after the journal's
        last reading of this market to the head's (asks nothing of the chain); None without a
        journal, before the first reading, or when the venue has nothing to ask."""
        if self.journal is None:
            return None
        last = self.journal.last_reading(head.chain_id, head.genesis_hash, self.account, self.adapter.market)
        if last is None:
            return None
        return self.adapter.liquidation_log_filter(self.account, last[0] + 1, head.block_number)

    def _liquidation_notes(self, query: dict[str, Any], answer: dict[str, Any]) -> list[str]:
        """The venue's lines for the logs the read's batch returned. A refused query (a node's
        limit on logs, say) loses nothing else of the read: it becomes a note instead (those
        blocks are not asked again; the journal's position check still notes a position the
        venue changed)."""
        logs = answer.get("result")
        if "error" in answer or not isinstance(logs, list):
            err = answer.get("error")
            why = err.get("message", err) if isinstance(err, dict) else "no list of logs in the answer"
            return [f"the venue's liquidation records of blocks {int(query['fromBlock'], 16)} to "
                    f"{int(query['toBlock'], 16)} could not be read ({redact_urls(str(why))[:200]}): they are not "
                    "asked again; a position changed by no order of ours is still noted"]
        return self.adapter.liquidations_from_logs(logs)

    def setting_of(self, address: str, key: str | None = None) -> str:
        """The setting that configured ``address`` (for messages that name the variable to fix); the
        failing read's ``key`` (as in :meth:`_specs`) decides when two settings hold one address."""
        s = self.settings
        by_key = {"oracle": "HEDGER_ORACLE", "sequencer": "HEDGER_SEQUENCER_FEED", "second": "HEDGER_SECOND_ORACLE",
                  "twap": "HEDGER_SECOND_ORACLE", **{f"lp{i}": "HEDGER_LP_POSITIONS"
                                                     for i in range(len(s.lp_positions))},
                  "spot": "HEDGER_SPOT_TOKEN", "c": "HEDGER_COLLATERAL_TOKEN", "cfeed": "HEDGER_COLLATERAL_FEED",
                  "m": "HEDGER_MARKET",
                  "a": "HEDGER_MARKET"}
        if key is not None and key.split(".", 1)[0] in by_key:
            return by_key[key.split(".", 1)[0]]
        a = Web3.to_checksum_address(address)
        for var, value in (("HEDGER_MARKET", self.adapter.market), ("HEDGER_ORACLE", s.oracle),
                           ("HEDGER_SECOND_ORACLE", s.second_oracle), ("HEDGER_SEQUENCER_FEED", s.sequencer_feed),
                           ("HEDGER_SPOT_TOKEN", s.spot_token), ("HEDGER_COLLATERAL_TOKEN", s.collateral_token),
                           ("HEDGER_COLLATERAL_FEED", s.collateral_feed)):
            if value and Web3.to_checksum_address(value) == a:
                return var
        return "HEDGER_MARKET"   # not configured: an address the market itself pointed at

    def snapshot_from(self, r: dict[str, Any], head: ChainView) -> Snapshot:
        """The snapshot from the answers to :meth:`_specs` (keyed as there), read at ``head``."""
        s = self.settings
        oracle = parse_feed("oracle", s.oracle, r)
        seq = parse_feed("sequencer", s.sequencer_feed, r) if s.sequencer_feed else None
        market, account = self.adapter.parse(r, self.account, head)
        exposure = Exposure(spot_balance=int(r["spot.balance"]), spot_decimals=int(r["spot.decimals"]),
                            extra=s.extra_exposure, lp=self._lp_exposure(r))
        last = None
        if self.journal is not None:
            last = self.journal.last_action_at(head.chain_id, head.genesis_hash, self.account, market.address)
        ref_price, ref_source, ref_problem = self._second_source(r, market, head)
        status = CollateralStatus(paused=_opt_bool(r.get("c.paused")), account_blacklisted=_opt_bool(
            r.get("c.blacklisted")), market_blacklisted=_opt_bool(r.get("c.marketBlacklisted")))
        # a collateral that is not a USD stablecoin is valued by its feed (guarded as the oracle is)
        cfeed = parse_feed("cfeed", s.collateral_feed, r) if s.collateral_feed else None
        return Snapshot(chain=head, oracle=oracle, sequencer=seq, market=market, account=account,
                        exposure=exposure, last_rebalance_at=last, reference_price=ref_price,
                        reference_source=ref_source, reference_problem=ref_problem, collateral_status=status,
                        venue=self.adapter.name, collateral_price=cfeed.price_e18 if cfeed else UNIT,
                        collateral_feed=cfeed)

    def _second_source(self, r: dict[str, Any], market: MarketState,
                       head: ChainView) -> tuple[int | None, str, str | None]:
        """An independent price: a second configured feed, else the market's own price when the
        market reads a different feed than the hedger. (price, source, problem)."""
        s = self.settings
        if s.second_oracle:
            second = parse_feed("second", s.second_oracle, r)
            source = f"second feed {s.second_oracle}"
            refused = guards.feed_problem(second, head.block_timestamp, s.policy.oracle_max_age_s)
            if refused is not None:
                return None, source, refused
            return second.price_e18, source, None
        if s.second_twap:
            return self._twap_price(r)
        if market.feed and market.feed != Web3.to_checksum_address(s.oracle):
            source = f"market feed {market.feed}"
            if market.price_invalid:
                return None, source, "the market reports its price invalid"
            return market.price, source, None
        return None, "none", None

    def _twap_price(self, r: dict[str, Any]) -> tuple[int | None, str, str | None]:
        """The pool's mean price over the window, in its other token (a USD stablecoin: the price
        is taken as USD), from the tick cumulatives read with the cycle."""
        t = self.settings.second_twap
        assert t is not None
        source = f"Uniswap v3 TWAP of {t.pool} over {t.seconds}s"
        dec0, dec1, asset_is_token0 = self._twap_tokens()
        observed = r.get("twap.observe")
        if observed is None:
            return None, source, (f"the pool's observations do not reach {t.seconds}s back (observe reverted): raise "
                                  f"them with increaseObservationCardinalityNext on {t.pool} and wait for the window "
                                  "to fill, or shorten it (HEDGER_SECOND_ORACLE=univ3:POOL:SECONDS)")
        tick = uniswap.mean_tick([int(c) for c in observed[0]], t.seconds)
        return uniswap.price_e18_at_tick(tick, dec0, dec1, asset_is_token0), source, None

    def _twap_tokens(self) -> tuple[int, int, bool]:
        """(token0's decimals, token1's decimals, whether the hedged asset is token0) of the TWAP
        pool: immutable, read once per keeper. The asset is the pool's token that is
        HEDGER_SPOT_TOKEN; a pool without it is a configuration error."""
        if self._twap_meta is None:
            t = self.settings.second_twap
            assert t is not None
            head = self.reader.head()
            tokens = self._fixed_facts([CallSpec("token0", t.pool, UNISWAP_V3_POOL, "token0"),
                                        CallSpec("token1", t.pool, UNISWAP_V3_POOL, "token1")], head,
                                       "HEDGER_SECOND_ORACLE")
            t0, t1 = (Web3.to_checksum_address(tokens[k]) for k in ("token0", "token1"))
            spot = Web3.to_checksum_address(self.settings.spot_token)
            if spot not in (t0, t1):
                raise ConfigError("HEDGER_SECOND_ORACLE", f"the pool {t.pool} trades {t0} and {t1}, not the hedged "
                                  f"asset {spot} (HEDGER_SPOT_TOKEN)", "name a Uniswap v3 pool of the hedged asset "
                                  "against a USD stablecoin")
            dec = self._fixed_facts([CallSpec("d0", t0, ERC20, "decimals"), CallSpec("d1", t1, ERC20, "decimals")],
                                    head, "HEDGER_SECOND_ORACLE")
            self._twap_meta = (int(dec["d0"]), int(dec["d1"]), spot == t0)
        return self._twap_meta

    def collateral_token(self) -> CollateralToken:
        """The collateral as a token with a value (decimals, symbol when readable, price source,
        spender), read at the latest block (for `hedger check`)."""
        s = self.settings
        head = self.reader.head()
        r = self._fixed_facts([CallSpec("decimals", s.collateral_token, ERC20, "decimals")], head,
                              "HEDGER_COLLATERAL_TOKEN")
        try:   # symbol() is optional in ERC-20, and some tokens answer a bytes32
            symbol = self.reader.call_many([CallSpec("symbol", s.collateral_token, ERC20, "symbol", optional=True)],
                                           head.block_number)["symbol"] or ""
        except ChainGuardError:
            symbol = ""
        return self.adapter.collateral_token(int(r["decimals"]), str(symbol), s.collateral_feed)

    @property
    def holder(self) -> str:
        """Whose spot balance is the exposure: HEDGER_HOLDER (a treasury), else the hedged account."""
        return Web3.to_checksum_address(self.settings.holder or self.account)

    def _lp_positions(self) -> list[tuple[str, int, int, bool]]:
        """(pool, tick lower, tick upper, whether the asset is token0) of each HEDGER_LP_POSITIONS
        entry: fixed for a position's life, read once per keeper. A position that does not hold
        the hedged asset is a configuration error."""
        if self._lp_meta is None:
            s = self.settings
            meta: list[tuple[str, int, int, bool]] = []
            if s.lp_positions:
                head = self.reader.head()
                r = self._fixed_facts(
                    [c for i, p in enumerate(s.lp_positions)
                     for c in (CallSpec(f"{i}.position", p.manager, POSITION_MANAGER, "positions", (p.token_id,)),
                               CallSpec(f"{i}.factory", p.manager, POSITION_MANAGER, "factory"))], head,
                    "HEDGER_LP_POSITIONS")
                spot = Web3.to_checksum_address(s.spot_token)
                pools = []
                for i, p in enumerate(s.lp_positions):
                    token0, token1, fee, lower, upper = r[f"{i}.position"][2:7]
                    t0, t1 = Web3.to_checksum_address(token0), Web3.to_checksum_address(token1)
                    if spot not in (t0, t1):
                        raise ConfigError("HEDGER_LP_POSITIONS", f"position {p.token_id} of {p.manager} holds {t0} and "
                                          f"{t1}, not the hedged asset {spot} (HEDGER_SPOT_TOKEN)",
                                          "list only positions of the hedged asset")
                    pools.append(CallSpec(f"{i}.pool", r[f"{i}.factory"], UNISWAP_V3_FACTORY, "getPool",
                                          (t0, t1, int(fee))))
                    meta.append(("", int(lower), int(upper), spot == t0))
                got = self._fixed_facts(pools, head, "HEDGER_LP_POSITIONS")
                meta = [(Web3.to_checksum_address(got[f"{i}.pool"]), *m[1:]) for i, m in enumerate(meta)]
            self._lp_meta = meta
        return self._lp_meta

    def _fixed_facts(self, specs: list[CallSpec], head: ChainView, var: str) -> dict[str, Any]:
        """Reads of what never changes for a configured pool or position, once per keeper; a
        failing one names the setting that pointed at it."""
        try:
            return self.reader.call_many(specs, head.block_number)
        except CallFailed as err:
            raise ChainGuardError(f"{var}: {err}. Fix: check that {var} is right: {EXPECTED[var]}",
                                  address=err.spec.address, variable=var) from err

    def _lp_exposure(self, r: dict[str, Any]) -> int:
        """The asset HEDGER_LP_POSITIONS hold at this block (principal and owed fees, native units):
        what a static decreaseLiquidity + collect of each would pay in the asset."""
        total = 0
        for i, (_pool, lower, upper, asset_is_token0) in enumerate(self._lp_positions()):
            pos, slot0 = r[f"lp{i}.position"], r[f"lp{i}.slot0"]
            lo, up = r[f"lp{i}.lower"], r[f"lp{i}.upper"]
            total += uniswap.asset_amount_of_position(
                sqrt_price_x96=int(slot0[0]), tick_current=int(slot0[1]), tick_lower=lower, tick_upper=upper,
                liquidity=int(pos[7]), fee_growth_global_x128=(int(r[f"lp{i}.growth0"]), int(r[f"lp{i}.growth1"])),
                lower_fee_growth_outside_x128=(int(lo[2]), int(lo[3])),
                upper_fee_growth_outside_x128=(int(up[2]), int(up[3])),
                fee_growth_inside_last_x128=(int(pos[8]), int(pos[9])), tokens_owed=(int(pos[10]), int(pos[11])),
                asset_is_token0=asset_is_token0)
        return total

    def params(self, snapshot: Snapshot) -> PolicyParams:
        return self.settings.policy_for_chain(snapshot.chain.chain_id)

    # ----------------------------------------------------------------- cycle
    def lock(self) -> AccountLock:
        return AccountLock(self.settings.journal_path, self.account)

    def cycle(self, dry_run: bool = False, *, locked: bool = False, params: PolicyParams | None = None,
              unwinding: bool = False) -> CycleResult:
        """One cycle under the account's lock (unless the caller holds it). Never raises for a
        refusal or a failed send: the result carries the exit code. Raises ConfigError /
        RpcError / ChainGuardError / LockHeld when the cycle cannot even start.
        ``params`` replaces the policy parameters for this cycle and ``unwinding`` lets it act
        while the account is paused (``hedger unwind``: pausing stops the hedger, not the
        operator's exit)."""
        if locked:
            return self._cycle(dry_run, params, unwinding)
        with self.lock():
            return self._cycle(dry_run, params, unwinding)

    # --------------------------------------------------------- operator controls
    PAUSE = "pause"
    UNWOUND = "unwound"                 # the pause reason `hedger unwind` leaves when it finished
    UNWINDING = "unwinding: `hedger unwind` started and has not finished (run it again to finish)"
    UNFINISHED_UNWIND = "unwind unfinished (run `hedger unwind` again to finish)"

    def paused(self) -> dict[str, Any] | None:
        """The pause record ({since, reason}) when the operator (or `hedger unwind`) paused this
        account, else None."""
        if self.journal is None:
            return None
        return self.journal.get_control(self.account, self.adapter.market, self.PAUSE)

    def set_paused(self, reason: str | None) -> None:
        """Pause (with a reason) or, with None, resume. Needs the journal."""
        if self.journal is None:
            raise ConfigError("HEDGER_JOURNAL_PATH", "pausing needs the journal", "set HEDGER_JOURNAL_PATH")
        value = None if reason is None else {"since": int(time.time()), "reason": reason}
        self.journal.set_control(self.account, self.adapter.market, self.PAUSE, value)

    def _daily_budget(self, snapshot: Snapshot) -> DailyBudget | None:
        """Room left today under HEDGER_DAILY_MAX_NOTIONAL_USD and HEDGER_DAILY_MAX_GAS_ETH
        (UTC day of chain time), from what the journal recorded as mined."""
        s = self.settings
        if self.journal is None or (s.daily_max_notional_usd is None and s.daily_max_gas is None):
            return None
        day_start = snapshot.chain.block_timestamp - snapshot.chain.block_timestamp % 86_400
        notional, gas = self.journal.spent(snapshot.chain.chain_id, snapshot.chain.genesis_hash, self.account,
                                           day_start)
        return DailyBudget(
            notional_left=None if s.daily_max_notional_usd is None else s.daily_max_notional_usd - notional,
            gas_left=None if s.daily_max_gas is None else s.daily_max_gas - gas)

    def sender(self) -> TxSender:
        assert self.signer is not None
        if self._sender is None:
            self._sender = TxSender(self.w3, self.signer, gas=self.settings.gas_policy())
        return self._sender

    def resume_action(self, action: JournaledAction) -> Resume:
        """The venue's answer for an action an earlier run left part-done (see ``reconcile``)."""
        adapter = self.adapter if action.market == self.adapter.market else self.peers.get(action.market)
        if adapter is None:
            return Resume("replan", f"its market {action.market} is not configured here: nothing is sent for it")
        return adapter.resume(action)

    def fill_of(self, snapshot: Snapshot) -> Callable[[str, int, int], Fill | None]:
        """The venue's record of how an order of this account was filled, up to ``snapshot``'s block."""
        return lambda key, delta, block: self.adapter.order_fill(self.account, key, delta, block,
                                                                 snapshot.chain.block_number)

    def reconcile(self) -> list[str]:
        """Before a cycle: settle what earlier runs left unrecorded (a crash between broadcast and
        receipt) or not yet final (receipts re-checked against reorganisations). Mined transactions
        are recorded, pending ones are waited for (and replaced if stuck), forgotten ones broadcast
        again from the journal (their nonce cancelled after HEDGER_MAX_REBROADCASTS), and
        interrupted cycles closed. Raises while a nonce stays in doubt. Returns notes."""
        from hedger.state.reconcile import reconcile
        if self.journal is None:
            return []
        return reconcile(self)

    def check_state(self, snapshot: Snapshot) -> tuple[list[str], int]:
        """At a cycle's start, after :meth:`read`: the journal's reconciliation with the chain, the
        venue's liquidation records the read found, and how much smaller (E18) the position is
        than the journal expects by no order of ours (the venue's ADL or a liquidation; noted)."""
        if self.journal is None:
            return [], 0
        from hedger.core.model import model_for
        from hedger.state.reconcile import reconcile_state
        found: dict[str, int] = {}
        notes = reconcile_state(self.journal, snapshot, self.fill_of(snapshot), found,
                                drift=model_for(snapshot).position_drift) + self.last_liquidations
        reduced = found.get("reduced_by_venue", 0)
        if reduced:
            notes.append(f"the position is {reduced / UNIT:.6f} smaller than the last cycle left it, by no order of "
                         "ours (the venue's auto-deleveraging, or a liquidation): this cycle re-hedges from the new size")
        return notes, reduced

    def _cycle(self, dry_run: bool, params: PolicyParams | None = None, unwinding: bool = False) -> CycleResult:
        notes = self.reconcile()
        self.last_liquidations = []
        snapshot = self.read()              # (tests replace it, calling the real one: a price moves after it)
        checked, reduced = self.check_state(snapshot)
        notes += checked
        snapshot = replace(snapshot, daily=self._daily_budget(snapshot))
        params = params or self.params(snapshot)
        decision = policy.decide(snapshot, params)
        decision = self._after_cancellations(snapshot, decision)
        res, paused = self.prepare(snapshot, decision, params, dry_run, notes, unwinding=unwinding)
        res.reduced_by_venue = reduced
        plan, calls, dry = res.plan, res.calls, res.dry_run
        assert plan is not None
        cid = self.journal.open_cycle(snapshot, decision, plan, calls, dry) if self.journal else None
        res.cycle_id = cid
        if cid is not None and notes and self.journal is not None:
            self.journal.set_notes(cid, notes)
        log.info("decision %s (%s): %s", decision.kind.value, decision.code, decision.reason)
        if settle_unsent(res, paused=paused, max_action_usd=self.settings.max_action_usd):
            self._execute(res, calls, cid)
        if self.journal is not None and cid is not None:
            self.journal.close_cycle(cid, res.outcome, res.exit_code, res.error)
        return res

    CANCELLED_IN_A_ROW = 2
    CANCELLED_WINDOW_S = 900        # cancellations older than this no longer hold the hedger back

    def _after_cancellations(self, snapshot: Snapshot, decision: Decision) -> Decision:
        """A venue that cancelled our last orders one after the other (acceptable price missed:
        the market moves faster than the slippage bound) gets no third order of the same kind:
        the cycle refuses with the reason, and the operator decides (widen HEDGER_MAX_SLIPPAGE,
        or wait: cancellations older than CANCELLED_WINDOW_S no longer count, so the hedger tries
        again then, once). An executed order ends the run."""
        if self.journal is None or not (decision.acts and decision.size_delta != 0):
            return decision
        c = snapshot.chain
        n = self.journal.cancelled_in_a_row(c.chain_id, c.genesis_hash, self.account, snapshot.market.address,
                                            since=time.time() - self.CANCELLED_WINDOW_S)
        if n < self.CANCELLED_IN_A_ROW:
            return decision
        return replace(decision, kind=DecisionKind.REFUSE, refusal=RefusalKind.ACCOUNT, code="orders_cancelled",
                       reason=f"the venue cancelled our last {n} orders in a row without filling them (acceptable "
                              f"price missed): not submitting another ({decision.reason}); widen HEDGER_MAX_SLIPPAGE "
                              "or wait: it tries again once these are "
                              f"{self.CANCELLED_WINDOW_S // 60} minutes old")

    def prepare(self, snapshot: Snapshot, decision: Decision, params: PolicyParams, dry_run: bool,
                notes: list[str], *, unwinding: bool = False) -> tuple[CycleResult, bool]:
        """Plan ``decision`` and build its calls; the cycle's result so far (dry run when asked, when
        there is no signer, or when the operator paused the account, which adds a note), and
        whether the account is paused. ``unwinding``: a step of `hedger unwind`, which acts
        although the account is paused."""
        from hedger.core.timefmt import when
        plan = planner.plan(decision, params, snapshot.account.size)
        calls = self.adapter.plan_calls(plan.actions, snapshot.account, snapshot.market)
        value, balance = sum(c.value for c in calls), snapshot.chain.account_balance
        if value and balance is not None and balance < value:
            # a venue whose orders carry a fee in the native token (GMX v2's execution fee): refused
            # by name when the account cannot pay it, nothing sent
            decision = replace(decision, kind=DecisionKind.REFUSE, refusal=RefusalKind.ACCOUNT, code="gas_money",
                               reason=f"the plan's orders carry {value / UNIT:.6f} of the chain's native token in "
                                      f"execution fees (ETH on Arbitrum, AVAX on Avalanche) and the account holds "
                                      f"{balance / UNIT:.6f}: nothing is sent; fund {self.account} with the native "
                                      f"token ({decision.reason})")
            plan, calls = replace(plan, decision=decision, actions=()), []
        pause = None if unwinding else self.paused()
        if pause is not None:
            notes.append(f"paused by the operator since {when(pause['since'])} ({pause['reason']}): reading and "
                         "reporting only, nothing is sent (`hedger resume` to hedge again)")
        dry = dry_run or self.signer is None or pause is not None
        return CycleResult(snapshot=snapshot, decision=decision, plan=plan, calls=calls, dry_run=dry,
                           notes=notes), pause is not None

    def _mined(self, tx: Any, at_once: bool) -> None:
        """Journal a mined transaction; an order it created whose key only the venue's events tell
        is recorded under that key at once (its fill is then found even if it executes before the
        next cycle reads the venue's order list)."""
        j = self.journal
        assert j is not None
        j.record_mined(tx, confirmed=at_once)
        if tx.call.creates_order and not tx.call.order_key and tx.status == 1:
            key = self.adapter.created_order_key(tx.tx_hash)
            row = j.order_row(tx.tx_hash) if key else None
            if row is not None:
                j.set_order_state(int(row["id"]), str(row["state"]), "key from the venue's event", key)

    def _execute(self, res: CycleResult, calls: list[Call], cid: int | None) -> None:
        ex = Executor(self.sender(), max_action_usd=self.settings.max_action_usd,
                      fee_of=lambda r: self.adapter.trade_fee(r, self.account))
        j = self.journal
        # a step counts as mined for the next step at its receipt; the journal takes it as final
        # only HEDGER_CONFIRMATIONS blocks later (until then reconcile re-checks its block)
        at_once = res.snapshot is None or self.settings.confirmations_for_chain(res.snapshot.chain.chain_id) == 0
        try:
            ex.execute(
                calls, sent=res.sent,
                on_signed=(lambda c, h, n, raw, f: j.record_signed(cid, c, h, n, raw, {**f, "riskReducing": c.risk_reducing}))
                if j and cid else None,
                on_mined=(lambda tx: self._mined(tx, at_once)) if j else None)
            res.outcome = "acted"
        except GasHeld as err:
            res.outcome, res.exit_code, res.error = "held_gas", 0, redact_urls(str(err))
        except GasTooHigh as err:
            res.outcome, res.exit_code, res.error = "gas_too_high", err.exit_code, redact_urls(str(err))
        except SimulationFailed as err:
            res.outcome, res.exit_code, res.error = "failed", err.exit_code, redact_urls(str(err))
        except PartialExecution as err:
            res.outcome, res.exit_code, res.error = "partial", err.exit_code, redact_urls(str(err))
        except ExecutionError as err:
            res.outcome, res.exit_code, res.error = "failed", err.exit_code, redact_urls(str(err))
        except HedgerError as err:
            res.outcome, res.exit_code, res.error = "failed", err.exit_code, redact_urls(str(err))


def settle_unsent(res: CycleResult, *, paused: bool, max_action_usd: int | None = None) -> bool:
    """Set the outcome of a cycle that sends nothing (refused, held, paused, dry run) and return
    False; return True when its calls are to be sent. A dry run whose plan a real run would refuse
    whole (an action above ``max_action_usd``) says so in its error, exit code still 0."""
    decision = res.decision
    assert decision is not None
    if decision.kind is DecisionKind.REFUSE:
        assert decision.refusal is not None
        res.outcome, res.exit_code, res.error = "refused", REFUSAL_EXIT[decision.refusal], decision.reason
    elif not res.calls:
        res.outcome = "held_limit" if decision.code == "daily_limit" else "held"
    elif paused:
        res.outcome = "paused"
    elif res.dry_run:
        res.outcome = "dry_run"
        try:
            check_caps(res.calls, max_action_usd)
        except ActionTooLarge as err:
            res.error = f"a real run would refuse this plan: {err}"
    else:
        return True
    return False


def fill_due_orders(w3: Web3, adapter: PerpAdapter, keeper_sender: TxSender, accounts: list[str]) -> list[str]:
    """The protocol keeper's job (not the hedger's): fill every due two-step order of ``accounts``.
    Returns the tx hashes; orders not yet due, or whose fill price is breached, stay pending."""
    hashes = []
    for acct in accounts:
        call = adapter.fill_order_call(acct)
        if call is None:
            continue
        try:
            receipt = keeper_sender.send(call.to, call.data)
        except SimulationFailed:
            continue
        hashes.append(Web3.to_hex(receipt["transactionHash"]))
    return hashes


def _opt_bool(v: Any) -> bool | None:
    return None if v is None else bool(v)
