"""Forked-chain simulation: replay a market through the production keeper, on a fork.

``hedger simulate`` (and ``ape run simulate``) calls :func:`run_jobs`. Each worker
process owns a :class:`SimChain`: by default an upstream anvil with chain id 1 on a
free port holding the venue (``protocol``: the reference market, the GMX v2
stand-in, or the real Aave v3 and Uniswap v3), forked through ape-foundry's
``ethereum:mainnet-fork:foundry`` network (so several runs go in parallel); with
``fork_url`` any chain is forked instead (reference market only). What differs by
venue is a :class:`hedger.sim.venues.SimVenue`.

Every step, in this order: chain time moves forward; the feed publishes the
scenario's price (on Aave a trader then swaps the Uniswap pool to it); other
traders trade (on the reference market their net position leans by the scenario's
bias, arbitrageurs lean against the funding rate, which moves skew and funding);
a liquidation keeper liquidates anything liquidatable; the next block's base fee is
set; one cycle of :class:`hedger.cycle.keeper.Keeper` runs (the production code, its
journal and executor included); with two-step orders time moves past the venue's
delay and its keeper fills due orders. Then the account is read once for the
metrics.

Amounts on chain stay integers; the per-step records (``StepRecord``) are floats
because they only feed reports and plots.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import random
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from web3 import Web3

from hedger.chain.abi import contract_artifact
from hedger.config import Settings
from hedger.core.secrets import register_rpc_url, scrubbed_environ
from hedger.sim.deploy import MarketParams
from hedger.sim.deploy import etch_feed as etch_settable_feed
from hedger.chain.executor import KeySigner, TxSender
from hedger.core.secrets import Secret
from hedger.state.journal import Journal
from hedger.cycle.keeper import Keeper, make_web3
from hedger.sim.localchain import Anvil, anvil_binary, dev_account, free_port, start_anvil
from hedger.sim.scenarios import PRICE_DECIMALS, Scenario, Step, lp_units, make, with_flows, with_substeps
from hedger.sim.venues import ADMIN, HEDGER, HOLDER, ORDER_KEEPER, SimVenue, TraderModel, make_venue
from hedger.core.types import UNIT, PolicyParams

log = logging.getLogger("hedger.sim.simulate")

FORK_NETWORK = "ethereum:mainnet-fork:foundry"
FORK_SETTINGS = {"fork": {"ethereum": {"mainnet": {"upstream_provider": "node", "evm_version": "prague"}}}}
# ape-foundry's ``host: auto`` draws a port at random without asking the kernel whether it is free:
# a port held by another socket makes anvil exit ("Address already in use") and ape wait 20 s for
# it, and a port held by another anvil makes ape use that node as if it were the fork. So the fork
# gets a port the kernel has just handed out, and the start is tried again if it is lost anyway.
FORK_START_ATTEMPTS = 3
SIM_TX_GAS = 3_000_000
SINK = "0x000000000000000000000000000000000000dEaD"   # where outflows of the spot asset go


# ------------------------------------------------------------------------------------ policies

@dataclass(frozen=True)
class PolicySpec:
    """A policy compared by the simulator: parameters for the keeper, and how often it runs."""

    name: str
    params: PolicyParams
    interval_s: int = 0          # 0: every step; else the keeper runs only when this much chain time passed
    description: str = ""
    once: bool = False           # the keeper runs at the first step only (the open-once baseline)


def policies(base: PolicyParams, *, fixed_interval_s: int = 3600,
             funding_min_ratio: int = 8 * UNIT // 10) -> dict[str, PolicySpec]:
    """The policies compared side by side, all run by the same keeper code.

    - ``fixed-interval``: every ``fixed_interval_s`` of chain time, trade to the exact target
      (no band, no cooldown, a $10 minimum order), as Hummingbot's hedge strategy does.
    - ``band-only``: trade to the target when outside the band; no cooldown, no minimum trade.
    - ``default``: the project's defaults (band, minimum trade, cooldown).
    - ``funding-aware``: the defaults plus the funding-aware range (0.8 to 1.0 above 10%/yr).
    - ``open-once``: a baseline: the opening hedge (the defaults' first cycle), never touched again.
    """
    fi = replace(base, band=0, min_trade_usd=10 * UNIT, cooldown_s=0)
    return {
        "fixed-interval": PolicySpec("fixed-interval", fi, fixed_interval_s,
                                     f"exact target every {fixed_interval_s // 60} min"),
        "band-only": PolicySpec("band-only", replace(base, cooldown_s=0, min_trade_usd=0),
                                description=f"{base.band * 100 / UNIT:g}% band, no cooldown or minimum"),
        "default": PolicySpec("default", base, description="project defaults"),
        "funding-aware": PolicySpec("funding-aware", replace(base, funding_min_ratio=funding_min_ratio),
                                    description=f"defaults + ratio {funding_min_ratio / UNIT:g}-"
                                                f"{base.hedge_ratio / UNIT:g} when the hedge pays "
                                                f"> {base.funding_threshold * 100 / UNIT:g}%/yr"),
        "open-once": PolicySpec("open-once", base, once=True, description="the opening hedge, never touched"),
    }


# ------------------------------------------------------------------------------------ the chain

@functools.lru_cache(maxsize=None)
def _dev_address(index: int) -> str:
    return Web3.to_checksum_address(dev_account(index).address)


@dataclass
class SimChain:
    """One forked chain with a venue (``protocol``) and the simulation's accounts on it."""

    fork_url: str | None = None
    fork_block: int | None = None    # with fork_url: fork at this block (every worker the same state)
    oracle: str | None = None
    collateral: str | None = None
    order_mode: str = "direct"
    market_params: MarketParams = field(default_factory=MarketParams)
    trader_margin_usd: int = 50_000_000
    protocol: str = "reference"
    keeper_delay_s: int = 2           # gmx-v2: seconds between an order's creation and its execution
    asset_is_token0: bool = False     # aave-v3: the pool's token order
    gmx_deployment: str | None = None  # gmx-v2 with fork_url: GMX's own deployment on a fork of its chain
    gmx_market: str | None = None     # ... its market (GM token; default: ETH/USD on arbitrum)
    gmx_fork_options: dict[str, Any] = field(default_factory=dict)   # tests: addresses instead of the SDK's
    upstream: Anvil | None = None
    w3: Web3 | None = None
    venue: SimVenue | None = None
    fork_uri: str = ""
    _ctx: Any = None
    _node: Anvil | None = None
    _base_snapshot: str | None = None
    _abi_cache: dict[tuple[str, str], tuple[str, list[str]]] = field(default_factory=dict)

    def start(self) -> "SimChain":
        try:
            return self._start()
        except BaseException:
            self.stop()     # no orphaned upstream or fork node when the set-up fails half-way
            raise

    def _start(self) -> "SimChain":
        self.venue = make_venue(self.protocol, market_params=self.market_params, oracle=self.oracle,
                                collateral=self.collateral, trader_margin_usd=self.trader_margin_usd,
                                keeper_delay_s=self.keeper_delay_s, asset_is_token0=self.asset_is_token0,
                                gmx_deployment=self.gmx_deployment, gmx_market=self.gmx_market,
                                gmx_fork_options=self.gmx_fork_options)
        if self.order_mode not in self.venue.modes:
            raise ValueError(f"order mode {self.order_mode!r} is not offered on {self.protocol}: "
                             f"use {' or '.join(self.venue.modes)}")
        if self.fork_url is None:
            self.upstream = start_anvil(chain_id=1)
            up_w3 = make_web3(self.upstream.url)
            self.venue.deploy(TxSender(up_w3, KeySigner(Secret(dev_account(ADMIN).key.hex()))))
            upstream_url = self.upstream.url
        else:
            upstream_url = self.fork_url
            register_rpc_url(upstream_url)
        if self.gmx_deployment is not None and self.fork_url is not None:
            # GMX's chain (Arbitrum: chain id 42161), not ape's mainnet-fork network (chain id 1)
            from hedger.sim.gmx_fork import start_fork
            self._node = start_fork(upstream_url, self.gmx_deployment, block=self.fork_block)
            self.fork_uri = self._node.url
            self.w3 = make_web3(self.fork_uri, timeout=60)
        else:
            self._fork(upstream_url)
        if self.fork_url is not None:
            self.venue.deploy_on_fork(self, TxSender(self.w3, KeySigner(Secret(dev_account(ADMIN).key.hex()))))
        # every block one second after the previous (not the wall clock): a seed reproduces a run
        # to the last wei, whatever the machine's speed
        self.rpc("anvil_setBlockTimestampInterval", 1)
        self._setup_accounts()
        self._base_snapshot = self.rpc("evm_snapshot")
        return self

    def _fork(self, upstream_url: str) -> None:
        """Fork ``upstream_url`` through ape-foundry (its configured upstream, pointed here)."""
        # ape-foundry looks anvil up on PATH: the binary installed from npm (its own folder, not
        # node_modules/.bin, whose `anvil` is a node.js launcher: killing that one would orphan
        # the real anvil), and this venv's tools
        extra = [str(Path(anvil_binary()).parent), str(Path(sys.executable).parent)]
        # first on PATH even when already on it further down (behind node_modules/.bin, say)
        path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p not in extra]
        os.environ["PATH"] = os.pathsep.join(extra + path)
        from ape import config, networks
        node = config.get_config("node")
        node.ethereum["mainnet"]["uri"] = upstream_url    # ape-config.yaml's upstream, pointed here
        logging.getLogger("ape").setLevel(logging.WARNING)
        from ape.exceptions import RPCTimeoutError
        from ape_foundry.exceptions import FoundryNotInstalledError, FoundryProviderError
        failures: list[str] = []
        for _ in range(FORK_START_ATTEMPTS):
            # the same settings as ape-config.yaml, given here too so that a run from another
            # folder (another ape project) still gets the Prague EVM; the port is ours to choose
            port = free_port()
            settings = {**FORK_SETTINGS, "host": f"http://127.0.0.1:{port}"}
            if self.fork_block is not None and self.fork_url is not None:
                mainnet = {**FORK_SETTINGS["fork"]["ethereum"]["mainnet"], "block_number": self.fork_block}
                settings["fork"] = {"ethereum": {"mainnet": mainnet}}
            # disconnect_after: leaving the context also drops ape's record of this connection,
            # which a later fork on the same port and upstream would otherwise be handed
            ctx = networks.parse_network_choice(FORK_NETWORK, provider_settings=settings,
                                                disconnect_after=True)
            _without_step_traces(ctx._provider)
            try:
                with scrubbed_environ():      # ape starts anvil with this process's environment
                    provider = ctx.__enter__()
            except FoundryNotInstalledError:
                raise
            except (RPCTimeoutError, FoundryProviderError) as exc:
                _end_ape_node(ctx._provider)
                failures.append(f"port {port}: {type(exc).__name__}: {exc}")
                continue
            if getattr(provider, "process", None) is None:
                # someone else's node took the port between our check and anvil's start: never
                # simulate on it, and leave it running
                ctx.__exit__(None, None, None)
                failures.append(f"port {port}: taken by a node this run did not start")
                continue
            self._ctx = ctx
            break
        else:
            raise RuntimeError(f"the forked anvil did not start in {FORK_START_ATTEMPTS} attempts: "
                               + "; ".join(failures))
        self.fork_uri = provider.uri
        self.w3 = make_web3(self.fork_uri, timeout=60)
        if self.w3.eth.chain_id != 1:
            raise RuntimeError(f"the fork reports chain id {self.w3.eth.chain_id}, expected 1")

    @property
    def d(self) -> SimVenue:
        """The venue (its ``oracle``, ``spot`` and ``collateral`` addresses)."""
        assert self.venue is not None
        return self.venue

    def etch_feed(self, admin: TxSender, oracle: str) -> None:
        """Put a settable feed at ``oracle`` (anvil_setCode, as Foundry's ``etch``), keeping its
        decimals, description and latest answer, so that the market reading that address moves
        with the scenario."""
        etch_settable_feed(admin, oracle)

    def rpc(self, method: str, *params: Any) -> Any:
        resp = self.w3.provider.make_request(method, list(params))
        if "error" in resp:
            raise RuntimeError(f"{method}: {resp['error']}")
        return resp.get("result")

    def address(self, index: int) -> str:
        return _dev_address(index)

    def send_as(self, index: int, name: str, to: str, fn: str, *args: Any) -> bool:
        """A transaction from an unlocked dev account (the simulation's own moves, not the hedger's)."""
        # a fixed, ample gas limit: anvil's estimate is sometimes a hair short on a fork, and
        # skipping the estimate saves a round trip
        h = self.rpc("eth_sendTransaction", {"from": self.address(index), "to": Web3.to_checksum_address(to),
                                              "data": self.encode(name, fn, *args), "gas": hex(SIM_TX_GAS)})
        receipt = self.w3.eth.wait_for_transaction_receipt(h, timeout=60, poll_latency=0.005)
        return int(receipt["status"]) == 1

    def send_data(self, index: int, to: str, data: str) -> bool:
        """Call data ``data`` to ``to`` from dev account ``index`` (the simulation's own moves)."""
        h = self.rpc("eth_sendTransaction", {"from": self.address(index), "to": Web3.to_checksum_address(to),
                                              "data": data, "gas": hex(SIM_TX_GAS)})
        receipt = self.w3.eth.wait_for_transaction_receipt(h, timeout=60, poll_latency=0.005)
        return int(receipt["status"]) == 1

    def encode(self, name: str, fn: str, *args: Any) -> str:
        """Call data for ``name.fn(*args)`` (selector and input types looked up once)."""
        key = (name, fn)
        if key not in self._abi_cache:
            abi = next(x for x in contract_artifact(name)["abi"] if x.get("type") == "function" and x["name"] == fn)
            types = [i["type"] for i in abi["inputs"]]
            self._abi_cache[key] = (Web3.keccak(text=f"{fn}({','.join(types)})")[:4].hex(), types)
        selector, types = self._abi_cache[key]
        return "0x" + selector.removeprefix("0x") + self.w3.codec.encode(types, list(args)).hex()

    def view(self, name: str, to: str, fn: str, out: str, *args: Any) -> Any:
        """A view call at the latest block, decoded as the single type ``out``."""
        raw = self.rpc("eth_call", {"to": to, "data": self.encode(name, fn, *args)}, "latest")
        return self.w3.codec.decode([out], bytes.fromhex(raw[2:]))[0]

    def admin_call(self, name: str, to: str, fn: str, *args: Any) -> bool:
        return self.send_as(ADMIN, name, to, fn, *args)

    def mint(self, token: str, to: str, amount: int) -> None:
        """Give ``to`` ``amount`` of ``token``: the reference token's minter, else anvil's deal."""
        if not self.admin_call("ReferenceToken", token, "mint", to, amount):
            bal = self.view("ReferenceToken", token, "balanceOf", "uint256", to)
            self.rpc("anvil_dealERC20", to, token, hex(bal + amount))

    @functools.cached_property
    def collateral_unit(self) -> int:
        """One whole collateral token in its native units (10**6 for USDC)."""
        assert self.d is not None
        return 10 ** int(self.view("ReferenceToken", self.d.collateral, "decimals", "uint8"))

    def _setup_accounts(self) -> None:
        assert self.venue is not None
        self.venue.setup(self)

    def revert_to_base(self) -> None:
        assert self._base_snapshot is not None
        if not self.rpc("evm_revert", self._base_snapshot):
            raise RuntimeError("evm_revert to the base snapshot failed")
        self._base_snapshot = self.rpc("evm_snapshot")

    def kill_nodes(self) -> None:
        """Kill this chain's anvils at once, without ape's bookkeeping (a worker ending on a signal)."""
        procs = [getattr(self._ctx._provider, "process", None) if self._ctx is not None else None,
                 self.upstream.process if self.upstream is not None else None,
                 self._node.process if self._node is not None else None]
        for proc in procs:
            if proc is not None and proc.poll() is None:
                proc.kill()

    def stop(self) -> None:
        if self._node is not None:
            self._node.stop()
            self._node = None
        if self._ctx is not None:
            _end_ape_node(self._ctx._provider)
            try:
                self._ctx.__exit__(None, None, None)
            finally:
                self._ctx = None
        if self.upstream is not None:
            self.upstream.stop()
            self.upstream = None


def _without_step_traces(provider: Any) -> None:
    """Start ``provider``'s anvil without ``--steps-tracing``, which ape-foundry always adds: anvil
    then keeps every opcode step of every transaction in memory, for ape's traces, which a
    simulation never asks for. A fork replaying a week of GMX orders grew by 40 MB a second
    with it and was killed by the kernel at 23 GB; without it, it stays under 100 MB."""
    build = type(provider).build_command

    def build_command() -> list[str]:
        return [arg for arg in build(provider) if arg != "--steps-tracing"]
    object.__setattr__(provider, "build_command", build_command)


def _end_ape_node(provider: Any) -> None:
    """End the anvil that ape started for ``provider`` (if any), and drop it from ape's list of
    running nodes along with entries whose process is gone.

    Not ape's own ``disconnect``: that sends SIGINT, after which anvil waits for idle keep-alive
    connections (5-7 s a chain), and it finds the node in its list (``~/.ape/processes``) by
    comparing settings, which costs 0.1 s an entry, and the list only grows (every fork started
    so far stayed in it)."""
    from ape import networks
    proc = getattr(provider, "process", None)
    if proc is not None:
        if proc.poll() is None:
            proc.kill()     # a throwaway fork: nothing on it to save
            proc.wait(timeout=10)
        provider.process = None
    try:
        nodes = networks.running_nodes
        gone = [pid for pid in nodes.process_ids
                if (proc is not None and pid == proc.pid) or not _process_exists(pid)]
        if gone:
            nodes.remove_processes(*gone)
    except Exception as exc:    # ape's bookkeeping only: never fail a run over it
        log.debug("could not tidy ape's list of running nodes: %s", exc)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ------------------------------------------------------------------------------------- the run

@dataclass(frozen=True)
class Holding:
    """The hedged holding at the start of a run (E18): wallet spot, an LP leg, scheduled flows."""

    spot: int = 60 * UNIT
    lp: int = 40 * UNIT               # asset units of a constant-product LP position at the start price
    flows: bool = True                # +20% of the spot at a third of the run, -30% at two thirds

    def apply(self, sc: Scenario) -> Scenario:
        sc = replace(sc, lp_units_at_start=self.lp)
        if self.flows and len(sc.steps) >= 3:
            n = len(sc.steps)
            sc = with_flows(sc, {n // 3: self.spot // 5, 2 * n // 3: -self.spot * 3 // 10})
        return sc


@dataclass(frozen=True)
class Job:
    scenario: str
    seed: int
    policy: PolicySpec
    steps: int | None = None          # cut the scenario to its first N steps


@dataclass
class StepRecord:
    """One step's state after the keeper acted (floats: reports and plots only)."""

    t_hours: float
    price: float
    exposure: float
    target: float
    position: float
    leverage: float
    margin_ratio: float | None        # remaining margin / notional; None without a position
    liq_distance: float | None        # |liquidation price - price| / price; None without a position
    d_spot: float                     # USD change of the unhedged holding this step
    d_perp_price: float
    d_funding: float
    d_fees: float                     # trading + order keeper fees (negative: a cost)
    d_execution: float                # fill premium and rounding (negative: a cost)
    d_gas: float                      # negative: a cost
    funding_rate_yr: float
    base_fee_gwei: float
    decision: str = ""
    txs: int = 0
    target_low: float | None = None   # the funding-aware range's low edge while it applies
    flow: float = 0.0                 # spot asset added (+) or removed (-) at this step (plots mark it)
    # what a liquidation of the hedge took beyond the position's own loss (negative: the margin and
    # the venue's fee it forfeited; positive: a loss past the margin that the venue absorbed)
    d_liquidation: float = 0.0


@dataclass
class RunResult:
    scenario: str
    seed: int
    policy: str
    steps: list[StepRecord]
    liquidations: int
    txs: int
    gas_used: int
    gas_wei: int
    fees_usd: float
    execution_usd: float
    funding_usd: float
    gas_usd: float
    reserve_start_usd: float
    reserve_used_usd: float
    outcomes: dict[str, int]
    description: str = ""
    errors: dict[str, str] = field(default_factory=dict)   # the first error of each outcome that had one
    unwound: bool = False             # the run ended by unwinding through `hedger unwind`'s path
    # margin and fees liquidations took beyond the positions' own losses (+: lost), apart from the
    # cost of hedging (a gap past the margin, absorbed by the venue, shows here as a gain, not as a
    # negative execution cost)
    liquidation_usd: float = 0.0

    @property
    def cost_usd(self) -> float:
        """What hedging cost: trading and keeper fees, fill premium paid, gas. Funding is apart."""
        return self.fees_usd + self.execution_usd + self.gas_usd

    @property
    def failed_cycles(self) -> int:
        """Cycles that did not do what they were for: failed, refused, or stopped part-way."""
        return sum(n for o, n in self.outcomes.items() if o in FAILED_OUTCOMES)

    @property
    def cycles(self) -> int:
        return sum(self.outcomes.values())

    def tracking_steps(self) -> list["StepRecord"]:
        """The steps the hedge was meant to follow the holding (the closing unwind excluded)."""
        return [s for s in self.steps if s.decision != UNWIND]

    def hedged_changes(self) -> list[float]:
        return [s.d_spot + s.d_perp_price + s.d_funding + s.d_fees + s.d_execution + s.d_gas + s.d_liquidation
                for s in self.steps[1:]]

    def unhedged_changes(self) -> list[float]:
        return [s.d_spot for s in self.steps[1:]]


FAILED_OUTCOMES = frozenset({"failed", "refused", "partial", "gas_too_high", "error"})
UNWIND = "unwind"                     # the decision of the last record: the run's closing unwind


@dataclass
class SimOptions:
    holding: Holding = field(default_factory=Holding)
    reserve_usd: int = 500_000
    traders: TraderModel = field(default_factory=TraderModel)
    # E18 USD price of the gas token (ETH) for gas costs; None: the hedged asset's price at each
    # step, right when the hedged asset is ETH (give it for a BTC price path)
    eth_usd: int | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    unwind_at_end: bool = True        # close the hedge at the end (exit fees, impact and gas paid)
    # E18: the account's collateral in all (posted and in reserve) as this multiple of the opening
    # hedge's notional, instead of ``reserve_usd`` (the same capital for every policy of a run)
    capital: int | None = None
    cycle_every: int = 1              # the keeper runs at every N-th step (a cron line slower than the feed)
    # each step after the first as this many price updates (a Brownian bridge to the step's price),
    # the keeper running at every substeps-th (times cycle_every): prices it never sees between cycles
    substeps: int = 1
    fill_lag: int = 0                 # delayed mode: orders filled this many steps (feed updates) later


def due(i: int, t: int, last_run_at: int | None, policy: "PolicySpec", cycle_every: int = 1) -> bool:
    """Whether the keeper runs at step ``i`` (chain time ``t``): the first step always; then only
    every ``cycle_every``-th step (the cron line), and there when the policy's own interval passed
    (never again for the open-once baseline)."""
    if last_run_at is None:
        return True
    if policy.once or i % max(1, cycle_every):
        return False
    return policy.interval_s == 0 or t - last_run_at >= policy.interval_s


def capital_units(capital: int, exposure: int, hedge_ratio: int, answer: int, unit: int) -> int:
    """Collateral (native units) worth ``capital`` (E18) times the opening hedge's notional:
    ``exposure`` (E18 asset) x ``hedge_ratio`` (E18) at the feed's ``answer`` (PRICE_DECIMALS)."""
    notional = exposure * hedge_ratio // UNIT * answer // 10**PRICE_DECIMALS     # E18 USD
    return notional * capital // UNIT * unit // UNIT


def _lp_value(units_at_start: int, p0: int, p: int) -> float:
    """USD value of a constant-product LP leg (2 * sqrt(k * P)), float for the report."""
    if units_at_start == 0:
        return 0.0
    x0 = units_at_start / UNIT
    p0f, pf = p0 / 10**PRICE_DECIMALS, p / 10**PRICE_DECIMALS
    return 2 * x0 * math.sqrt(p0f * pf)


class Runner:
    """Runs jobs on one :class:`SimChain`, reverting it to the base state before each."""

    def __init__(self, chain: SimChain, options: SimOptions) -> None:
        self.chain = chain
        self.o = options
        w3 = chain.w3
        assert w3 is not None and chain.d is not None
        self.w3 = w3
        self.d = chain.d
        self.venue = chain.d
        self.hedger = chain.address(HEDGER)
        # who holds the hedged spot and LP leg: the signing account, or on a venue that requires
        # them apart (Aave), a holder of its own (HEDGER_HOLDER)
        self.holder_index = HOLDER if self.venue.separate_holder else HEDGER
        self.holder = chain.address(self.holder_index)
        self.signer = KeySigner(Secret(dev_account(HEDGER).key.hex()))
        self.order_keeper = TxSender(w3, KeySigner(Secret(dev_account(ORDER_KEEPER).key.hex())))
        self._reserve_start = options.reserve_usd * chain.collateral_unit

    def settings(self, job: Job, journal: Path, extra: dict[str, str] | None = None) -> Settings:
        env = {"HEDGER_RPC_URL": self.chain.fork_uri, "HEDGER_ACCOUNT": self.hedger,
               **self.venue.env(self.chain), "HEDGER_JOURNAL_PATH": str(journal),
               "HEDGER_ORDER_MODE": self.chain.order_mode, **(extra or {}),
               "HEDGER_DAILY_MAX_NOTIONAL_USD": "off", "HEDGER_DAILY_MAX_GAS_ETH": "off",
               # the block-lag guard compares block time with the wall clock to catch a stale node;
               # simulated time is the scenario's, behind the wall clock at a run's start and far
               # ahead of it later, so the guard would refuse for no reason
               "HEDGER_MAX_BLOCK_LAG": "0",
               # the fork has chain id 1 (64 confirmations by default) but never reorganises:
               # re-checking every receipt each cycle would only slow the replay
               "HEDGER_CONFIRMATIONS": "0"}
        s = Settings.from_env(env, dotenv=False)
        return replace(s, policy=job.policy.params)

    def run(self, job: Job, on_step: Callable[[], None] | None = None) -> RunResult:
        self.chain.revert_to_base()
        sc = scenario(job.scenario, job.seed)
        if job.steps:
            sc = replace(sc, steps=sc.steps[: job.steps])
        sc = with_substeps(sc, self.o.substeps, job.seed)
        sc = self.o.holding.apply(sc)
        steps = list(sc.steps)
        if len(steps) < 2:
            raise ValueError(f"scenario {sc.name} has {len(steps)} steps; at least 2 are needed")
        rng = random.Random(f"traders-{job.scenario}-{job.seed}")
        chain, w3, d = self.chain, self.w3, self.d
        unit = chain.collateral_unit
        p0 = next(s.answer for s in steps if s.answer is not None)
        reserve = self.o.reserve_usd * unit
        if self.o.capital is not None:
            reserve = capital_units(self.o.capital, self.o.holding.spot + sc.lp_units_at_start,
                                    job.policy.params.hedge_ratio, p0, unit)
        self._reserve_start = reserve
        d.mint_collateral(chain, self.hedger, reserve)
        d.mint_spot(chain, self.holder, self.o.holding.spot)
        journal_path = self.o.workdir / f"sim-{os.getpid()}-{job.scenario.replace('/', '_').replace(':', '_')}-{job.seed}-{job.policy.name}.sqlite"
        for suffix in ("", "-wal", "-shm", ".lock"):
            Path(str(journal_path) + suffix).unlink(missing_ok=True)
        journal = Journal(journal_path)
        keeper = Keeper.from_settings(self.settings(job, journal_path), w3=w3, signer=self.signer, journal=journal)
        lp0 = sc.lp_units_at_start
        spot_units = self.o.holding.spot
        others = 0
        last_run_at: int | None = None
        t = last_block_ts = int(w3.eth.get_block("latest")["timestamp"])
        prev = None
        records: list[StepRecord] = []
        res = RunResult(job.scenario, job.seed, job.policy.name, records, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0,
                        reserve / unit, 0.0, {}, sc.description)
        min_wallet = reserve
        answer = p0
        lagged_since: int | None = None     # the step a still unfilled delayed order was placed
        lp_on_chain = False                 # the LP leg is a position on the venue's chain (HEDGER_LP_POSITIONS)
        settled = 0                         # carry the venue's keeper settled in fills this step
        own_native = 0                      # native token the holder's own moves cost the hedger's account
        self._native_start = int(w3.eth.get_balance(self.hedger))
        self._native_paid = 0
        try:
            for i, step in enumerate(steps):
                # 1. time
                t = max(t + step.dt, last_block_ts + 1) if i else t + 1
                chain.rpc("evm_setNextBlockTimestamp", t)
                # 2. price (an outage publishes nothing; a block still passes)
                if i == 0 or step.answer is not None:
                    answer = step.answer if step.answer is not None else answer
                    d.publish(chain, answer)
                else:
                    chain.rpc("evm_mine")
                if i == 0:
                    # the venue's set-up for this run (the others' open interest, the holder's LP position)
                    extra = d.start_run(chain, sc.skew_bias, answer, lp0)
                    if extra:
                        lp_on_chain = "HEDGER_LP_POSITIONS" in extra
                        keeper = Keeper.from_settings(self.settings(job, journal_path, extra), w3=w3,
                                                      signer=self.signer, journal=journal)
                # 3. other traders, 4. a liquidation keeper
                others = d.others(chain, rng, sc.skew_bias if step.lean is None else step.lean, others,
                                  self.o.traders)
                liquidated = 0
                if d.liquidate(chain, self.hedger, answer, prev["size"] if prev else 0):
                    res.liquidations += 1
                    if prev is not None:
                        liquidated = self._liquidation_effect(keeper, prev)
                # the hedged exposure: flows into the wallet, the LP leg as declared exposure
                if step.spot_change > 0:
                    d.mint_spot(chain, self.holder, step.spot_change)
                    spot_units += step.spot_change
                elif step.spot_change < 0:
                    # the holder's own move, not the hedger's: it pays whatever gas costs (the hedger's
                    # fee ceiling would refuse it in a gas spike)
                    native = int(w3.eth.get_balance(self.holder))
                    if not chain.send_as(self.holder_index, "ReferenceToken", d.spot, "transfer", SINK,
                                         -step.spot_change):
                        raise RuntimeError(f"the scripted outflow of step {i} reverted")
                    if self.holder == self.hedger:
                        own_native += native - int(w3.eth.get_balance(self.holder))
                    spot_units += step.spot_change
                lp = lp_units(lp0, p0, answer)
                if not lp_on_chain:
                    keeper.settings = replace(keeper.settings, extra_exposure=lp)
                # 5. gas price, 6. the keeper (the production cycle)
                chain.rpc("anvil_setNextBlockBaseFeePerGas", hex(step.base_fee))
                gas_wei, fees, n_tx, decision = 0, 0, 0, "skipped"
                # 5b. delayed orders with a fill lag: the protocol keeper fills them this many steps
                # after they were placed, at the price published then, before the hedger's next cycle
                # (an order whose acceptable price the market has since passed stays pending: the
                # protocol keeper tries again at every step until it fills or the hedger cancels it)
                if lagged_since is not None and i - lagged_since >= self.o.fill_lag:
                    filled, lag_fees, lag_carry = self._fill(keeper)
                    fees += lag_fees
                    settled += lag_carry
                    if filled or not self._pending(keeper):
                        lagged_since = None
                if due(i, t, last_run_at, job.policy, self.o.cycle_every * self.o.substeps):
                    last_run_at = t
                    cr = keeper.cycle(locked=True)
                    decision = cr.decision.code if cr.decision else cr.outcome
                    res.outcomes[cr.outcome] = res.outcomes.get(cr.outcome, 0) + 1
                    if cr.error and cr.outcome not in res.errors:
                        res.errors[cr.outcome] = f"step {i}: {cr.error}"
                    claims = [tx.tx_hash for tx in cr.sent if tx.status == 1]
                    if claims and cr.snapshot is not None:
                        settled -= d.claimed(chain, claims, self.hedger, cr.snapshot.collateral_price)
                    for tx in cr.sent:
                        if tx.gas_used is not None:
                            n_tx += 1
                            res.gas_used += tx.gas_used
                            gas_wei += tx.gas_used * (tx.effective_gas_price or 0)
                            fees += tx.fee or 0
                    # 7. delayed orders: past the minimum delay, the protocol keeper fills
                    pending = cr.snapshot is not None and any(o.in_flight for o in cr.snapshot.account.orders)
                    submitted = any(c.creates_order for c in cr.calls) and cr.outcome == "acted"
                    if chain.order_mode == "delayed" and (submitted or pending):
                        if self.o.fill_lag <= 0:
                            _, fill_fees, fill_carry = self._fill(keeper)
                            fees += fill_fees
                            settled += fill_carry
                        elif lagged_since is None:
                            lagged_since = i
                res.txs += n_tx
                res.gas_wei += gas_wei
                # 8. read the result
                now = self._read(keeper)
                min_wallet = min(min_wallet, now["wallet"])
                last_block_ts = now["block_ts"]
                exposure_units = spot_units + lp
                rec = self._record(i, steps, now, prev, exposure_units, lp0, p0, gas_wei, fees, step,
                                   keeper.settings.policy, decision, n_tx, settled, own_native, liquidated)
                settled = own_native = 0
                records.append(rec)
                res.liquidation_usd += -rec.d_liquidation
                res.fees_usd += -rec.d_fees
                res.execution_usd += -rec.d_execution
                res.funding_usd += rec.d_funding
                res.gas_usd += -rec.d_gas
                prev = {**now, "exposure": exposure_units, "spot_units": spot_units, "lp": lp,
                        "lp_value": _lp_value(lp0, p0, answer), "answer": answer, "t": t}
                if on_step:
                    on_step()
            if self.o.unwind_at_end:
                # an order still waiting out its fill lag is filled at the last price before the exit
                # (the market cancels an unfilled order only once it expires)
                end_fees = end_carry = 0
                if lagged_since is not None:
                    filled, end_fees, end_carry = self._fill(keeper)
                    if not filled and self._pending(keeper):
                        # past the acceptable price: let it expire, the feed repeating its last answer
                        # (a heartbeat), so that the exit can cancel it and close
                        head = int(w3.eth.get_block("latest")["timestamp"])
                        chain.rpc("evm_mine", head + d.expiry_s + 1)
                        d.publish(chain, answer)
                self._unwind(keeper, res, records, prev, steps, exposure_units, lp0, p0, end_fees, end_carry)
        finally:
            journal.close()
            for suffix in ("", "-wal", "-shm", ".lock"):
                Path(str(journal_path) + suffix).unlink(missing_ok=True)
        res.reserve_used_usd = (reserve - min_wallet) / unit
        return res


    def _unwind(self, keeper: Keeper, res: RunResult, records: list[StepRecord], prev: dict[str, Any] | None,
                steps: list[Step], exposure_units: int, lp0: int, p0: int, end_fees: int = 0,
                end_carry: int = 0) -> None:
        """Close the hedge through `hedger unwind`'s own path (its cycles, the executor), the
        protocol keeper filling two-step orders as in the run; its fees, fill premium and gas are
        the last record (decision ``unwind``), so every run pays its exit."""
        from hedger.cycle.unwind import unwind
        chain, w3 = self.chain, self.w3
        fills: list[tuple[int, int]] = []

        def fill(order: Any) -> None:      # instead of waiting for the protocol's keepers
            head = int(w3.eth.get_block("latest")["timestamp"])
            chain.rpc("evm_mine", head + self.venue.fill_wait_s + 1)
            for h in self.venue.fill_orders(chain, keeper.adapter, self.order_keeper, self.hedger):
                fills.append(self.venue.fill_costs(keeper.adapter, w3.eth.get_transaction_receipt(h), self.hedger))

        out = unwind(keeper, timeout=60.0, poll=0.0, say=lambda _m: None, wait=fill, locked=True)
        for c in out.cycles:
            res.outcomes[f"unwind_{c.outcome}"] = res.outcomes.get(f"unwind_{c.outcome}", 0) + 1
        if not out.done:
            res.errors.setdefault("unwind", out.message)
        res.unwound = out.done
        gas_wei = sum(t.gas_used * (t.effective_gas_price or 0) for c in out.cycles for t in c.sent
                      if t.gas_used is not None)
        fees = sum(t.fee or 0 for c in out.cycles for t in c.sent) + sum(f for f, _ in fills) + end_fees
        settled = sum(c for _, c in fills) + end_carry
        for c in out.cycles:
            own = [t.tx_hash for t in c.sent if t.status == 1]
            if own and c.snapshot is not None:
                settled -= self.venue.claimed(chain, own, self.hedger, c.snapshot.collateral_price)
        n_tx = sum(1 for c in out.cycles for t in c.sent if t.gas_used is not None)
        res.txs += n_tx
        res.gas_used += sum(t.gas_used or 0 for c in out.cycles for t in c.sent)
        res.gas_wei += gas_wei
        now = self._read(keeper)
        last = steps[-1]
        rec = self._record(len(steps) - 1, steps, now, prev, exposure_units, lp0, p0, gas_wei, fees,
                           Step(0, last.answer, last.base_fee), keeper.settings.policy, UNWIND, n_tx, settled)
        records.append(rec)
        res.fees_usd += -rec.d_fees
        res.execution_usd += -rec.d_execution
        res.funding_usd += rec.d_funding
        res.gas_usd += -rec.d_gas

    def _fill(self, keeper: Keeper) -> tuple[int, int, int]:
        """Past the minimum delay, the protocol keeper fills due orders: (orders filled, their fees,
        the carry they settled), E18 USD."""
        chain, w3 = self.chain, self.w3
        head = int(w3.eth.get_block("latest")["timestamp"])
        chain.rpc("evm_mine", head + self.venue.fill_wait_s + 1)
        hashes = self.venue.fill_orders(chain, keeper.adapter, self.order_keeper, self.hedger)
        costs = [self.venue.fill_costs(keeper.adapter, w3.eth.get_transaction_receipt(h), self.hedger)
                 for h in hashes]
        return len(hashes), sum(f for f, _ in costs), sum(c for _, c in costs)

    def _pending(self, keeper: Keeper) -> bool:
        return any(o.in_flight for o in keeper.read().account.orders)

    def _read(self, keeper: Keeper) -> dict[str, Any]:
        snap = keeper.read()
        a, m = snap.account, snap.market
        return {"size": a.size, "margin": a.margin + self.venue.extra_equity(snap), "wallet": a.collateral_wallet,
                "price": snap.oracle.price_e18, "liq": a.liquidation_price,
                "carry": self.venue.carry_state(self.chain, snap), "rate": _funding_rate(snap),
                "cprice": snap.collateral_price, "scale": 10 ** (18 - m.collateral_decimals),
                "native": int(self.w3.eth.get_balance(self.hedger)), "block_ts": snap.chain.block_timestamp}

    def _equity(self, now: dict[str, Any]) -> int:
        """The account's value on the venue and in its wallet's collateral (E18 USD), before what
        it paid in the native token beside gas."""
        return now["margin"] + now["wallet"] * now["scale"] * now["cprice"] // UNIT

    def _liquidation_effect(self, keeper: Keeper, prev: dict[str, Any]) -> int:
        """What a liquidation just sent took from the account beyond its position's loss since the
        last step (E18 USD; read right after it, before the hedger's cycle): the equity's change
        less the price move on the size held and the carry accrued. Negative: margin and fee
        forfeited; positive: a loss past the margin the venue absorbed."""
        mid = self._read(keeper)
        equity = self._equity(mid) - self._native_paid
        d_perp = prev["size"] * (mid["price"] - prev["price"]) // UNIT
        return equity - prev["equity"] - d_perp - self.venue.carry(prev["carry"], mid["carry"], 0)

    def _record(self, i: int, steps: list[Step], now: dict[str, Any], prev: dict[str, Any] | None,
                exposure: int, lp0: int, p0: int, gas_wei: int, fees: int, step: Step, params: PolicyParams,
                decision: str, n_tx: int, settled: int = 0, own_native: int = 0, liquidated: int = 0) -> StepRecord:
        """The step's record; ``liquidated``: what a liquidation in it took beyond the position's
        loss (:meth:`_liquidation_effect`), kept out of the fill premium."""
        f = lambda v: v / UNIT  # noqa: E731 - E18 to float, for the report
        price = now["price"]
        equity = self._equity(now)
        notional = abs(now["size"]) * price // UNIT
        eth_usd = price if self.o.eth_usd is None else self.o.eth_usd
        gas_usd = gas_wei * eth_usd // UNIT    # gas is paid in ETH
        # native token the account paid beyond its gas and the holder's own moves: a venue's execution
        # fees net of their refunds (GMX), as fees
        before = self._native_start if prev is None else prev["native"]
        native_fees = (before - now["native"] - gas_wei - own_native) * eth_usd // UNIT
        fees += native_fees
        # the account's value on the venue and in collateral, less what it paid in the native token
        # (beside gas) since the start: the execution fees are part of what hedging cost
        self._native_paid += native_fees
        equity -= self._native_paid
        if prev is None:
            # the opening step: no price change; the equity given up beyond the fees is the
            # fill premium (the account starts with its reserve in the wallet, no position)
            d_spot_f = 0.0
            d_perp = d_funding = 0
            d_fees = -fees
            d_exec = equity - self._reserve_start * now["scale"] * now["cprice"] // UNIT - d_fees
        else:
            d_spot_f = f(prev["spot_units"] * (price - prev["price"]) // UNIT) + (
                _lp_value(lp0, p0, price * 10**PRICE_DECIMALS // UNIT) - prev["lp_value"])
            d_perp = prev["size"] * (price - prev["price"]) // UNIT
            d_funding = self.venue.carry(prev["carry"], now["carry"], settled)
            d_equity = equity - prev["equity"]
            d_fees = -fees
            d_exec = d_equity - d_perp - d_funding - d_fees - liquidated
        hours = sum(s.dt for s in steps[1: i + 1]) / 3600
        hedge_ratio = params.hedge_ratio
        # as the policy sees it (hedger.decide.policy._funding_range): shorts pay when the rate is negative
        ranged = params.funding_min_ratio < hedge_ratio and -now["rate"] * 365 > params.funding_threshold
        liq = now["liq"]
        rec = StepRecord(
            t_hours=hours, price=f(price), exposure=f(exposure), target=-f(exposure * hedge_ratio // UNIT),
            position=f(now["size"]),
            leverage=f(notional * UNIT // now["margin"]) if notional and now["margin"] > 0 else 0.0,
            margin_ratio=(now["margin"] / notional) if notional else None,
            liq_distance=(abs(liq - price) / price) if notional and liq else None,
            d_spot=d_spot_f, d_perp_price=f(d_perp), d_funding=f(d_funding),
            d_fees=f(d_fees), d_execution=f(d_exec), d_gas=-f(gas_usd), funding_rate_yr=now["rate"] * 365 / UNIT,
            base_fee_gwei=step.base_fee / 1e9, decision=decision, txs=n_tx,
            target_low=-f(exposure * params.funding_min_ratio // UNIT) if ranged else None,
            flow=f(step.spot_change), d_liquidation=f(liquidated))
        now["equity"] = equity
        return rec


def _funding_rate(snap: Any) -> int:
    """The market's funding rate a day (E18; positive: longs pay), for the report: the venue's own
    where it has one, else what a short earns a day by the venue's model (minus its carry)."""
    rate = getattr(snap.market, "funding_rate", None)
    if rate is not None:
        return int(rate)
    from hedger.core.model import model_for
    return -model_for(snap).carry_rate_per_day(-UNIT)


# ------------------------------------------------------------------------------- process pool

_WORKER: Runner | None = None


_CHAIN: SimChain | None = None       # this worker's chain, for its SIGTERM handler


def _end_worker(signum: int, _frame: Any) -> None:
    """SIGTERM in a pool worker: kill its anvils and leave at once. Not an exception: one raised
    from a signal handler while a ``__del__`` runs is swallowed ("Exception ignored in"), and the
    worker then ran on, orphaned, with its anvils."""
    try:
        if _CHAIN is not None:
            _CHAIN.kill_nodes()
        _kill_children()              # an anvil started but not yet known to the chain (mid-start)
    finally:
        os._exit(128 + signum)


def _kill_children() -> None:
    """SIGKILL every child process of this one (Linux: found through /proc)."""
    me = os.getpid()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            if int(stat[stat.rindex(")") + 2:].split()[1]) == me:
                os.kill(int(entry), 9)
        except (OSError, ValueError, IndexError):
            continue


def _die_with_parent() -> None:
    """End this pool worker, its chains included, when the process that started it ends: Ctrl-C
    reaches every process of the terminal's group, but a `hedger simulate` killed by its PID (a
    cron timeout, `kill`) left its workers and their anvils running, orphaned. Linux's
    PR_SET_PDEATHSIG sends SIGTERM, which :func:`_end_worker` answers."""
    import signal
    signal.signal(signal.SIGTERM, _end_worker)
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)     # PR_SET_PDEATHSIG
    except (OSError, AttributeError):     # not Linux: Ctrl-C still ends the group
        return
    import multiprocessing
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:   # it ended before the signal was asked for
        os._exit(128 + signal.SIGTERM)


def _worker_init(chain_kw: dict[str, Any], options: SimOptions) -> None:
    global _WORKER, _CHAIN
    from multiprocessing import util
    _die_with_parent()
    _CHAIN = SimChain(**chain_kw)       # known to the handler before its anvils start
    chain = _CHAIN.start()
    # multiprocessing's exit hook runs in a worker under any start method; atexit does not under
    # "fork", whose children leave through os._exit
    util.Finalize(chain, chain.stop, exitpriority=10)
    _WORKER = Runner(chain, options)


def _worker_run(job: Job) -> RunResult:
    assert _WORKER is not None
    return _WORKER.run(job)


def run_jobs(jobs: list[Job], *, chain_kw: dict[str, Any] | None = None, options: SimOptions | None = None,
             workers: int = 1, progress: bool = True,
             on_result: Callable[[int, RunResult], None] | None = None) -> list[RunResult]:
    """Run ``jobs``; with ``workers`` > 1 in that many processes, each with its own chains.
    Results come back in the order of ``jobs``; ``on_result(index, result)`` is called as each
    run finishes (the results stream, hedger.sim.runstore)."""
    chain_kw = chain_kw or {}
    options = options or SimOptions()
    total = sum(_steps_of(j) for j in jobs)
    bar = _progress(total, progress)
    try:
        if workers <= 1:
            chain = SimChain(**chain_kw).start()
            try:
                runner = Runner(chain, options)
                done = []
                for i, j in enumerate(jobs):
                    done.append(runner.run(j, on_step=lambda: bar.update(1)))
                    if on_result:
                        on_result(i, done[-1])
                return done
            finally:
                chain.stop()
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        ctx = multiprocessing.get_context("spawn")
        # workers start with this process's environment: none of its secrets (the pool starts
        # them as jobs are submitted, so the environment stays scrubbed while it runs)
        with scrubbed_environ(), ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                                     initializer=_worker_init, initargs=(chain_kw, options)) as pool:
            from concurrent.futures import as_completed
            futures = {pool.submit(_worker_run, j): i for i, j in enumerate(jobs)}
            out: dict[int, RunResult] = {}
            for fut in as_completed(futures):
                i = futures[fut]
                out[i] = fut.result()
                bar.update(_steps_of(jobs[i]))
                if on_result:
                    on_result(i, out[i])
            return [out[i] for i in range(len(jobs))]
    finally:
        bar.close()


@functools.lru_cache(maxsize=64)
def scenario(name: str, seed: int) -> Scenario:
    """A scenario by name and seed, generated (or read from its CSV file) once per process:
    the progress total and every policy's run of the same seed share it (scenarios are frozen)."""
    return make(name, seed)


def _steps_of(job: Job) -> int:
    n = len(scenario(job.scenario, job.seed).steps)
    return min(n, job.steps) if job.steps else n


def _progress(total: int, enabled: bool) -> Any:
    from tqdm import tqdm
    return tqdm(total=total, unit="step", disable=not enabled, dynamic_ncols=True, leave=False)
