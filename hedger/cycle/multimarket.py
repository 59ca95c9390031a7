"""Several markets, one account, one cycle (``HEDGER_MARKETS``).

A :class:`MultiKeeper` hedges each configured market (ETH, BTC, ...) for one
account that posts one collateral token everywhere:

1. read: the chain head, then every market's view calls in one ``aggregate3``
   (``HEDGER_MULTICALL``, else the canonical Multicall3 when the chain has it)
   or one JSON-RPC batch, pinned to that block, then the second stage of the
   venues that read in two (one more round trip for all of them, same block):
   two round trips, three at most, whatever the number of markets;
2. decide: each market with the pure policy, as a single-market cycle would;
   then :func:`allocate_collateral` (pure) shares the wallet: when it cannot
   fund every market's deposit, the market nearest liquidation is funded
   first and the ones left short are decided again with what they get, so
   that the policy's own "collateral short" rules (grow less, deleverage) apply;
3. plan and execute each market with the planner, its adapter and the one
   signer: the risk-reducing calls of every market first (nearest liquidation
   first), then the risk-increasing ones (growing a short, withdrawing excess);
4. journal: one cycle row per market, exactly as a single-market cycle.

The account's lock is held once for the whole cycle.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence, TypeVar

from web3 import Web3

from hedger.core.model import INFINITE
from hedger.decide import policy
from hedger.config import MARKETS_VAR, MarketConfig, Settings
from hedger.core.secrets import RPC_FIX, redact_urls
from hedger.core.errors import ActionTooLarge, ChainGuardError, ConfigError, RpcError
from hedger.chain.executor import Signer, TxSender, check_caps
from hedger.core.fixedpoint import UNIT, fmt_units
from hedger.state.journal import Journal
from hedger.cycle.keeper import Keeper, make_web3, settle_unsent
from hedger.state.lock import AccountLock
from hedger.chain.reader import CANONICAL_MULTICALL3, CallFailed, CallSpec, ChainReader
from hedger.core.types import Call, ChainView, CycleResult, Decision, DecisionKind, PolicyParams, Snapshot

T = TypeVar("T")
log = logging.getLogger("hedger.cycle.multimarket")


# ----------------------------------------------------------------------------- pure: sharing the wallet

@dataclass(frozen=True)
class Allocation:
    """One market's share of the cycle: the decision it acts on and the collateral it may deposit."""

    name: str
    snapshot: Snapshot     # what the decision saw (a re-decided market: its wallet is what it was given)
    decision: Decision
    wanted: int            # native collateral its decision wanted from the whole wallet
    allocated: int         # native collateral it may deposit this cycle (its decision's deposit)
    rank: int              # 0: nearest liquidation, funded first
    redecided: bool        # decided again with a smaller wallet (or daily room) than it first had
    note: str | None = None


def _reduces(size: int, delta: int) -> bool:
    return delta != 0 and abs(size + delta) < abs(size) and (size + delta) * size >= 0


def liquidation_distance(s: Snapshot, d: Decision) -> int:
    """How near a market's position is to liquidation, as a fraction of the price (E18): after this
    cycle's trade when that trade reduces the position (it goes first whatever the funding), before
    any collateral moves. A trade that grows the position is not counted: without collateral it is
    cut, so it risks nothing. No position (or a refused decision): ``INFINITE``."""
    if d.kind is DecisionKind.REFUSE:
        return INFINITE
    delta = d.size_delta if d.kind is DecisionKind.REBALANCE and _reduces(s.account.size, d.size_delta) else 0
    return policy.post_trade(s, delta, 0).liq_distance


def _trade_notional(s: Snapshot, d: Decision) -> int:
    return abs(d.size_delta) * s.oracle.price_e18 // UNIT if d.kind is DecisionKind.REBALANCE else 0


def allocate_collateral(markets: Sequence[tuple[str, Snapshot, PolicyParams]], wallet: int | None = None,
                        decisions: Sequence[Decision] | None = None) -> list[Allocation]:
    """Share one wallet's collateral (native units) among markets decided one by one. Pure.

    ``markets``: (name, snapshot, params) each; ``wallet``: default the snapshots' wallet (all read
    the same token and account); ``decisions``: each market's decision on its own snapshot (computed
    when not given). Markets are served in order of :func:`liquidation_distance`, nearest first
    (ties: in the given order). A market whose wanted deposit fits in what is left keeps its
    decision; one that does not is decided again on its snapshot with the wallet replaced by what
    is left, so the policy grows it less or deleverages it. Each market's trades also use up the
    account's daily notional room (``Snapshot.daily``) for the markets after it.
    Returns one :class:`Allocation` per market, in the given order; the allocations never add up
    to more than the wallet."""
    n = len(markets)
    if decisions is None:
        decisions = [policy.decide(s, p) for _, s, p in markets]
    if len(decisions) != n:
        raise ValueError("one decision per market")
    if wallet is None:
        wallet = min((s.account.collateral_wallet for _, s, _ in markets), default=0)
    wallet = max(wallet, 0)
    wants = [max(0, d.margin_delta) for d in decisions]
    order = sorted(range(n), key=lambda i: (liquidation_distance(markets[i][1], decisions[i]), i))
    short = sum(wants) > wallet
    remaining, used_notional = wallet, 0
    out: list[Allocation | None] = [None] * n
    for rank, i in enumerate(order):
        name, s, p = markets[i]
        d, snap, redo = decisions[i], s, False
        daily = s.daily
        if daily is not None and daily.notional_left is not None and used_notional:
            snap = replace(snap, daily=replace(daily, notional_left=daily.notional_left - used_notional))
            redo = _trade_notional(s, d) > 0 and _trade_notional(s, d) > daily.notional_left - used_notional
        if wants[i] > remaining:
            redo = True
        if redo:
            snap = replace(snap, account=replace(snap.account, collateral_wallet=remaining))
            d = policy.decide(snap, p)
        allocated = min(max(0, d.margin_delta), remaining)
        remaining -= allocated
        used_notional += _trade_notional(s, d)
        note = None
        if short and (wants[i] > 0 or redo):
            dec = s.market.collateral_decimals
            note = (f"collateral shared among markets: the wallet's {fmt_units(wallet, dec, 2)} cannot fund the "
                    f"{fmt_units(sum(wants), dec, 2)} they want; funded by nearest liquidation (rank {rank + 1} of "
                    f"{n}): {fmt_units(allocated, dec, 2)} of {fmt_units(wants[i], dec, 2)} wanted"
                    + ("; decided again with that" if redo else ""))
        out[i] = Allocation(name=name, snapshot=snap if redo else s, decision=d, wanted=wants[i],
                            allocated=allocated, rank=rank, redecided=redo, note=note)
    return [a for a in out if a is not None]


# ----------------------------------------------------------------------------- the keeper

# the single-market variable a keeper's message names -> the HEDGER_MARKETS entry's key that set it
_ENTRY_FIELD = {"HEDGER_MARKET": "market", "HEDGER_ORACLE": "oracle", "HEDGER_SPOT_TOKEN": "spot_token",
                "HEDGER_SECOND_ORACLE": "second_oracle", "HEDGER_LP_POSITIONS": "lp_positions"}


def _as_entry(name: str, read: Callable[[], T]) -> T:
    """``read()`` of market ``name``'s keeper, its configuration errors naming the ``HEDGER_MARKETS``
    entry's key rather than the single-market variable (which the user did not set)."""
    try:
        return read()
    except (ConfigError, ChainGuardError) as err:
        var = err.variable if isinstance(err, ConfigError) else err.context.get("variable")
        field_ = _ENTRY_FIELD.get(var or "")
        if field_ is None:
            raise
        where = f'the "{field_}" of {MARKETS_VAR} entry {name!r}'

        def entry_terms(text: str) -> str:
            return re.sub(r"\bHEDGER_[A-Z_]+\b", lambda m: f'"{_ENTRY_FIELD[m[0]]}"' if m[0] in _ENTRY_FIELD
                          else m[0], text)
        if isinstance(err, ConfigError):
            raise ConfigError(MARKETS_VAR, f"{where}: {entry_terms(err.problem)}", entry_terms(err.fix)) from None
        raise ChainGuardError(f"market {name}: {entry_terms(str(err).replace(var or '', where))}",
                              **{**err.context, "variable": MARKETS_VAR}) from err


def market_settings(settings: Settings, m: MarketConfig) -> Settings:
    """The single-market settings of one ``HEDGER_MARKETS`` entry (shared: RPC, signer, account,
    collateral, journal, limits; per market: addresses, venue and order mode, extra exposure,
    LP positions, hedge ratio)."""
    pol = settings.policy
    if m.hedge_ratio is not None:
        # the funding-aware range is a fraction of the global ratio; off (equal to it) stays off
        if pol.funding_min_ratio >= pol.hedge_ratio:
            low = m.hedge_ratio
        else:
            low = pol.funding_min_ratio * m.hedge_ratio // pol.hedge_ratio
        pol = replace(pol, hedge_ratio=m.hedge_ratio, funding_min_ratio=low)
    return replace(settings, market=m.market, oracle=m.oracle, spot_token=m.spot_token,
                   sequencer_feed=m.sequencer_feed or settings.sequencer_feed, second_oracle=m.second_oracle,
                   second_twap=m.second_twap, lp_positions=m.lp_positions,
                   extra_exposure=m.extra_exposure, policy=pol, markets=(),
                   protocol=m.protocol or settings.protocol, order_mode=m.order_mode or settings.order_mode)


@dataclass
class MultiCycleResult:
    """One cycle over every market: a single-market result each (configured order), and the exit code
    of the whole (the largest of theirs)."""

    results: dict[str, CycleResult]
    allocations: dict[str, Allocation]
    notes: list[str] = field(default_factory=list)   # account-wide reconciliation of earlier runs
    exit_code: int = 0

    @property
    def outcome(self) -> str:
        outcomes = {r.outcome for r in self.results.values()}
        return outcomes.pop() if len(outcomes) == 1 else "mixed"


def worst_exit_code(codes: Sequence[int]) -> int:
    """The codes of the README's table grow with what they ask of an operator (3-5 refused, 6 failed
    before sending, 7 partial, 8 RPC, 9 act by hand, 10 alarm): the largest one speaks for the cycle."""
    return max(codes, default=0)


@dataclass
class MultiKeeper:
    settings: Settings
    w3: Web3
    signer: Signer | None
    reader: ChainReader
    journal: Journal | None
    account: str
    keepers: dict[str, Keeper]       # by market name, in configured order
    _probed_multicall: bool = False

    @classmethod
    def from_settings(cls, settings: Settings, *, w3: Web3 | None = None, signer: Signer | None = None,
                      journal: Journal | None = None, use_journal: bool = True) -> "MultiKeeper":
        if not settings.markets:
            raise ConfigError(MARKETS_VAR, "is not set", "list the markets to hedge together as a JSON list")
        w3 = w3 or make_web3(settings.rpc_url, settings.rpc_timeout)
        signer = signer if signer is not None else settings.build_signer()
        if journal is None and use_journal:
            journal = Journal(settings.journal_path)
        reader = ChainReader(w3, multicall=settings.multicall)
        sender = TxSender(w3, signer, gas=settings.gas_policy()) if signer is not None else None
        keepers: dict[str, Keeper] = {}
        for m in settings.markets:
            k = Keeper.from_settings(market_settings(settings, m), w3=w3, signer=signer, journal=journal,
                                     use_journal=False)
            k.reader = reader          # one head cache, one genesis
            k._sender = sender         # one nonce sequence for the account
            keepers[m.name] = k
        account = next(iter(keepers.values())).account
        for k in keepers.values():
            k.peers = {o.adapter.market: o.adapter for o in keepers.values()}
        return cls(settings=settings, w3=w3, signer=signer, reader=reader, journal=journal, account=account,
                   keepers=keepers)

    # ------------------------------------------------------------------ read
    def _head(self) -> ChainView:
        """Round trip 1; the first time without HEDGER_MULTICALL it also asks whether the canonical
        Multicall3 has code (then round trip 2 goes through it, else through a JSON-RPC batch)."""
        probe = CANONICAL_MULTICALL3 if self.reader.multicall is None and not self._probed_multicall else None
        head, has_code = self.reader.head_with_code(self.account, probe)
        if probe is not None:
            self._probed_multicall = True
            if has_code:
                self.reader.multicall = Web3.to_checksum_address(probe)
                log.info("reading through the canonical Multicall3 at %s", probe)
        return head

    def read(self) -> dict[str, Snapshot]:
        """Every market's snapshot, all at one block: the head, then every market's stage-1 views in
        one round trip, then every market's second stage (when an adapter has one) in one more:
        two round trips, at most three, whatever the number of markets."""
        try:
            head = self._head()
        except RpcError as err:
            raise RpcError(f"cannot read the chain at {self.settings.rpc_display}: {err}. Fix: {RPC_FIX}") from err
        if self.settings.chain_id is not None and head.chain_id != self.settings.chain_id:
            raise ChainGuardError(f"the RPC at {self.settings.rpc_display} reports chain id {head.chain_id}, "
                                  f"HEDGER_CHAIN_ID is {self.settings.chain_id}: refusing to act on the wrong chain")
        # each market's venue records of the account liquidated since the journal's last reading of
        # that market ride in stage 1's batch, as a single market's read asks them
        queries = {name: q for name, k in self.keepers.items() if (q := k._liquidation_query(head)) is not None}
        stage1, logs = self._read_stage({name: _as_entry(name, k._specs) for name, k in self.keepers.items()},
                                        head.block_number, queries)
        stage2, _ = self._read_stage({name: k.stage2_specs(stage1[name]) for name, k in self.keepers.items()},
                                     head.block_number)
        snaps = {name: k.snapshot_from({**stage1[name], **stage2[name]}, head) for name, k in self.keepers.items()}
        for name, k in self.keepers.items():
            k.last_liquidations = k._liquidation_notes(queries[name], logs[name]) if name in queries else []
        return snaps

    def _read_stage(self, specs: dict[str, list[CallSpec]], block: int,
                    logs: dict[str, dict[str, Any]] | None = None) -> tuple[dict[str, dict[str, Any]],
                                                                            dict[str, dict[str, Any]]]:
        """One stage of every market's reads in one round trip at ``block`` (none when no market has
        a call in it): each distinct view once (the markets share the collateral token, maybe
        feeds). Returns each market's answers, keyed as its own specs, and the answer to each
        market's ``eth_getLogs`` filter of ``logs``, asked in the same batch."""
        logs = logs or {}
        unique: dict[tuple[Any, ...], CallSpec] = {}
        keys_of: dict[str, list[tuple[str, tuple[Any, ...]]]] = {}
        for name, market_specs in specs.items():
            keys = []
            for spec in market_specs:
                ident = (spec.address, spec.abi, spec.fn, spec.args, spec.optional)
                if ident not in unique:
                    unique[ident] = replace(spec, key=f"{name}/{spec.key}")
                keys.append((spec.key, ident))
            keys_of[name] = keys
        try:
            r, raw = self.reader.call_many_with(list(unique.values()), block,
                                                [("eth_getLogs", [q]) for q in logs.values()])
        except CallFailed as err:
            market = err.spec.key.rsplit("/", 1)[0]
            var = self.keepers[market].setting_of(err.spec.address, err.spec.key.rsplit("/", 1)[-1]) if market in self.keepers else "HEDGER_MARKET"
            field_ = _ENTRY_FIELD.get(var)
            where = f'the "{field_}" of {MARKETS_VAR} entry {market!r}' if field_ else var
            raise ChainGuardError(f"market {market}: {err}. Fix: check that {where} is the right address, with the "
                                  f"expected interface (`hedger check` tests every configured address)",
                                  address=err.spec.address, variable=var) from err
        return ({name: {key: r[unique[ident].key] for key, ident in keys} for name, keys in keys_of.items()},
                dict(zip(logs, raw)))

    def decide(self, snapshots: dict[str, Snapshot]) -> dict[str, Allocation]:
        """Each market's decision, with the wallet shared by :func:`allocate_collateral`."""
        inputs = [(name, snapshots[name], k.params(snapshots[name])) for name, k in self.keepers.items()]
        return {a.name: a for a in allocate_collateral(inputs)}

    # ----------------------------------------------------------------- cycle
    def lock(self) -> AccountLock:
        return AccountLock(self.settings.journal_path, self.account)

    def cycle(self, dry_run: bool = False, *, locked: bool = False) -> MultiCycleResult:
        """One cycle over every market under the account's lock (held once). Like
        :meth:`Keeper.cycle`, never raises for a refusal or a failed send; raises when the cycle
        cannot even start (ConfigError, RpcError, ChainGuardError, LockHeld)."""
        if locked:
            return self._cycle(dry_run)
        with self.lock():
            return self._cycle(dry_run)

    def _cycle(self, dry_run: bool) -> MultiCycleResult:
        first = next(iter(self.keepers.values()))
        notes = first.reconcile()            # account-wide: the transactions of every market
        snaps = self.read()
        checked = {name: self.keepers[name].check_state(s) for name, s in snaps.items()}
        market_notes = {name: c[0] for name, c in checked.items()}
        budget = first._daily_budget(next(iter(snaps.values())))   # the daily limits are the account's
        allocs = self.decide({name: replace(s, daily=budget) for name, s in snaps.items()})
        results: dict[str, CycleResult] = {}
        to_send: dict[str, list[Call]] = {}
        for idx, (name, k) in enumerate(self.keepers.items()):
            a = allocs[name]
            s, decision = a.snapshot, a.decision
            mnotes = list(market_notes[name]) + ([a.note] if a.note else [])
            res, paused = k.prepare(s, decision, k.params(s), dry_run or self.signer is None, mnotes)
            res.reduced_by_venue = checked[name][1]
            plan, calls, dry = res.plan, res.calls, res.dry_run
            assert plan is not None
            results[name] = res
            if self.journal is not None:
                res.cycle_id = self.journal.open_cycle(s, decision, plan, calls, dry)
                journaled = (notes if idx == 0 else []) + mnotes
                if journaled:
                    self.journal.set_notes(res.cycle_id, journaled)
            log.info("%s: decision %s (%s): %s", name, decision.kind.value, decision.code, decision.reason)
            if settle_unsent(res, paused=paused, max_action_usd=self.settings.max_action_usd):
                to_send[name] = calls
        if to_send:
            self._execute(to_send, results, allocs)
        for res in results.values():
            if self.journal is not None and res.cycle_id is not None:
                self.journal.close_cycle(res.cycle_id, res.outcome, res.exit_code, res.error)
        return MultiCycleResult(results=results, allocations=allocs, notes=notes,
                                exit_code=worst_exit_code([r.exit_code for r in results.values()]))

    def _execute(self, to_send: dict[str, list[Call]], results: dict[str, CycleResult],
                 allocs: dict[str, Allocation]) -> None:
        """Risk-reducing calls of every market (nearest liquidation first), then the rest. A market
        whose risk-reducing steps failed sends nothing more; the other markets go on."""
        order = sorted(to_send, key=lambda name: allocs[name].rank)
        live: list[str] = []
        for name in order:
            # a plan with one action above HEDGER_MAX_ACTION_USD is refused whole, before anything is sent
            try:
                check_caps(to_send[name], self.settings.max_action_usd)
            except ActionTooLarge as err:
                res = results[name]
                res.outcome, res.exit_code, res.error = "failed", err.exit_code, redact_urls(str(err))
                continue
            live.append(name)
        for phase_reducing in (True, False):
            for name in live:
                res = results[name]
                if res.exit_code != 0 or res.outcome == "held_gas":
                    continue
                calls = [c for c in to_send[name] if c.risk_reducing == phase_reducing]
                if calls:
                    self.keepers[name]._execute(res, calls, res.cycle_id)

    # ---------------------------------------------------------------- status
    def status(self) -> list[tuple[str, Snapshot, Decision, dict[str, Any] | None]]:
        """(name, snapshot, the decision the cycle would take, pause record) per market."""
        snaps = self.read()
        allocs = self.decide(snaps)
        return [(name, snaps[name], allocs[name].decision, k.paused()) for name, k in self.keepers.items()]
