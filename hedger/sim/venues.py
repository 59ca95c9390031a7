"""What the simulator does on each venue: deploy it, move its market, liquidate, settle orders.

:class:`hedger.sim.simulate.Runner` replays a scenario the same way on every venue (time, the
feed's price, the other participants, liquidations, the hedger's cycle, the venue's keeper, the
closing unwind) and asks a :class:`SimVenue` for the parts that differ:

* ``reference`` (:class:`ReferenceSim`): the project's PerpsV2-shaped market; other traders
  trade against funding (:class:`TraderModel`), a liquidation keeper liquidates.
* ``gmx-v2`` (:class:`GmxSim`): the GMX-v2-shaped stand-in (``contracts/Gmx*.vy``); every change
  is an order that the stand-in's keeper executes after ``keeper_delay_s`` seconds (or
  ``fill_lag`` feed updates) at the feed's price; the others' open interest sets funding and
  borrowing; GMX's liquidation rule is asked each step; the execution fee (native token) is a fee.
* ``aave-v3`` (:class:`AaveSim`): the real Aave v3 and Uniswap v3 from their npm artifacts; a
  trader arbitrages the pool to the feed's price every step; a background borrower keeps the
  WETH reserve's utilisation at :data:`AAVE_BACKGROUND_UTILISATION`; the holder (not the signer,
  as Aave requires) holds the spot and a real full-range Uniswap v3 position as the LP leg; a
  liquidator calls ``liquidationCall`` when the health factor is below 1.

Carry (funding, borrowing, interest) is measured on chain by each venue (:meth:`SimVenue.carry`)
and reported apart from the costs of hedging. Amounts are integers; E18 USD unless named.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from web3 import Web3
from web3.logs import DISCARD

from hedger.chain.executor import TxSender
from hedger.core.types import UNIT
from hedger.sim.deploy import Deployment, MarketParams, deploy_reference, multicall_address, transact
from hedger.sim.scenarios import PRICE_DECIMALS

if TYPE_CHECKING:
    from hedger.sim.simulate import SimChain

ADMIN, HEDGER, TRADER, LIQUIDATOR, ORDER_KEEPER, HOLDER = 0, 1, 2, 3, 4, 5   # anvil dev account indexes
MAX_UINT = 2**256 - 1
RAY = 10**27
VENUES = ("reference", "gmx-v2", "aave-v3")


@dataclass(frozen=True)
class TraderModel:
    """Everyone else on the market, as one net position (E18 asset units).

    Each step they hold ``bias + noise * N(0,1) - depth * funding_rate``: a lean (the
    scenario's ``skew_bias``) plus noise, with arbitrageurs leaning against funding. With
    the market's velocity funding (rate' = skew / skewScale x maxFundingVelocity per day)
    this settles the funding rate near ``(bias + others) / depth`` per day.

    Defaults, with PerpsV2 ETH's skewScale 1,000,000 ETH and maxFundingVelocity 9/day:
    depth 1,000,000 ETH per 1.0/day of funding (0.1%/day ~ 36.5%/yr is met by 1,000 ETH of
    arbitrage) and noise 600 ETH keep the hourly rate within about +-10%/yr of its level,
    in line with the 8-11%/yr average and the 100%/yr spikes of 2021-2024
    (``../shared/MARKET-PARAMETERS.md``); a neutral market leans 300 ETH long."""

    depth: int = 1_000_000 * UNIT
    noise: int = 600 * UNIT

    def target(self, rng: random.Random, bias: int, funding_rate: int) -> int:
        noise = int(rng.gauss(0.0, 1.0) * (self.noise // UNIT)) * UNIT
        return bias + noise - self.depth * funding_rate // UNIT


class SimVenue:
    """The venue-specific part of a simulation. One instance per :class:`SimChain`.

    ``deploy`` runs on the upstream chain (before the fork); ``setup`` on the fork, before the
    base snapshot that every run starts from; the rest during a run."""

    name = "reference"
    modes: tuple[str, ...] = ("direct", "delayed")
    separate_holder = False           # the holder of the spot and LP leg is not the signing account

    oracle: str
    spot: str
    collateral: str

    def deploy(self, admin: TxSender) -> None:
        raise NotImplementedError

    def deploy_on_fork(self, chain: "SimChain", admin: TxSender) -> None:
        raise RuntimeError(f"--fork-url is not offered for --protocol {self.name} yet")

    def setup(self, chain: "SimChain") -> None:
        """The other participants' standing set-up on the fork (before the base snapshot)."""

    def env(self, chain: "SimChain") -> dict[str, str]:
        """The venue's HEDGER_* settings (no RPC URL, key or journal)."""
        raise NotImplementedError

    def start_run(self, chain: "SimChain", bias: int, answer: int, lp_units: int) -> dict[str, str]:
        """At a run's start (after the revert to the base state): extra settings for the run."""
        return {}

    def publish(self, chain: "SimChain", answer: int) -> None:
        """Publish the scenario's price (``PRICE_DECIMALS``) as the next block's feed answer."""
        chain.admin_call("PriceFeed", self.oracle, "setAnswer", answer)

    def others(self, chain: "SimChain", rng: random.Random, bias: int, others: int, traders: TraderModel) -> int:
        """Everyone else moves (one step); returns their new net position (E18)."""
        return others

    def liquidate(self, chain: "SimChain", account: str, answer: int, size: int) -> bool:
        """A liquidation keeper's turn: True when it liquidated ``account``."""
        return False

    def mint_spot(self, chain: "SimChain", to: str, amount: int) -> None:
        chain.mint(self.spot, to, amount)

    def mint_collateral(self, chain: "SimChain", to: str, amount: int) -> None:
        chain.mint(self.collateral, to, amount)

    def carry_state(self, chain: "SimChain", snap: Any) -> Any:
        """What :meth:`carry` needs from the end of a step (read after the keeper acted)."""
        return None

    def carry(self, prev: Any, now: Any, settled: int) -> int:
        """Carry (funding, borrowing, interest; E18 USD, + received) between two ``carry_state``
        readings; ``settled`` is the carry the venue's keeper settled in fills between them."""
        return 0

    def extra_equity(self, snap: Any) -> int:
        """Value (E18 USD) the account holds on the venue beside its margin (claimable funding)."""
        return 0

    def claimed(self, chain: "SimChain", tx_hashes: list[str], account: str, collateral_price: int) -> int:
        """What the account's own transactions ``tx_hashes`` claimed from the venue into its
        wallet (E18 USD): carry already counted when it became claimable."""
        return 0

    def fill_costs(self, adapter: Any, receipt: dict[str, Any], account: str) -> tuple[int, int]:
        """(fees, carry settled) of a venue keeper's fill, E18 USD, both as paid (+)."""
        return adapter.trade_fee(receipt, account) or 0, 0

    def fill_orders(self, chain: "SimChain", adapter: Any, keeper: TxSender, account: str) -> list[str]:
        """The venue's keeper fills ``account``'s due two-step orders: their transaction hashes."""
        from hedger.cycle.keeper import fill_due_orders
        return fill_due_orders(chain.w3, adapter, keeper, [account])

    @property
    def fill_wait_s(self) -> int:
        """Seconds the venue's keeper waits before it may fill an order."""
        return 0

    @property
    def expiry_s(self) -> int:
        """Seconds after which an unfilled order may be cancelled."""
        return 0


# ------------------------------------------------------------------------------------ reference

class ReferenceSim(SimVenue):
    """The reference market (``contracts/PerpMarket.vy``)."""

    name = "reference"

    def __init__(self, *, market_params: MarketParams | None = None, trader_margin_usd: int = 50_000_000,
                 oracle: str | None = None, collateral: str | None = None) -> None:
        self.market_params = market_params or MarketParams()
        self.trader_margin_usd = trader_margin_usd
        self._fork_oracle, self._fork_collateral = oracle, collateral
        self.d: Deployment | None = None

    def _use(self, d: Deployment) -> None:
        self.d = d
        self.oracle, self.spot, self.collateral, self.market = d.oracle, d.spot, d.collateral, d.market

    def deploy(self, admin: TxSender) -> None:
        self._use(deploy_reference(admin, params=self.market_params))

    def deploy_on_fork(self, chain: "SimChain", admin: TxSender) -> None:
        """On a fork of a real chain: the reference market deployed there, reusing a real
        oracle (etched so that the simulation can publish prices) and collateral when given."""
        oracle = self._fork_oracle
        if oracle is not None:
            chain.etch_feed(admin, Web3.to_checksum_address(oracle))
        self._use(deploy_reference(admin, oracle=oracle, collateral=self._fork_collateral,
                                   params=self.market_params))

    def setup(self, chain: "SimChain") -> None:
        margin = self.trader_margin_usd * chain.collateral_unit
        trader = chain.address(TRADER)
        chain.mint(self.collateral, trader, 2 * margin)
        if not (chain.send_as(TRADER, "ReferenceToken", self.collateral, "approve", self.market, MAX_UINT)
                and chain.send_as(TRADER, "PerpMarket", self.market, "transferMargin", margin)):
            raise RuntimeError(f"the simulated traders could not post margin on {self.market}")

    def env(self, chain: "SimChain") -> dict[str, str]:
        assert self.d is not None
        return {"HEDGER_MARKET": self.market, "HEDGER_ORACLE": self.oracle, "HEDGER_SPOT_TOKEN": self.spot,
                "HEDGER_COLLATERAL_TOKEN": self.collateral, "HEDGER_MULTICALL": self.d.multicall}

    def others(self, chain: "SimChain", rng: random.Random, bias: int, others: int, traders: TraderModel) -> int:
        rate = chain.view("PerpMarket", self.market, "currentFundingRate", "int256")
        want = traders.target(rng, bias, rate)
        delta = want - others
        if abs(delta) < UNIT // 100:
            return others
        bound = MAX_UINT if delta > 0 else 0
        if chain.send_as(TRADER, "PerpMarket", self.market, "modifyPosition", delta, bound):
            return want
        return others

    def liquidate(self, chain: "SimChain", account: str, answer: int, size: int) -> bool:
        return bool(chain.view("PerpMarket", self.market, "canLiquidate", "bool", account)
                    and chain.send_as(LIQUIDATOR, "PerpMarket", self.market, "liquidate", account))

    def carry_state(self, chain: "SimChain", snap: Any) -> Any:
        return snap.account.size, chain.view("PerpMarket", self.market, "fundingIndex", "int256")

    def carry(self, prev: Any, now: Any, settled: int) -> int:
        # funding accrues to the position held through the step: size x the index's change
        return prev[0] * (now[1] - prev[1]) // UNIT

    @property
    def fill_wait_s(self) -> int:
        return self.market_params.minOrderDelay

    @property
    def expiry_s(self) -> int:
        return self.market_params.maxOrderDelay


# ------------------------------------------------------------------------------------- GMX v2

GMX_FLOAT = 10**30
GMX_OTHERS_BASE = 1_000 * UNIT        # others' open interest on each side beside their lean (E18 asset)


class GmxSim(SimVenue):
    """GMX v2 through the stand-in (``hedger.sim.gmx_standin``): orders only, executed by the
    stand-in's keeper ``keeper_delay_s`` after creation at the feed's price.

    The other traders are GMX's open interest: :data:`GMX_OTHERS_BASE` on each side plus the
    scenario's lean (``skew_bias``, E18 asset) on its side, at the run's first price, written where
    GMX keeps it, so that longs pay funding to shorts as on GMX when longs dominate (about 8%/yr
    at the stand-in's funding factor and a 300 ETH lean), and both sides pay borrowing. The lean
    is set once a run: the others do not trade against funding here."""

    name = "gmx-v2"
    modes = ("delayed",)

    def __init__(self, *, keeper_delay_s: int = 2, params: Any = None, gmx_deployment: str | None = None,
                 gmx_market: str | None = None, gmx_fork_options: dict[str, Any] | None = None) -> None:
        self.keeper_delay_s = keeper_delay_s
        self.params = params
        self.d: Deployment | None = None
        self.s: Any = None
        # fork mode (--fork-url --gmx-deployment): GMX's deployed contracts, driven by hedger.sim.gmx_fork
        self.deployment = gmx_deployment
        self.fork_market = gmx_market
        self.fork_options = gmx_fork_options or {}
        self.fk: Any = None
        self._expiry: int | None = None

    def deploy_on_fork(self, chain: "SimChain", admin: TxSender) -> None:
        """GMX's own deployment on a fork of its chain (unverified: needs an RPC URL of it):
        :func:`hedger.sim.gmx_fork.setup` impersonates an order keeper and a controller, prices the
        market's tokens through GMX's ChainlinkPriceFeedProvider and makes its feeds settable."""
        from hedger.sim import gmx_fork as gf
        if self.deployment is None:
            raise RuntimeError("--fork-url with --protocol gmx-v2 needs --gmx-deployment")
        market = self.fork_market or gf.DEFAULT_MARKETS.get(self.deployment)
        if market is None:
            raise RuntimeError(f"no default GMX market for {self.deployment}: give --gmx-market")
        self.fork_market = Web3.to_checksum_address(market)
        self.fk = gf.setup(chain.w3, self.deployment, admin, self.fork_market, **self.fork_options)
        tokens = self.fk.tokens
        self.spot, self.collateral = tokens[0], tokens[-1]     # the index token, the short token (USDC)
        self.oracle = self.fk.feeds[self.spot]
        # the chain's canonical Multicall3 when it has one (Arbitrum does); the project's own (Vyper,
        # answers up to 640 bytes a call) cannot carry GMX's Reader answers: JSON-RPC batches then
        from hedger.chain.reader import CANONICAL_MULTICALL3
        self.multicall = CANONICAL_MULTICALL3 if len(chain.w3.eth.get_code(CANONICAL_MULTICALL3)) else ""

    def deploy(self, admin: TxSender) -> None:
        from hedger.sim.gmx_standin import GmxParams, deploy_gmx_standin
        d = deploy_reference(admin)
        keepers = tuple(Web3.to_checksum_address(_dev(i)) for i in (ORDER_KEEPER, LIQUIDATOR))
        # a pool of GMX's size (tens of $M a side): borrowing at about 20%/yr for the side a hedge is on
        params = self.params or GmxParams(pool_liquidity_usdc=30_000_000, pool_amount_long_token=10_000 * UNIT)
        s = deploy_gmx_standin(admin, params=params, usdc=d.collateral, keepers=keepers)
        transact(admin, "ReferenceToken", d.collateral, "mint", s.position_engine,
                 params.pool_liquidity_usdc * 10**6)
        self.d, self.s = d, s
        self.oracle, self.spot, self.collateral = d.oracle, d.spot, d.collateral

    def env(self, chain: "SimChain") -> dict[str, str]:
        if self.fk is not None:
            return {"HEDGER_PROTOCOL": "gmx-v2", "HEDGER_MARKET": self.fork_market, "HEDGER_ORACLE": self.oracle,
                    "HEDGER_SPOT_TOKEN": self.spot, "HEDGER_COLLATERAL_TOKEN": self.collateral,
                    "HEDGER_GMX_EXCHANGE_ROUTER": self.fk.fork.exchange_router,
                    "HEDGER_GMX_READER": self.fk.fork.reader,
                    **({"HEDGER_MULTICALL": self.multicall} if self.multicall else {})}
        assert self.d is not None and self.s is not None
        return {"HEDGER_PROTOCOL": "gmx-v2", "HEDGER_MARKET": self.s.market, "HEDGER_ORACLE": self.oracle,
                "HEDGER_SPOT_TOKEN": self.spot, "HEDGER_COLLATERAL_TOKEN": self.collateral,
                "HEDGER_GMX_EXCHANGE_ROUTER": self.s.exchange_router, "HEDGER_GMX_READER": self.s.reader}

    def publish(self, chain: "SimChain", answer: int) -> None:
        if self.fk is not None:
            self.fk.publish(self.spot, answer)
        else:
            super().publish(chain, answer)

    def fill_orders(self, chain: "SimChain", adapter: Any, keeper: TxSender, account: str) -> list[str]:
        if self.fk is None:
            return super().fill_orders(chain, adapter, keeper, account)
        from hedger.sim import gmx_fork as gf
        return [Web3.to_hex(self.fk.execute(key)["transactionHash"])
                for key in gf.pending_order_keys(chain.w3, self.fk.fork, account)]

    def start_run(self, chain: "SimChain", bias: int, answer: int, lp_units: int) -> dict[str, str]:
        if self.fk is not None:
            return {}           # a real market: its own traders' open interest
        from hedger.protocols.gmx_v2 import interface as gi
        s = self.s
        longs = GMX_OTHERS_BASE + max(bias, 0)
        shorts = GMX_OTHERS_BASE + max(-bias, 0)
        price = answer * 10**(18 - PRICE_DECIMALS)                 # E18 USD per asset unit
        # accrual starts now (a market never updated would accrue the open interest since time 0)
        head = int(chain.w3.eth.get_block("latest")["timestamp"])
        for key in (gi.funding_updated_at_key(s.market), gi.cumulative_borrowing_factor_updated_at_key(s.market, True),
                    gi.cumulative_borrowing_factor_updated_at_key(s.market, False)):
            chain.admin_call("GmxDataStore", s.data_store, "setUint", key, head)
        for is_long, tokens in ((True, longs), (False, shorts)):
            usd = tokens * price // UNIT * (GMX_FLOAT // UNIT)
            # backed by USDC as the hedge is: the funding they pay is claimable in USDC
            for key, value in ((gi.open_interest_key(s.market, s.usdc, is_long), usd),
                               (gi.open_interest_in_tokens_key(s.market, s.usdc, is_long), tokens)):
                chain.admin_call("GmxDataStore", s.data_store, "setUint", key, value)
        return {}

    def _index_price(self, answer: int) -> int:
        # GMX's price unit: USD x 1e30 per smallest unit of the 18-decimal index token
        return answer * 10**(30 - PRICE_DECIMALS - 18)

    def liquidate(self, chain: "SimChain", account: str, answer: int, size: int) -> bool:
        from hedger.chain.abi import contract_artifact
        from hedger.protocols.gmx_v2 import interface as gi
        if size == 0 or self.fk is not None:     # on a fork: GMX's LiquidationHandler is not driven
            return False
        s = self.s
        price = self._index_price(answer)
        coll = GMX_FLOAT // 10**6
        zero = b"\x00" * 32
        acct = Web3.to_checksum_address(account)
        params = (zero, acct, acct, s.market, s.usdc, s.wnt, s.usdc, size > 0, gi.LIQUIDATION, 0, 0, 0,
                  price, price, coll, coll, coll, coll)
        c = chain.w3.eth.contract(address=s.position_engine, abi=contract_artifact("GmxPositionEngine")["abi"])
        data = c.functions.liquidatePosition(params)._encode_transaction_data()
        # GMX's rule decides: the call reverts (PositionShouldNotBeLiquidated) while the position is safe
        probe = chain.w3.provider.make_request("eth_call", [{"from": chain.address(LIQUIDATOR),
                                                              "to": s.position_engine, "data": data}, "latest"])
        if "error" in probe:
            return False
        return chain.send_data(LIQUIDATOR, s.position_engine, data)

    def carry_state(self, chain: "SimChain", snap: Any) -> Any:
        # the carry owed by the position (pending borrowing and funding) and the funding it may claim
        m = snap.market
        owed = m.pending_borrowing_usd // 10**12 + m.pending_funding_amount * _scale(m) * snap.collateral_price // UNIT
        claimable = self.extra_equity(snap)
        return claimable - owed, snap.collateral_price

    def carry(self, prev: Any, now: Any, settled: int) -> int:
        return now[0] - prev[0] - settled

    def extra_equity(self, snap: Any) -> int:
        m = snap.market
        claim = m.claimable_funding_amount + sum(a for _, a in m.claimable_collateral)
        return claim * _scale(m) * snap.collateral_price // UNIT

    def claimed(self, chain: "SimChain", tx_hashes: list[str], account: str, collateral_price: int) -> int:
        # claims pay out of the pool (the stand-in's position engine) by an ERC20 transfer; a cancelled
        # order's refund comes from the order vault, and fills are the keeper's transactions
        from hedger.chain.abi import load_abi
        token = chain.w3.eth.contract(address=self.collateral, abi=load_abi("ERC20"))
        # on GMX itself the pool (the market token) pays claims
        engine = self.fork_market if self.fk is not None else self.s.position_engine
        me = Web3.to_checksum_address(account)
        units = 0
        for h in tx_hashes:
            receipt = chain.w3.eth.get_transaction_receipt(h)
            for ev in token.events.Transfer().process_receipt(receipt, errors=DISCARD):
                if ev["address"] == self.collateral and ev["args"]["from"] == engine and ev["args"]["to"] == me:
                    units += int(ev["args"]["value"])
        return units * 10**12 * collateral_price // UNIT

    def fill_costs(self, adapter: Any, receipt: dict[str, Any], account: str) -> tuple[int, int]:
        costs = adapter.fill_costs(receipt, account)
        return (0, 0) if costs is None else costs

    @property
    def fill_wait_s(self) -> int:
        return self.keeper_delay_s

    @property
    def expiry_s(self) -> int:
        if self.fk is not None:
            if self._expiry is None:
                from hedger.chain.abi import load_abi
                from hedger.protocols.gmx_v2 import interface as gi
                ds = self.fk.w3.eth.contract(address=self.fk.fork.data_store, abi=load_abi("gmx-v2/DataStore"))
                self._expiry = int(ds.functions.getUint(gi.REQUEST_EXPIRATION_TIME).call())
            return self._expiry
        from hedger.sim.gmx_standin import GmxParams
        return (self.params or GmxParams()).request_expiration_time


def _scale(market: Any) -> int:
    return 10 ** (18 - market.collateral_decimals)


def _dev(index: int) -> str:
    from hedger.sim.localchain import dev_account
    return dev_account(index).address


# -------------------------------------------------------------------------------------- Aave v3

AAVE_BACKGROUND_UTILISATION = 70      # % of the WETH reserve borrowed by others at the start
LP_TICK_SPACING = 10                   # the 0.05% pool's


class AaveSim(SimVenue):
    """Aave v3 and Uniswap v3 from the publishers' npm artifacts (``hedger.sim.aave_uniswap``).

    Standing set-up: a background borrower supplies USDC and borrows
    :data:`AAVE_BACKGROUND_UTILISATION` % of the WETH reserve (20,000 WETH), so that the hedge
    pays the reserve's variable rate at that utilisation (Aave's live WETH curve: 2.1%/yr at 70%);
    the USDC reserve is not borrowed (its supply rate is 0: the collateral earns nothing here).
    The Uniswap pool holds a full-range position of 50,000 WETH; a trader swaps it back to the
    feed's price every step (after the hedger's own swaps moved it). The holder holds the spot
    and the LP leg, as a full-range Uniswap v3 position of its own (``HEDGER_LP_POSITIONS``)."""

    name = "aave-v3"
    modes = ("direct",)
    separate_holder = True

    def __init__(self, *, asset_is_token0: bool = False) -> None:
        self.asset_is_token0 = asset_is_token0
        self.d: Any = None
        self.multicall = ""

    def deploy(self, admin: TxSender) -> None:
        from hedger.sim.aave_uniswap import deploy_aave_uniswap
        self.d = deploy_aave_uniswap(admin.w3, sender=admin, asset_is_token0=self.asset_is_token0)
        self.multicall = multicall_address(admin)
        self.oracle, self.spot, self.collateral = self.d.weth_feed, self.d.weth, self.d.usdc

    def _art(self, name: str) -> Any:
        from hedger.sim.aave_uniswap import artifact
        return artifact(name)

    def _call(self, chain: "SimChain", index: int, art: str, to: str, fn: str, *args: Any) -> bool:
        c = chain.w3.eth.contract(address=Web3.to_checksum_address(to), abi=self._art(art).abi)
        return chain.send_data(index, to, getattr(c.functions, fn)(*args)._encode_transaction_data())

    def _mint(self, chain: "SimChain", token: str, to: str, amount: int) -> None:
        art = "WETH9Mocked" if token == self.d.weth else "MintableERC20"
        if not self._call(chain, ADMIN, art, token, "mint", to, amount):
            raise RuntimeError(f"minting {amount} of {token} reverted")

    def mint_spot(self, chain: "SimChain", to: str, amount: int) -> None:
        self._mint(chain, self.d.weth, to, amount)

    def mint_collateral(self, chain: "SimChain", to: str, amount: int) -> None:
        self._mint(chain, self.d.usdc, to, amount)

    def setup(self, chain: "SimChain") -> None:
        d = self.d
        trader = chain.address(TRADER)
        borrow = 20_000 * UNIT * AAVE_BACKGROUND_UTILISATION // 100
        collateral = 100_000_000 * 10**6        # $100M of USDC behind $42M of WETH borrowed
        self._mint(chain, d.usdc, trader, collateral)
        ok = (self._call(chain, TRADER, "MintableERC20", d.usdc, "approve", d.pool, collateral)
              and self._call(chain, TRADER, "Pool", d.pool, "supply", d.usdc, collateral, trader, 0)
              and self._call(chain, TRADER, "Pool", d.pool, "borrow", d.weth, borrow, 2, 0, trader))
        if not ok:
            raise RuntimeError("the background borrower could not borrow WETH on the simulated Aave")

    def env(self, chain: "SimChain") -> dict[str, str]:
        env = {k: v for k, v in self.d.hedger_env().items() if k != "HEDGER_SECOND_ORACLE"}
        return {**env, "HEDGER_PROTOCOL": "aave-v3", "HEDGER_HOLDER": chain.address(HOLDER),
                "HEDGER_MULTICALL": self.multicall}

    def start_run(self, chain: "SimChain", bias: int, answer: int, lp_units: int) -> dict[str, str]:
        """The holder's LP leg: a full-range position holding ``lp_units`` of the asset (and the
        USDC to match) at the run's first price, minted through the position manager."""
        if lp_units <= 0:
            return {}
        d = self.d
        holder = chain.address(HOLDER)
        usdc = lp_units * answer // 10**PRICE_DECIMALS // 10**12 + 1
        self.mint_spot(chain, holder, lp_units)
        self._mint(chain, d.usdc, holder, usdc)
        for token, amount in ((d.weth, lp_units), (d.usdc, usdc)):
            if not self._call(chain, HOLDER, "MintableERC20", token, "approve", d.position_manager, amount):
                raise RuntimeError("the holder's approval for its LP position reverted")
        top = 887272 // LP_TICK_SPACING * LP_TICK_SPACING
        amounts = (lp_units, usdc) if d.asset_is_token0 else (usdc, lp_units)
        npm = chain.w3.eth.contract(address=d.position_manager, abi=self._art("NonfungiblePositionManager").abi)
        head = int(chain.w3.eth.get_block("latest")["timestamp"])
        data = npm.functions.mint((d.token0, d.token1, d.fee, -top, top, amounts[0], amounts[1], 0, 0, holder,
                                   head + 3600))._encode_transaction_data()
        if not chain.send_data(HOLDER, d.position_manager, data):
            raise RuntimeError("minting the holder's LP position reverted")
        n = int(npm.functions.balanceOf(holder).call())
        token_id = int(npm.functions.tokenOfOwnerByIndex(holder, n - 1).call())
        return {"HEDGER_LP_POSITIONS": f"{d.position_manager}:{token_id}"}

    def publish(self, chain: "SimChain", answer: int) -> None:
        """The WETH feed's new answer, then the trader swaps the pool to it (the hedger's own swaps
        and the price's move left it elsewhere)."""
        from hedger.sim.aave_uniswap import arbitrage_pool, set_prices
        set_prices(self._sender(chain, ADMIN), self.d, answer)
        arbitrage_pool(self._sender(chain, TRADER), self.d, answer)

    def _sender(self, chain: "SimChain", index: int) -> TxSender:
        from hedger.sim.aave_uniswap import _sender
        return _sender(chain.w3, index)

    def liquidate(self, chain: "SimChain", account: str, answer: int, size: int) -> bool:
        d = self.d
        pool = chain.w3.eth.contract(address=d.pool, abi=self._art("Pool").abi)
        hf = int(pool.functions.getUserAccountData(Web3.to_checksum_address(account)).call()[5])
        if hf >= UNIT:
            return False
        liquidator = chain.address(LIQUIDATOR)
        debt_token = chain.w3.eth.contract(address=d.variable_debt_weth, abi=self._art("MintableERC20").abi)
        debt = int(debt_token.functions.balanceOf(Web3.to_checksum_address(account)).call())
        self._mint(chain, d.weth, liquidator, debt)
        return (self._call(chain, LIQUIDATOR, "MintableERC20", d.weth, "approve", d.pool, debt)
                and self._call(chain, LIQUIDATOR, "Pool", d.pool, "liquidationCall", d.usdc, d.weth,
                               Web3.to_checksum_address(account), MAX_UINT, False))

    def carry_state(self, chain: "SimChain", snap: Any) -> Any:
        m, a = snap.market, snap.account
        return a.scaled_debt, m.debt_index, a.supplied, m.supply_index, snap.oracle.price_e18, snap.collateral_price, \
            m.collateral_decimals

    def carry(self, prev: Any, now: Any, settled: int) -> int:
        """Interest over the step on what was held through it: the debt's growth (asset, at the
        step's end price) paid, the collateral's growth (aToken) earned, from Aave's indices."""
        scaled_debt, debt_index, supplied, supply_index, _, _, dec = prev
        _, debt_index_now, _, supply_index_now, price, cprice, _ = now
        paid = scaled_debt * (debt_index_now - debt_index) // RAY * price // UNIT
        earned_units = supplied * supply_index_now // supply_index - supplied if supply_index else 0
        earned = earned_units * 10**(18 - dec) * cprice // UNIT
        return earned - paid


def make_venue(name: str, **kw: Any) -> SimVenue:
    if name == "reference":
        return ReferenceSim(**{k: v for k, v in kw.items() if k in ("market_params", "oracle", "collateral",
                                                                     "trader_margin_usd")})
    if name == "gmx-v2":
        return GmxSim(**{k: v for k, v in kw.items() if k in ("keeper_delay_s", "params", "gmx_deployment",
                                                               "gmx_market", "gmx_fork_options")})
    if name == "aave-v3":
        return AaveSim(**{k: v for k, v in kw.items() if k in ("asset_is_token0",)})
    raise ValueError(f"unknown protocol {name!r}: choose one of {', '.join(VENUES)}")
