"""Aave v3 borrow-and-sell short as the policy's market model (pure, no I/O).

A short of ``n`` asset units is a variable-rate debt of ``n`` on Aave, its proceeds sold for the
collateral token on Uniswap v3 and supplied beside the operator's own collateral. The venue's
health measure is Aave's health factor (``Pool.getUserAccountData`` answers it; this model
predicts it after an action with the same rule)::

    HF = collateral value x liquidation threshold / debt value          (GenericLogic)

with values at Aave's oracle prices. Liquidation is partial (close factor 50% while HF >= 0.95),
so the *liquidation price* is the asset price at which HF reaches 1: collateral x threshold /
debt units, for a collateral that is not the asset. The distance to liquidation is then HF - 1.

Units: sizes and debts E18 asset units (size = -debt), money E18 USD, collateral moves native
units of the collateral token, rates as Aave keeps them (ray, 1e27, a year), thresholds in bps.
The swap is priced at the oracle net of the pool's fee: the bound a trade is sent with, never a
quote of the pool (``hedger.protocols.uniswap_v3`` has the pool's own math).
"""

from __future__ import annotations

from dataclasses import dataclass

from hedger.core.fixedpoint import UNIT
from hedger.core.model import INFINITE, MarketModel, Minimums, PostTrade, leverage, register_model
from hedger.core.types import AccountState, MarketState, Snapshot

BPS = 10_000
PPM = 1_000_000              # Uniswap v3 fee tiers are in hundredths of a bip (500 = 0.05%)
RAY = 10**27
OPENING_CUSHION_PCT = 102    # a borrow must fit the LTV with 2% to spare (prices move before it is mined)


@dataclass(frozen=True, kw_only=True)
class AaveMarketState(MarketState):
    """The two reserves the hedge uses (the borrowed asset, the supplied collateral) and the swap
    pool, as read at one block. ``price`` is Aave's oracle price of the asset (E18 USD)."""

    asset_decimals: int
    collateral_price: int             # Aave's oracle price of the collateral, E18 USD
    liquidation_threshold_bps: int    # the collateral reserve's (the account holds no other reserve)
    ltv_bps: int
    borrow_rate_ray: int              # the asset's variable borrow rate, a year
    supply_rate_ray: int              # the collateral's supply (liquidity) rate, a year
    asset_available: int              # native asset units the reserve can lend now
    borrow_cap_room: int | None       # native asset units left under the borrow cap (None: no cap)
    supply_cap_room: int | None       # native collateral units left under the supply cap (None: no cap)
    collateral_available: int         # native collateral units the reserve holds (what can be withdrawn)
    borrowing_enabled: bool = True
    asset_frozen: bool = False
    asset_paused: bool = False
    collateral_frozen: bool = False
    collateral_paused: bool = False
    swap_fee_ppm: int = 500


@dataclass(frozen=True, kw_only=True)
class AaveAccountState(AccountState):
    """The hedging account on Aave: its supplied collateral (aToken balance, native) and its
    variable debt of the asset (native), and the health factor the pool reports (E18)."""

    supplied: int
    debt: int
    health_factor: int = INFINITE
    asset_wallet: int = 0             # borrowed asset not yet sold, in the signer's wallet (native): it
                                      # offsets the debt in the position (size = -(debt - asset_wallet))
    e_mode: int = 0                   # Pool.getUserEMode: 0 outside e-mode
    other_reserves: str = ""          # reserves the account uses beyond the hedge's two ("" when none)


def _e18(amount: int, decimals: int) -> int:
    return amount * 10 ** (18 - decimals) if decimals <= 18 else amount // 10 ** (decimals - 18)


@dataclass(frozen=True)
class AaveModel(MarketModel):
    market: AaveMarketState
    account: AaveAccountState

    collateral_moves = "direct"      # Pool.supply / Pool.withdraw
    trades_are_orders = False        # borrow, swap, supply: mined means done
    orders_in_flight = 0
    can_hold_long = False            # a long would be a different strategy (supply the asset, borrow USD)

    @property
    def collateral_decimals(self) -> int:  # type: ignore[override]
        return self.market.collateral_decimals

    @property
    def market_price(self) -> int:
        return self.market.price

    # ------------------------------------------------------------------ values
    @property
    def collateral_price(self) -> int:
        """Aave's oracle price of the collateral (E18 USD): what the pool values it at."""
        return self.market.collateral_price

    def debt_e18(self) -> int:
        return _e18(self.account.debt, self.market.asset_decimals)

    def health_factor(self, collateral_usd: int, debt_units: int) -> int:
        """Aave's rule, E18: INFINITE without debt."""
        if debt_units <= 0:
            return INFINITE
        debt_usd = debt_units * self.market.price // UNIT
        if debt_usd == 0:
            return INFINITE
        return collateral_usd * self.market.liquidation_threshold_bps * UNIT // (BPS * debt_usd)

    def health_after(self, pt: PostTrade) -> int:
        """The health factor of the account ``after`` describes (the venue's display measure)."""
        return self.health_factor(pt.margin + pt.notional, -pt.size)

    # ------------------------------------------------------------------ the seam
    def fill(self, size_delta: int) -> tuple[int, int]:
        """Selling the borrowed asset fills at the oracle price less the pool fee; buying it back
        at the oracle price grossed up by the fee. The fee is the pool's, in E18 USD."""
        p, f = self.market.price, self.market.swap_fee_ppm
        if size_delta == 0:
            return p, 0
        if size_delta < 0:
            fill = p * (PPM - f) // PPM
        else:
            fill = -(-p * PPM // (PPM - f))
        fee = abs(size_delta) * abs(fill - p) // UNIT
        return fill, fee

    def wallet_e18(self) -> int:
        """The wallet's unsold asset that offsets the debt: at most the debt (what a full repay with
        headroom for interest leaves behind is dust of the signer's, not a long)."""
        return min(_e18(self.account.asset_wallet, self.market.asset_decimals), self.debt_e18())

    def after(self, size_delta: int, collateral_delta_native: int) -> PostTrade:
        """A sale of ``s`` first sells the unsold asset in the wallet and borrows the rest; a buy-back
        of ``b`` repays ``b`` and what the wallet already holds (capped at the debt). The position is
        the debt less the wallet's asset; the health factor and liquidation follow the debt alone."""
        p = self.market.price
        fill, fee = self.fill(size_delta)
        collateral = self.collateral_usd(self.account.supplied + collateral_delta_native)
        # a sale's proceeds are supplied; a buy-back is paid from the collateral (withdraw, swap, repay)
        if size_delta < 0:
            collateral += -size_delta * fill // UNIT
        elif size_delta > 0:
            collateral -= -(-(size_delta * fill) // UNIT)
        debt0, wallet0 = self.debt_e18(), self.wallet_e18()
        if size_delta < 0:
            debt = debt0 + max(0, -size_delta - wallet0)
            wallet = max(0, wallet0 + size_delta)
        else:
            repaid = min(debt0, size_delta + wallet0)
            debt, wallet = debt0 - repaid, wallet0 + size_delta - repaid
        size = -(debt - wallet)
        notional = abs(size) * p // UNIT
        margin = collateral - notional if size <= 0 else collateral + notional
        if debt > 0:
            liq_price = collateral * self.market.liquidation_threshold_bps * UNIT // (BPS * debt)
            distance = (liq_price - p) * UNIT // p
        else:
            liq_price, distance = 0, INFINITE
        return PostTrade(size=size, margin=margin, notional=notional, leverage=leverage(size, p, margin),
                         liq_distance=distance, fill_price=fill if size_delta else 0, fee=fee,
                         liquidation_price=liq_price)

    def reduction_budget(self) -> int:
        """The buy-back is paid from the wallet's collateral first, then by a withdrawal, which the
        pool validates against the debt still owed before the repay: at most 99% of what keeps the
        health factor at 1 (interest accrues between the reading and the block)."""
        return self.account.collateral_wallet + self.max_withdrawal() * 99 // 100

    def max_withdrawal(self) -> int:
        """Aave lets collateral go while the health factor stays at or above 1 (and the reserve
        holds it); one unit is kept back from the exact edge (the pool rounds in its own favour)."""
        m, a = self.market, self.account
        if a.debt <= 0:
            free = a.supplied
        else:
            need_usd = -(-self.debt_e18() * m.price * BPS // (UNIT * m.liquidation_threshold_bps))
            need = -(-need_usd * 10 ** m.collateral_decimals // m.collateral_price)
            free = max(0, a.supplied - need - 1)
        return max(0, min(free, m.collateral_available))

    def minimums(self) -> Minimums:
        return Minimums(collateral=0, order=0)

    def carry_rate_per_day(self, size: int) -> int:
        """Borrow rate on the debt minus the supply rate earned on the collateral, as a fraction of
        the debt's value a day: debt x borrow - collateral x supply (both values at Aave's prices).
        Without a debt, the collateral is taken equal to the debt's value. Paid whatever the side
        (unlike funding), so positive in any ordinary market."""
        m = self.market
        borrow, supply = m.borrow_rate_ray // 10**9, m.supply_rate_ray // 10**9   # ray -> E18
        debt_usd = self.debt_e18() * m.price // UNIT
        if debt_usd <= 0:
            return (borrow - supply) // 365
        collateral_usd = self.collateral_usd(self.account.supplied)
        return (borrow * debt_usd - supply * collateral_usd) // debt_usd // 365

    def position_drift(self, seconds: int) -> int:
        """The debt's interest over ``seconds`` at twice the current borrow rate (it moves with
        utilisation), plus one unit: growth that small is the interest, not someone else's action."""
        return 2 * self.debt_e18() * self.market.borrow_rate_ray * max(0, seconds) // (RAY * 365 * 86400) + 1

    def margin_for_leverage(self, notional: int, leverage_: int) -> int:
        return notional * UNIT // leverage_

    def distance_at_leverage(self, size: int, leverage_: int) -> int:
        """A short held with equity = notional / L has collateral notional x (1 + 1/L), so its
        health factor is (1 + 1/L) x threshold and its distance that less one (rounded up)."""
        if size == 0 or leverage_ <= 0:
            return INFINITE
        lt = self.market.liquidation_threshold_bps
        return -(-(UNIT + UNIT * UNIT // leverage_) * lt // BPS) - UNIT

    def margin_for_distance(self, size: int, distance: int) -> int:
        """Equity (E18 USD) putting the liquidation price ``distance`` above the price: collateral
        (1 + distance) x notional / threshold, less the debt's value (rounded up)."""
        if size == 0:
            return 0
        notional = abs(size) * self.market.price // UNIT
        collateral = -(-(UNIT + distance) * notional * BPS // (UNIT * self.market.liquidation_threshold_bps))
        return collateral - notional

    def account_refusal(self) -> str | None:
        """The account is one this model cannot judge: in e-mode (other LTV and threshold) or using
        other reserves (their value changes its health): refused rather than guessed."""
        a = self.account
        if a.e_mode:
            return (f"the account is in Aave e-mode category {a.e_mode}: its health is not the hedge's alone; "
                    "leave e-mode (Pool.setUserEMode(0)) or hedge from another account")
        if a.other_reserves:
            return (f"the account uses other Aave reserves ({a.other_reserves}): its health is not the hedge's "
                    "alone; close them or hedge from another account")
        return None

    def venue_refusal(self, pt: PostTrade) -> str | None:
        """The reserve's own state refusing to grow the debt to ``pt`` (paused, frozen, borrowing off,
        liquidity, cap), whatever the collateral: refused by name, nothing sent."""
        reason = self.opening_refusal(pt)
        return None if reason is None or "LTV" in reason else reason

    def opening_refusal(self, pt: PostTrade) -> str | None:
        """Why Aave would refuse to grow the debt to ``pt`` (the reserve's state or the LTV), or None."""
        m = self.market
        growth = -pt.size - (self.debt_e18() - self.wallet_e18())
        if growth <= 0:
            return None
        growth = max(0, growth - self.wallet_e18())        # the wallet's unsold asset is sold first
        if growth == 0:
            return None
        if m.asset_paused or m.collateral_paused:
            return "a reserve of the hedge is paused on Aave"
        if m.asset_frozen:
            return "the asset's reserve is frozen on Aave (no new borrows)"
        if not m.borrowing_enabled:
            return "borrowing the asset is disabled on Aave"
        native = -(-growth // 10 ** (18 - m.asset_decimals)) if m.asset_decimals <= 18 else growth * 10 ** (m.asset_decimals - 18)
        if native > m.asset_available:
            return f"the asset's reserve can lend {m.asset_available} units now, less than the {native} to borrow"
        if m.borrow_cap_room is not None and native > m.borrow_cap_room:
            return f"the asset's borrow cap leaves {m.borrow_cap_room} units, less than the {native} to borrow"
        # the borrow is its own transaction, mined before the sale's proceeds are supplied: the LTV
        # must hold on the collateral already there (the account's and this plan's deposit)
        sold = -pt.size - (self.debt_e18() - self.wallet_e18())
        collateral = pt.margin + pt.notional - sold * pt.fill_price // UNIT
        debt_usd = (self.debt_e18() + growth) * m.price // UNIT
        if debt_usd * OPENING_CUSHION_PCT // 100 > collateral * m.ltv_bps // BPS:
            return (f"the debt would exceed the collateral's LTV ({m.ltv_bps / 100:g}%) with 2% to spare: "
                    "more collateral first")
        return None

    def opening_allowed(self, pt: PostTrade) -> bool:
        return self.opening_refusal(pt) is None


@register_model("aave-v3")
def model_for(s: Snapshot) -> AaveModel:
    assert isinstance(s.market, AaveMarketState) and isinstance(s.account, AaveAccountState), \
        "an aave-v3 snapshot carries AaveMarketState and AaveAccountState"
    return AaveModel(market=s.market, account=s.account)
