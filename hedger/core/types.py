"""Plain data that flows through a cycle: readings, decisions, plans.

Money is integers. ``Native`` amounts are in a token's own decimals; ``E18``
values are 18-decimal fixed point (sizes in asset units, USD values, prices,
fractions such as leverage 2.0 == 2 * 10**18). Conversions happen once, at
the edge (``fixedpoint``); floats appear only in reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NewType

Wei = NewType("Wei", int)
Native = NewType("Native", int)
E18 = NewType("E18", int)
Timestamp = NewType("Timestamp", int)

UNIT = 10**18


@dataclass(frozen=True)
class FeedRound:
    """One ``latestRoundData`` answer, untouched, with the feed's decimals."""

    address: str
    decimals: int
    round_id: int
    answer: int
    started_at: int
    updated_at: int
    description: str = ""

    @property
    def price_e18(self) -> int:
        return self.answer * 10 ** (18 - self.decimals) if self.decimals <= 18 else self.answer // 10 ** (self.decimals - 18)


@dataclass(frozen=True)
class ChainView:
    """Where and when a cycle read: the latest block, and the wall clock for the lag guard."""

    chain_id: int
    block_number: int
    block_timestamp: int
    wall_clock: int
    genesis_hash: str = ""
    account_nonce: int | None = None   # the hedged account's mined transaction count
    account_balance: int | None = None # the hedged account's native balance (wei), for gas


@dataclass(frozen=True, kw_only=True)
class MarketState:
    """What every venue's market reading says, E18: where it is, the price it values positions at,
    and its collateral's decimals. Each venue extends it with its own parameters (the reference
    market's PerpsV2 list: ``hedger.protocols.reference.model.ReferenceMarketState``), which only
    its adapter and its market model read."""

    address: str
    price: int                 # the market's own price (its feed), E18
    price_invalid: bool
    collateral_decimals: int
    two_step: bool             # True when orders are submitted and filled later
    feed: str | None = None    # the price feed the market itself reads, when it tells


class OrderState(StrEnum):
    """Where a venue's order stands, as the venue reports it (never inferred from our own
    transaction: a mined transaction that created an order is not a fill)."""

    PENDING = "pending"        # submitted, waiting for the venue's keeper
    EXECUTED = "executed"      # filled: the position (or collateral) moved by it
    CANCELLED = "cancelled"    # cancelled by the venue (acceptable price missed) or by its owner: re-plan
    EXPIRED = "expired"        # past its expiry unfilled: it can only be cancelled (by its key)
    FROZEN = "frozen"          # the venue froze it (GMX limit orders): the operator decides


class OrderKind(StrEnum):
    """What an order does. GMX v2 names them by order type and size (MarketIncrease / MarketDecrease,
    with ``sizeDeltaUsd`` 0 for a collateral-only one); the reference market's delayed orders change
    size only (its collateral moves directly)."""

    INCREASE = "increase"              # grows the position (may carry collateral in)
    DECREASE = "decrease"              # reduces (or closes, or crosses) the position (may take collateral out)
    COLLATERAL_IN = "collateral_in"    # deposits collateral, size unchanged
    COLLATERAL_OUT = "collateral_out"  # withdraws collateral, size unchanged

    @property
    def changes_size(self) -> bool:
        return self in (OrderKind.INCREASE, OrderKind.DECREASE)

    @staticmethod
    def for_size(size: int, size_delta: int) -> "OrderKind":
        """The kind of an order of ``size_delta`` on a position of ``size`` (E18, signed)."""
        return OrderKind.INCREASE if size == 0 or (size > 0) == (size_delta > 0) else OrderKind.DECREASE


@dataclass(frozen=True)
class Order:
    """One of the account's orders at the venue. ``key`` is the venue's: a bytes32 as 0x-hex on
    GMX v2; the reference market keeps one delayed order per account, keyed by the account."""

    key: str
    kind: OrderKind
    size_delta: int            # E18, signed (0 for a collateral-only order)
    collateral_delta: int      # Native units of the collateral token: + in, - out
    acceptable_price: int      # E18: the worst fill the order accepts (the desired fill price)
    submitted_at: int
    executable_at: int
    expires_at: int            # chain time after which it can no longer fill (0: never)
    state: OrderState = OrderState.PENDING

    def expired_at(self, now: int) -> bool:
        """Past its expiry at chain time ``now`` (or reported expired by the venue)."""
        return self.state is OrderState.EXPIRED or (self.expires_at != 0 and now > self.expires_at)

    @property
    def in_flight(self) -> bool:
        """Still able to change the account: pending, expired (until cancelled) or frozen."""
        return self.state not in (OrderState.EXECUTED, OrderState.CANCELLED)


@dataclass(frozen=True)
class AccountState:
    """The hedging account on the market and in its wallet."""

    address: str
    size: int                  # E18, signed; negative is short
    margin: int                # remaining margin (margin + PnL + funding), E18
    accessible_margin: int     # withdrawable without breaching initial margin, E18
    liquidation_price: int     # E18, 0 without a position
    accrued_funding: int       # E18, signed
    pnl: int                   # E18, signed
    orders: tuple[Order, ...]  # the account's orders at the venue (two-step markets), any state
    collateral_wallet: int     # Native units of the collateral token in the wallet
    collateral_allowance: int  # Native units the market may pull


@dataclass(frozen=True)
class Exposure:
    """Spot exposure to hedge: the holder's balance, the asset its Uniswap v3 positions hold, and a
    declared extra amount held elsewhere."""

    spot_balance: int          # Native units of the spot token
    spot_decimals: int
    extra: int                 # E18 asset units (HEDGER_EXTRA_EXPOSURE)
    lp: int = 0                # Native units of the spot token in HEDGER_LP_POSITIONS (principal + owed fees)

    @property
    def total(self) -> int:
        """Total exposure in E18 asset units."""
        d = self.spot_decimals
        held = self.spot_balance + self.lp
        bal = held * 10 ** (18 - d) if d <= 18 else held // 10 ** (d - 18)
        return bal + self.extra


@dataclass(frozen=True)
class CollateralToken:
    """The token posted as collateral: what it is, what it is worth, and who may pull it."""

    address: str
    decimals: int
    spender: str               # the contract approved to pull it (the market; GMX v2: its Router)
    symbol: str = ""           # "" when the token has no readable symbol()
    feed: str | None = None    # a USD price feed of it (HEDGER_COLLATERAL_FEED); None: a USD stablecoin at 1.0

    @property
    def price_source(self) -> str:
        return f"price feed {self.feed}" if self.feed else "declared USD stablecoin (1.0)"


@dataclass(frozen=True)
class CollateralStatus:
    """USDC-style faults of the collateral token (None: the token has no such switch)."""

    paused: bool | None = None
    account_blacklisted: bool | None = None
    market_blacklisted: bool | None = None

    @property
    def can_move(self) -> bool:
        """Deposits and withdrawals can go through (both move the token between account and market)."""
        return not (self.paused or self.account_blacklisted or self.market_blacklisted)

    def problem(self) -> str | None:
        if self.paused:
            return "the collateral token is paused"
        if self.account_blacklisted:
            return "the collateral token blacklists the hedged account"
        if self.market_blacklisted:
            return "the collateral token blacklists the market"
        return None


@dataclass(frozen=True)
class DailyBudget:
    """Today's room under the operator's daily limits (UTC day of chain time)."""

    notional_left: int | None      # E18 USD that may still be traded today (None: no limit)
    gas_left: int | None           # wei of gas that may still be spent today (None: no limit)

    def blocks(self, trade_notional: int) -> str | None:
        """Why a risk-increasing action of ``trade_notional`` (0 for a withdrawal) must wait, or None."""
        if self.gas_left is not None and self.gas_left <= 0:
            return "daily gas limit reached (HEDGER_DAILY_MAX_GAS_ETH)"
        if self.notional_left is not None and trade_notional > self.notional_left:
            return (f"daily notional limit: ${trade_notional / 10**18:,.2f} more would pass what is left today, "
                    f"${max(self.notional_left, 0) / 10**18:,.2f} (HEDGER_DAILY_MAX_NOTIONAL_USD)")
        return None


@dataclass(frozen=True)
class Snapshot:
    """Everything one cycle read, at one block. The policy decides on this alone."""

    chain: ChainView
    oracle: FeedRound
    sequencer: FeedRound | None
    market: MarketState
    account: AccountState
    exposure: Exposure
    last_rebalance_at: int | None = None   # chain time of the last action, from the journal
    reference_price: int | None = None     # E18, an independent second price source, if any
    reference_source: str = "none"         # "feed 0x..", "market feed 0x..", or "none"
    reference_problem: str | None = None   # the second source exists but is unusable
    collateral_status: CollateralStatus = field(default_factory=CollateralStatus)
    daily: "DailyBudget | None" = None      # what today's limits still allow (None: no limits)
    venue: str = "reference"               # the protocol read; its market model answers the policy
    collateral_price: int = UNIT           # E18 USD per whole collateral token (1.0: a declared USD stablecoin)
    collateral_feed: FeedRound | None = None   # the round collateral_price came from (HEDGER_COLLATERAL_FEED)


@dataclass(frozen=True)
class PolicyParams:
    """Policy parameters (E18 fractions / USD unless named). Defaults are documented in the README."""

    hedge_ratio: int = UNIT                      # 1.0
    band: int = 5 * UNIT // 100                  # 5% of the target
    min_trade_usd: int = 50 * UNIT
    max_trade_usd: int = 250_000 * UNIT          # per cycle; larger moves split across cycles
    max_slippage: int = 5 * UNIT // 1000         # 0.5% on the fill price
    target_leverage: int = 2 * UNIT
    max_leverage: int = 3 * UNIT                 # top up above this
    min_leverage: int = 3 * UNIT // 2            # withdraw excess below this
    liquidation_buffer: int = 25 * UNIT // 100   # top up when liquidation is within 25% of the price
    min_collateral_usd: int = 10 * UNIT          # skip smaller collateral moves (unless needed for safety)
    # the collateral band as liquidation distances (E18 fractions of the price) set directly; None:
    # the edge is the distance the venue's model gives the matching leverage above
    min_liq_distance: int | None = None          # floor: top up below it (in place of max_leverage)
    target_liq_distance: int | None = None       # top-ups and withdrawals aim here (target_leverage)
    max_liq_distance: int | None = None          # ceiling: withdraw above it (in place of min_leverage)
    cooldown_s: int = 900
    oracle_max_age_s: int = 3600
    sequencer_grace_s: int = 3600
    max_block_lag_s: int = 0                     # 0 = guard off (local chains)
    max_price_divergence: int = 2 * UNIT // 100  # 2%: refuse risk-increasing actions beyond it
    # funding-aware range: while shorts pay funding above ``funding_threshold`` a year, the hedge
    # ratio may sit anywhere in [funding_min_ratio, hedge_ratio]; equal to hedge_ratio = off
    funding_min_ratio: int = UNIT
    funding_threshold: int = 10 * UNIT // 100    # 10% a year
    # what the venue holds for the account to claim (GMX v2: funding received, capped price
    # impact) is claimed once worth at least this much (E18 USD): a claim costs a transaction
    min_claim_usd: int = 5 * UNIT


class DecisionKind(StrEnum):
    HOLD = "hold"          # nothing to do, on purpose
    REBALANCE = "rebalance"
    REFUSE = "refuse"      # a guard refused the readings; nothing may be sent


class RefusalKind(StrEnum):
    ORACLE = "oracle"
    SEQUENCER = "sequencer"
    CHAIN = "chain"
    ACCOUNT = "account"


@dataclass(frozen=True)
class Decision:
    """What the policy wants, and why. Every decision carries its reason."""

    kind: DecisionKind
    reason: str
    code: str                              # short machine-readable reason, e.g. "within_band"
    target_size: int = 0                   # E18, signed
    size_delta: int = 0                    # E18, signed
    margin_delta: int = 0                  # Native collateral units: + deposit, - withdraw
    cancel_order: bool = False
    order_key: str = ""                    # the venue's key of the order to cancel
    expected_fill_price: int = 0           # E18
    expected_fee: int = 0                  # E18 USD, trading fee + keeper fee
    leverage_before: int = 0               # E18
    leverage_after: int = 0                # E18
    liquidation_distance_after: int = 0    # E18 fraction of the price
    refusal: RefusalKind | None = None
    # E18 USD the venue holds for the account to claim, claimed by this cycle (0: no claim)
    claim_usd: int = 0
    # a deposit is risk-reducing only when the position as it stands (or a two-step order already
    # submitted, which cannot be withdrawn) needs it; collateral that funds a bigger hedge is not
    deposit_risk_reducing: bool = False
    # a trade that crosses zero is sent as two legs (close, then open the other side): their
    # expected fills, E18 (empty otherwise: the one leg fills at ``expected_fill_price``)
    leg_fill_prices: tuple[int, ...] = ()

    @property
    def acts(self) -> bool:
        return self.kind is DecisionKind.REBALANCE and (
            self.size_delta != 0 or self.margin_delta != 0 or self.cancel_order)


class ActionKind(StrEnum):
    DEPOSIT = "deposit"
    WITHDRAW = "withdraw"
    TRADE = "trade"
    CANCEL_ORDER = "cancel_order"
    CLAIM = "claim"          # collect what the venue holds for the account (GMX v2: claimFundingFees, claimCollateral)


@dataclass(frozen=True)
class Action:
    """One protocol-level step of a plan, before it is turned into calls."""

    kind: ActionKind
    amount: int                 # Native collateral for deposit/withdraw; E18 size delta for trade
    price_bound: int = 0        # E18 desired fill price for a trade (worst acceptable)
    risk_reducing: bool = False
    note: str = ""
    order_key: str = ""         # CANCEL_ORDER: the venue's key of the order


@dataclass(frozen=True)
class Plan:
    decision: Decision
    actions: tuple[Action, ...] = ()


@dataclass(frozen=True)
class Call:
    """One transaction to send: a contract function with its arguments, and what it does in the
    venue-neutral terms the journal, reconciliation and report read (never the function name)."""

    to: str
    contract: str               # a readable name: "market", "collateral"
    function: str               # e.g. "transferMargin"
    args: tuple[Any, ...]
    data: str                   # ABI-encoded call data, 0x-hex
    action: ActionKind
    risk_reducing: bool
    value: int = 0
    note: str = ""
    notional_usd: int = 0       # E18 USD moved or traded, for the per-action cap
    leg: str = "main"           # "main": the action itself; "approve": a step that only prepares it
    amount: int = 0             # the action's amount: E18 size delta (trade), Native collateral (+ in, - out)
    creates_order: bool = False # mined means submitted: the venue's keeper fills it later (or not)
    action_index: int = 0       # which of the plan's actions this call is a leg of
    order_key: str = ""         # the venue's key of the order it creates or cancels, when known before
                                # it is mined ("": learned from the venue's order list at reconciliation)

    def describe(self) -> str:
        """``contract(address).function(args)``, bytes arguments (GMX v2's encoded multicall legs) whole, as 0x-hex."""
        args = ", ".join(str(_hex_bytes(a, short=False)) for a in self.args)
        return f"{self.contract}({self.to}).{self.function}({args})"

    def args_text(self) -> str:
        """The arguments as a tuple's repr (``(15018149910,)``), a bytes argument as its 0x-hex, shortened
        past 32 bytes to its first four and its length: for a line about a sent transaction, whose hash
        identifies the data."""
        return repr(_hex_bytes(tuple(self.args), short=True))


class _Hex:
    """A bytes value printed as 0x-hex (``repr`` of a list or tuple holding it prints it so too)."""

    def __init__(self, value: bytes, short: bool) -> None:
        h = "0x" + bytes(value).hex()
        self.text = f"{h[:10]}...({len(value)} bytes)" if short and len(value) > 32 else h

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def _hex_bytes(value: Any, *, short: bool) -> Any:
    """``value`` with every bytes inside it (lists and tuples, nested) replaced by a :class:`_Hex`."""
    if isinstance(value, (bytes, bytearray)):
        return _Hex(value, short)
    if isinstance(value, list):
        return [_hex_bytes(v, short=short) for v in value]
    if isinstance(value, tuple):
        return tuple(_hex_bytes(v, short=short) for v in value)
    return value


@dataclass(frozen=True)
class SentTx:
    call: Call
    tx_hash: str
    nonce: int
    status: int | None = None
    gas_used: int | None = None
    block_number: int | None = None
    effective_gas_price: int | None = None
    fee: int | None = None      # E18 USD trading fee the market charged in this transaction
    block_hash: str | None = None   # the receipt's block: a reorganisation is noticed by its hash


@dataclass
class CycleResult:
    """What one cycle did; the CLI prints it and exits with ``exit_code``."""

    snapshot: Snapshot | None
    decision: Decision | None
    plan: Plan | None
    calls: list[Call] = field(default_factory=list)
    sent: list[SentTx] = field(default_factory=list)
    dry_run: bool = False
    outcome: str = ""          # "held", "acted", "dry_run", "refused", "partial", "failed"
    exit_code: int = 0
    error: str | None = None
    cycle_id: int | None = None
    notes: list[str] = field(default_factory=list)   # reconciliation of earlier runs
    # E18 (positive): how much smaller the position is than the last cycle left it, by no order or
    # trade of ours (the venue's auto-deleveraging, GMX v2's ADL, or a liquidation); 0: none seen
    reduced_by_venue: int = 0


@dataclass(frozen=True)
class Leg:
    """One journaled transaction of an action, in venue-neutral terms."""

    leg: str                    # "approve", "main", or a venue's own step name ("borrow", "swap", ...)
    amount: int
    state: str                  # signed | mined | reverted | replaced | cancelled | superseded
    tx_hash: str


@dataclass(frozen=True)
class JournaledAction:
    """An action of an earlier plan, as the journal holds it: what it was to do, and the state of
    each leg sent. ``legs_planned`` counts the transactions its plan had; fewer mined means the
    action was left unfinished (the process stopped, or a later leg failed)."""

    id: int
    cycle_id: int
    seq: int                    # its place in its plan (``Call.action_index`` of its legs)
    market: str                 # the market its cycle hedged
    kind: ActionKind
    amount: int
    legs_planned: int
    legs: tuple[Leg, ...]
    order_key: str | None = None


@dataclass(frozen=True)
class Resume:
    """A venue's answer for an unfinished action: ``replan`` (nothing to send: the next plan
    decides from the chain's state), ``finish`` (send ``calls``, the remaining legs) or
    ``unwind`` (send ``calls``, which undo the legs mined)."""

    how: str
    note: str
    calls: tuple[Call, ...] = ()


@dataclass(frozen=True)
class Fill:
    """How the venue filled an order, from its own records (events of the transaction that
    executed it, ours or a keeper's): the fill price and every fee charged to the account (E18)."""

    price: int
    fee: int
    tx_hash: str
    block_number: int
    # what the execution added to the position (E18 asset, + long, - short) when the venue's record
    # says so: GMX sizes an increase in USD, so the asset it adds is known only from its events
    size_delta: int | None = None
