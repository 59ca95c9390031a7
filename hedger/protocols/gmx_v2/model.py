"""GMX v2's position math as pure integer functions, in GMX's own units.

Units (gmx-synthetics ``contracts/utils/Precision.sol``, ``contracts/price/Price.sol``):

- USD amounts have 30 decimals (``FLOAT_PRECISION`` = 1e30): $1 is ``10**30``.
- A price is USD per *smallest unit* of the token, times 1e30: ETH (18 decimals) at $5,000 is
  ``5000 * 10**12``; USDC (6 decimals) at $1 is ``10**24``. So ``amount * price`` is USD (1e30).
- Factors (fees, impact, collateral) are 30-decimal fractions: 0.06% is ``6 * 10**26``.
- Funding "amount per size" values carry 15 more decimals (``FLOAT_PRECISION_SQRT``).

Rules as of the contracts that ``@gmx-io/sdk`` 1.4.0's ABIs match (gmx-synthetics v2.2 line): in
particular the price impact of an *increase* no longer changes ``sizeInTokens``; it is stored on the
position as ``pendingImpactAmount`` (index tokens, signed) and realised, pro rata, on each decrease
together with that decrease's own impact. Every rule below names the GMX file it follows; the
publisher's client mirror of the same rules, version-matched with the pinned SDK, is in
``node_modules/@gmx-io/sdk/build/cjs/src/utils/{fees/priceImpact.js,fees/index.js,positions.js}``.

Left out on purpose (read from the chain instead, ``Reader.getPositionInfo``): the trader PnL cap
(``MAX_PNL_FACTOR_FOR_TRADERS``), virtual inventory impact, the lendable impact pool, referral tiers
beyond a flat discount, and swaps of collateral. Every function is integer-only, standard library
only, and raises ``ValueError`` naming the argument on input it cannot price.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal, localcontext

FLOAT_PRECISION = 10**30          # Precision.FLOAT_PRECISION: 1.0 as a 30-decimal factor, $1 in USD
FLOAT_PRECISION_SQRT = 10**15     # Precision.FLOAT_PRECISION_SQRT: extra decimals of funding per size
WEI_PRECISION = 10**18            # Precision.WEI_PRECISION: PRBMath's UD60x18 unit


# ---------------------------------------------------------------------------------------------
# Integer arithmetic with Solidity's rounding (gmx-synthetics contracts/utils/Calc.sol, Precision.sol)
# ---------------------------------------------------------------------------------------------

def _need(condition: bool, name: str, problem: str) -> None:
    if not condition:
        raise ValueError(f"{name}: {problem}")


def _div_toward_zero(a: int, b: int) -> int:
    """Solidity's signed ``a / b`` (truncates toward zero); ``b`` > 0."""
    q = abs(a) // b
    return q if a >= 0 else -q


def round_up_division(a: int, b: int) -> int:
    """Calc.roundUpDivision: ceil(a / b) for a >= 0, b > 0."""
    return -(-a // b)


def round_up_magnitude_division(a: int, b: int) -> int:
    """Calc.roundUpMagnitudeDivision: a / b rounded away from zero (b > 0)."""
    q = round_up_division(abs(a), b)
    return q if a >= 0 else -q


def mul_div(value: int, numerator: int, denominator: int, round_up: bool = False) -> int:
    """Precision.mulDiv for a signed ``value`` or ``numerator``: the magnitude is floored (or ceiled
    when ``round_up``, Precision.mulDiv(..., roundUpMagnitude)) and the sign put back."""
    negative = (value < 0) != (numerator < 0)
    magnitude = abs(value) * abs(numerator)
    q = round_up_division(magnitude, denominator) if round_up else magnitude // denominator
    return -q if negative else q


def apply_factor(value: int, factor: int) -> int:
    """Precision.applyFactor: value x factor / 1e30, magnitude rounded down."""
    return mul_div(value, factor, FLOAT_PRECISION)


# ---------------------------------------------------------------------------------------------
# value ** exponent as the contracts compute it: PRBMath UD60x18 pow = exp2(log2(x) * y)
# (gmx-synthetics contracts/utils/Precision.sol applyExponentFactor -> prb-math PRBMathUD60x18.pow;
# the integer steps below reproduce GMX's own test values to the last digit, see tests)
# ---------------------------------------------------------------------------------------------

def _exp2_factors() -> tuple[int, ...]:
    # 2^(2^-k) for k = 1..64 as 64.64 fixed-point numbers, rounded to nearest: the per-bit factors of
    # the binary exponentiation in PRBMath's exp2 (computed here, not copied)
    with localcontext() as ctx:
        ctx.prec = 80
        two = Decimal(2)
        return tuple(int((two ** (Decimal(1) / two ** k) * two ** 64).to_integral_value())
                     for k in range(1, 65))


_EXP2_FACTORS = _exp2_factors()


def _ud_log2(x: int) -> int:
    """log2 of a UD60x18 number >= 1.0: integer part from the top bit, then 60 squarings for the bits
    of the fraction (each squaring that crosses 2 adds the next halved delta)."""
    n = (x // WEI_PRECISION).bit_length() - 1
    result = n * WEI_PRECISION
    y = x >> n
    if y == WEI_PRECISION:
        return result
    delta = WEI_PRECISION // 2
    while delta > 0:
        y = y * y // WEI_PRECISION
        if y >= 2 * WEI_PRECISION:
            result += delta
            y >>= 1
        delta >>= 1
    return result


def _ud_mul(x: int, y: int) -> int:
    """UD60x18 multiplication, rounded half up (PRBMath mulDivFixedPoint)."""
    q, r = divmod(x * y, WEI_PRECISION)
    return q + (1 if r >= WEI_PRECISION // 2 else 0)


def _ud_exp2(x: int) -> int:
    """2**x for a UD60x18 ``x`` < 192: 192.64 fixed point, one factor per set bit of the fraction."""
    _need(x < 192 * WEI_PRECISION, "exponent", "2**x overflows for x >= 192")
    x64 = (x << 64) // WEI_PRECISION
    result = 1 << 191
    for bit in range(64):
        if x64 & (1 << (63 - bit)):
            result = (result * _EXP2_FACTORS[bit]) >> 64
    result *= WEI_PRECISION
    return result >> (191 - (x64 >> 64))


def apply_exponent_factor(float_value: int, exponent_factor: int) -> int:
    """Precision.applyExponentFactor: ``float_value ** (exponent_factor / 1e30)`` in 30 decimals.

    Values below 1.0 give 0 (PRBMath's pow needs x >= 1); an exponent of exactly 1 returns the value;
    otherwise both are cut to 18 decimals, raised with PRBMath, and scaled back."""
    _need(float_value >= 0, "float_value", "must be >= 0")
    _need(exponent_factor >= 0, "exponent_factor", "must be >= 0")
    if float_value < FLOAT_PRECISION:
        return 0
    if exponent_factor == FLOAT_PRECISION:
        return float_value
    wei_value = float_value // 10**12
    wei_exponent = exponent_factor // 10**12
    if wei_exponent == 0:
        return FLOAT_PRECISION
    return _ud_exp2(_ud_mul(_ud_log2(wei_value), wei_exponent)) * 10**12


def apply_impact_factor(diff_usd: int, impact_factor: int, exponent_factor: int) -> int:
    """PricingUtils.applyImpactFactor: impact_factor x diff_usd ** exponent (USD, 30 decimals)."""
    return apply_factor(apply_exponent_factor(diff_usd, exponent_factor), impact_factor)


# ---------------------------------------------------------------------------------------------
# Market parameters and the position, as GMX stores them (DataStore keys / Position.Props)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ImpactParams:
    """Position price impact settings of one market (DataStore keys POSITION_IMPACT_FACTOR,
    POSITION_IMPACT_EXPONENT_FACTOR, MAX_POSITION_IMPACT_FACTOR, MAX_POSITION_IMPACT_FACTOR_FOR_LIQUIDATIONS)."""

    factor_positive: int
    factor_negative: int
    exponent_positive: int = 2 * FLOAT_PRECISION
    exponent_negative: int | None = None        # None: same as exponent_positive (one exponent key)
    max_factor_positive: int = FLOAT_PRECISION   # cap of a positive impact, fraction of the size delta
    max_factor_negative: int = FLOAT_PRECISION   # cap of a realised negative impact (excess is claimable)
    max_factor_for_liquidations: int = FLOAT_PRECISION

    def __post_init__(self) -> None:
        for name in ("factor_positive", "factor_negative", "exponent_positive", "max_factor_positive",
                     "max_factor_negative", "max_factor_for_liquidations"):
            _need(getattr(self, name) >= 0, name, "must be >= 0 (30-decimal factor)")
        _need(self.exponent_negative is None or self.exponent_negative >= 0, "exponent_negative", "must be >= 0")

    @property
    def adjusted_factors(self) -> tuple[int, int]:
        # MarketUtils.getAdjustedPositionImpactFactors: a positive factor above the negative one is
        # lowered to it, so that opening and closing straight away can never earn impact
        return min(self.factor_positive, self.factor_negative), self.factor_negative

    @property
    def max_factor_positive_adjusted(self) -> int:
        # same rule for the caps (MarketUtils.getMaxPositionImpactFactors; SDK getMaxPositionImpactFactors)
        return min(self.max_factor_positive, self.max_factor_negative)


@dataclass(frozen=True)
class Position:
    """Position.Props numbers that the math needs (``Reader.getPosition``/``getPositionInfo``)."""

    is_long: bool
    size_in_usd: int
    size_in_tokens: int
    collateral_amount: int
    pending_impact_amount: int = 0          # index tokens, signed (negative: impact still owed)
    borrowing_factor: int = 0               # cumulative borrowing factor when last updated
    funding_fee_amount_per_size: int = 0    # latest funding fee per size when last updated

    def __post_init__(self) -> None:
        for name in ("size_in_usd", "size_in_tokens", "collateral_amount", "borrowing_factor",
                     "funding_fee_amount_per_size"):
            _need(getattr(self, name) >= 0, name, "must be >= 0")


# ---------------------------------------------------------------------------------------------
# Price impact (gmx-synthetics contracts/pricing/PositionPricingUtils.sol getPriceImpactUsd,
# contracts/pricing/PricingUtils.sol getPriceImpactUsdForSameSideRebalance / ...CrossoverRebalance)
# ---------------------------------------------------------------------------------------------

def price_impact_usd(long_open_interest: int, short_open_interest: int, usd_delta: int, is_long: bool,
                     params: ImpactParams) -> tuple[int, bool]:
    """Impact (signed USD, positive = paid to the trader) of changing one side's open interest by
    ``usd_delta`` (negative for a decrease), and whether the long/short balance was improved.

    Imbalance = |long OI - short OI|. On the same side of balance, impact = f x (before^e - after^e),
    with the positive or the negative factor depending on whether the imbalance shrinks; a trade that
    crosses over earns f+ x before^e and pays f- x after^e."""
    _need(long_open_interest >= 0, "long_open_interest", "must be >= 0")
    _need(short_open_interest >= 0, "short_open_interest", "must be >= 0")
    next_long = long_open_interest + (usd_delta if is_long else 0)
    next_short = short_open_interest + (0 if is_long else usd_delta)
    _need(next_long >= 0 and next_short >= 0, "usd_delta", "would make the open interest negative")
    initial_diff = abs(long_open_interest - short_open_interest)
    next_diff = abs(next_long - next_short)
    balance_was_improved = next_diff < initial_diff
    positive_factor, negative_factor = params.adjusted_factors
    exp_pos = params.exponent_positive
    exp_neg = params.exponent_negative if params.exponent_negative is not None else exp_pos
    same_side = (long_open_interest <= short_open_interest) == (next_long <= next_short)
    if same_side:
        factor, exponent = (positive_factor, exp_pos) if balance_was_improved else (negative_factor, exp_neg)
        delta = abs(apply_impact_factor(initial_diff, factor, exponent)
                    - apply_impact_factor(next_diff, factor, exponent))
        return (delta if balance_was_improved else -delta), balance_was_improved
    positive = apply_impact_factor(initial_diff, positive_factor, exp_pos)
    negative = apply_impact_factor(next_diff, negative_factor, exp_neg)
    return (positive - negative), balance_was_improved


def cap_positive_impact_by_pool(impact_usd: int, impact_pool_amount: int, index_price_min: int) -> int:
    """MarketUtils.capPositiveImpactUsdByPositionImpactPool: a positive impact is paid from the
    position impact pool (index tokens valued at the min price), never more than it holds."""
    if impact_usd <= 0:
        return impact_usd
    return min(impact_usd, impact_pool_amount * index_price_min)


def cap_positive_impact_by_max_factor(impact_usd: int, size_delta_usd: int, params: ImpactParams) -> int:
    """MarketUtils.capPositiveImpactUsdByMaxPositionImpact: at most MAX_POSITION_IMPACT_FACTOR(positive)
    of the size delta."""
    if impact_usd <= 0:
        return impact_usd
    return min(impact_usd, apply_factor(size_delta_usd, params.max_factor_positive_adjusted))


@dataclass(frozen=True)
class IncreaseExecution:
    price_impact_usd: int               # as emitted in PositionIncrease.priceImpactUsd
    price_impact_amount: int            # index tokens added to the position's pendingImpactAmount
    size_delta_in_tokens: int           # added to sizeInTokens: impact is NOT in it any more
    execution_price: int
    balance_was_improved: bool


def increase_execution(size_delta_usd: int, is_long: bool, index_price_min: int, index_price_max: int,
                       long_open_interest: int, short_open_interest: int, impact_pool_amount: int,
                       params: ImpactParams) -> IncreaseExecution:
    """An increase order's fill (gmx-synthetics contracts/position/PositionUtils.sol
    getExecutionPriceForIncrease, contracts/order/BaseOrderUtils.sol getExecutionPriceForIncrease).

    The impact is capped (pool, max factor), turned into index tokens (positive rounded down at the
    max price, negative rounded up at the min price) and stored as pending on the position; the size
    in tokens is the plain size delta at the oracle price (long: down at max, short: up at min). The
    execution price still shows the impact: size delta USD / (base tokens +/- impact tokens)."""
    _need(size_delta_usd > 0, "size_delta_usd", "must be > 0 for a fill (a collateral-only increase has no price)")
    _need(0 < index_price_min <= index_price_max, "index_price_min/index_price_max", "need 0 < min <= max")
    impact, improved = price_impact_usd(long_open_interest, short_open_interest, size_delta_usd, is_long, params)
    impact = cap_positive_impact_by_pool(impact, impact_pool_amount, index_price_min)
    impact = cap_positive_impact_by_max_factor(impact, size_delta_usd, params)
    if impact > 0:
        impact_amount = impact // index_price_max
    else:
        impact_amount = round_up_magnitude_division(impact, index_price_min)
    if is_long:
        base_tokens = size_delta_usd // index_price_max
        priced_tokens = base_tokens + impact_amount
    else:
        base_tokens = round_up_division(size_delta_usd, index_price_min)
        priced_tokens = base_tokens - impact_amount
    if priced_tokens <= 0:
        raise ValueError("size_delta_usd: price impact larger than the order size (GMX cancels it: "
                         "PriceImpactLargerThanOrderSize)")
    return IncreaseExecution(impact, impact_amount, base_tokens, size_delta_usd // priced_tokens, improved)


@dataclass(frozen=True)
class DecreaseExecution:
    price_impact_usd: int                    # this decrease's own impact, capped (PositionDecrease.priceImpactUsd)
    proportional_pending_impact_amount: int  # share of pendingImpactAmount realised now (index tokens)
    proportional_pending_impact_usd: int     # PositionDecrease.proportionalImpactPendingUsd
    total_impact_usd: int                    # what the trader is paid (> 0) or charged (< 0)
    total_impact_amount: int                 # index tokens moved from (> 0) / to (< 0) the impact pool
    price_impact_diff_usd: int               # negative impact beyond the cap: claimable later (claimCollateral)
    execution_price: int
    balance_was_improved: bool


def proportional_pending_impact(position: Position, size_delta_usd: int, index_price_min: int,
                                index_price_max: int) -> tuple[int, int]:
    """The pending impact a decrease realises: pendingImpactAmount x sizeDelta / size (toward zero),
    valued at the min price when positive and the max price when negative
    (gmx-synthetics contracts/position/DecreasePositionCollateralUtils.sol getProportionalPendingImpactValues)."""
    if size_delta_usd == 0 or position.size_in_usd == 0:
        return 0, 0
    amount = mul_div(position.pending_impact_amount, size_delta_usd, position.size_in_usd)
    return amount, amount * (index_price_min if amount > 0 else index_price_max)


def decrease_execution_price(position: Position, size_delta_usd: int, impact_usd: int,
                             index_price_min: int, index_price_max: int) -> int:
    """BaseOrderUtils.getExecutionPriceForDecrease: the oracle price (long: min, short: max) moved by
    the impact spread over the tokens closed: price + size/tokens x impact/sizeDelta (sign per side)."""
    price = index_price_min if position.is_long else index_price_max
    if size_delta_usd == 0 or position.size_in_tokens == 0:
        return price
    adjusted = impact_usd if position.is_long else -impact_usd
    if adjusted < 0 and -adjusted > size_delta_usd:
        raise ValueError("size_delta_usd: price impact larger than the order size (PriceImpactLargerThanOrderSize)")
    adjustment = _div_toward_zero(mul_div(position.size_in_usd, adjusted, position.size_in_tokens), size_delta_usd)
    execution = price + adjustment
    _need(execution >= 0, "impact_usd", "gives a negative execution price (NegativeExecutionPrice)")
    return execution


def decrease_execution(position: Position, size_delta_usd: int, index_price_min: int, index_price_max: int,
                       long_open_interest: int, short_open_interest: int, impact_pool_amount: int,
                       params: ImpactParams) -> DecreaseExecution:
    """A decrease's impact: its own impact (capped by the pool and the max positive factor) sets the
    execution price; the realised total is that plus the proportional pending impact, a negative total
    capped at MAX_POSITION_IMPACT_FACTOR(negative) x size delta (the rest claimable), a positive total
    capped by the pool (gmx-synthetics contracts/position/DecreasePositionCollateralUtils.sol
    processCollateral, contracts/position/PositionUtils.sol getExecutionPriceForDecrease)."""
    _need(0 <= size_delta_usd <= position.size_in_usd, "size_delta_usd", "must be between 0 and the position size")
    _need(0 < index_price_min <= index_price_max, "index_price_min/index_price_max", "need 0 < min <= max")
    impact, improved = price_impact_usd(long_open_interest, short_open_interest, -size_delta_usd,
                                        position.is_long, params)
    impact = cap_positive_impact_by_pool(impact, impact_pool_amount, index_price_min)
    impact = cap_positive_impact_by_max_factor(impact, size_delta_usd, params)
    execution_price = decrease_execution_price(position, size_delta_usd, impact, index_price_min, index_price_max)
    pending_amount, pending_usd = proportional_pending_impact(position, size_delta_usd, index_price_min,
                                                              index_price_max)
    total = impact + pending_usd
    diff = 0
    if total < 0:
        floor = -apply_factor(size_delta_usd, params.max_factor_negative)
        if total < floor:
            diff, total = floor - total, floor
    total = cap_positive_impact_by_pool(total, impact_pool_amount, index_price_min)
    total = cap_positive_impact_by_max_factor(total, size_delta_usd, params)
    total_amount = total // index_price_max if total > 0 else round_up_magnitude_division(total, index_price_min)
    return DecreaseExecution(impact, pending_amount, pending_usd, total, total_amount, diff, execution_price,
                             improved)


# ---------------------------------------------------------------------------------------------
# Fees (gmx-synthetics contracts/pricing/PositionPricingUtils.sol getPositionFees and helpers)
# ---------------------------------------------------------------------------------------------

def position_fee_usd(size_delta_usd: int, balance_was_improved: bool, fee_factor_improved: int,
                     fee_factor_not_improved: int) -> int:
    """Position fee: size delta x POSITION_FEE_FACTOR, the lower factor when the trade improved the
    long/short balance (PositionPricingUtils.getPositionFeesAfterReferral; SDK fees getPositionFee)."""
    _need(size_delta_usd >= 0, "size_delta_usd", "must be >= 0")
    _need(fee_factor_improved >= 0 and fee_factor_not_improved >= 0, "fee_factor", "must be >= 0")
    return apply_factor(size_delta_usd, fee_factor_improved if balance_was_improved else fee_factor_not_improved)


def usd_to_collateral_amount(usd: int, collateral_price_min: int) -> int:
    """A USD cost in collateral tokens, rounded down at the min price (fees.*Amount = usd / price.min)."""
    _need(collateral_price_min > 0, "collateral_price_min", "must be > 0")
    _need(usd >= 0, "usd", "must be >= 0")
    return usd // collateral_price_min


def liquidation_fee_usd(size_delta_usd: int, liquidation_fee_factor: int) -> int:
    """Charged only when a keeper liquidates: size x LIQUIDATION_FEE_FACTOR (PositionPricingUtils.getLiquidationFees)."""
    return apply_factor(size_delta_usd, liquidation_fee_factor)


def borrowing_factor_per_second(reserved_usd: int, pool_usd: int, borrowing_factor: int,
                                borrowing_exponent_factor: int = FLOAT_PRECISION) -> int:
    """Per-second borrowing factor of one side without the usage kink: BORROWING_FACTOR x
    reserved^exponent / pool USD (MarketUtils.getBorrowingFactorPerSecond). Markets configured with an
    optimal usage factor use a kink curve instead: read Reader.getMarketInfo's
    borrowingFactorPerSecondForLongs/Shorts for those rather than this."""
    _need(pool_usd > 0, "pool_usd", "must be > 0")
    _need(reserved_usd >= 0, "reserved_usd", "must be >= 0")
    after_exponent = apply_exponent_factor(reserved_usd, borrowing_exponent_factor)
    return apply_factor(mul_div(after_exponent, FLOAT_PRECISION, pool_usd), borrowing_factor)


def next_cumulative_borrowing_factor(cumulative_factor: int, factor_per_second: int, seconds: int) -> int:
    """Borrowing accrues linearly between updates: cumulative += per-second factor x elapsed
    (MarketUtils.getNextCumulativeBorrowingFactor; per-second rate from Reader.getMarketInfo
    borrowingFactorPerSecondForLongs/Shorts)."""
    _need(factor_per_second >= 0, "factor_per_second", "must be >= 0")
    _need(seconds >= 0, "seconds", "must be >= 0")
    return cumulative_factor + factor_per_second * seconds


def borrowing_fee_usd(size_in_usd: int, cumulative_borrowing_factor: int, position_borrowing_factor: int) -> int:
    """MarketUtils.getBorrowingFees: size x (market cumulative factor - the position's), USD."""
    _need(cumulative_borrowing_factor >= position_borrowing_factor, "cumulative_borrowing_factor",
          "is below the position's borrowing factor (stale market read?)")
    return apply_factor(size_in_usd, cumulative_borrowing_factor - position_borrowing_factor)


def funding_fee_amount(latest_amount_per_size: int, position_amount_per_size: int, size_in_usd: int,
                       round_up: bool = True) -> int:
    """PositionPricingUtils.getFundingFeeAmount: size x (latest - position's) per-size value / 1e45,
    rounded up for what a position pays, down for what it may claim (collateral token units)."""
    _need(size_in_usd >= 0, "size_in_usd", "must be >= 0")
    return mul_div(size_in_usd, latest_amount_per_size - position_amount_per_size,
                   FLOAT_PRECISION * FLOAT_PRECISION_SQRT, round_up)


def funding_usd_for_period(paying_open_interest: int, funding_factor_per_second: int, seconds: int) -> int:
    """USD the paying side owes over ``seconds``: its open interest x factor per second x seconds
    (MarketUtils.getNextFundingAmountPerSize: fundingUsd = applyFactor(size of paying side, duration x factor))."""
    _need(funding_factor_per_second >= 0, "funding_factor_per_second", "must be >= 0 (the side is set by longsPayShorts)")
    _need(seconds >= 0, "seconds", "must be >= 0")
    return apply_factor(paying_open_interest, seconds * funding_factor_per_second)


def funding_amount_per_size_delta(funding_usd: int, open_interest_usd: int, token_price: int,
                                  round_up: bool) -> int:
    """MarketUtils.getFundingAmountPerSizeDelta: USD spread over the side's open interest, in tokens,
    with 15 extra decimals (rounded up for the payers, down for the receivers)."""
    if funding_usd == 0 or open_interest_usd == 0:
        return 0
    _need(token_price > 0, "token_price", "must be > 0")
    per_size = mul_div(funding_usd, FLOAT_PRECISION * FLOAT_PRECISION_SQRT, open_interest_usd, round_up)
    return round_up_division(per_size, token_price) if round_up else per_size // token_price


def funding_fee_usd_for_period(size_in_usd: int, funding_factor_per_second: int, seconds: int, paying: bool,
                               paying_open_interest: int, receiving_open_interest: int) -> int:
    """A position's funding over a period from Reader.getMarketInfo's rate, signed (negative = paid):
    the paying side pays factor x seconds of its size; the receiving side gets the same USD spread
    over its smaller or larger open interest (SDK utils/fees getFundingFactorPerPeriod, the publisher's
    mirror of MarketUtils.getNextFundingAmountPerSize)."""
    per_period = funding_factor_per_second * seconds
    if paying:
        return -apply_factor(size_in_usd, per_period)
    if receiving_open_interest == 0:
        return 0
    return apply_factor(size_in_usd, mul_div(per_period, paying_open_interest, receiving_open_interest))


# ---------------------------------------------------------------------------------------------
# PnL (gmx-synthetics contracts/position/PositionUtils.sol getPositionPnlUsd)
# ---------------------------------------------------------------------------------------------

def pnl_price(index_price_min: int, index_price_max: int, is_long: bool) -> int:
    """Price.pickPriceForPnl(isLong, maximize=false): the price worse for the trader (long: min, short: max)."""
    return index_price_min if is_long else index_price_max


def position_pnl_usd(position: Position, index_price: int, size_delta_usd: int | None = None) -> tuple[int, int]:
    """(PnL in USD of closing ``size_delta_usd``, size delta in tokens).

    Long: tokens x price - size; short: size - tokens x price. A partial close takes its share of the
    tokens (long rounded up, short down) and of the PnL (toward zero). The trader PnL cap
    (MAX_PNL_FACTOR_FOR_TRADERS) is not applied here."""
    _need(index_price > 0, "index_price", "must be > 0")
    _need(position.size_in_tokens > 0, "size_in_tokens", "must be > 0 for a PnL")
    delta = position.size_in_usd if size_delta_usd is None else size_delta_usd
    _need(0 <= delta <= position.size_in_usd, "size_delta_usd", "must be between 0 and the position size")
    value = position.size_in_tokens * index_price
    total = value - position.size_in_usd if position.is_long else position.size_in_usd - value
    if delta == position.size_in_usd:
        tokens = position.size_in_tokens
    elif position.is_long:
        tokens = round_up_division(position.size_in_tokens * delta, position.size_in_usd)
    else:
        tokens = position.size_in_tokens * delta // position.size_in_usd
    return mul_div(total, tokens, position.size_in_tokens), tokens


# ---------------------------------------------------------------------------------------------
# Liquidation (gmx-synthetics contracts/position/PositionUtils.sol isPositionLiquidatable;
# client mirror: SDK utils/positions.js getLiquidationPrice)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LiquidationMarket:
    """What the liquidation rule reads besides the position (DataStore / Reader.getMarketInfo)."""

    collateral_price_min: int
    long_open_interest: int
    short_open_interest: int
    impact: ImpactParams
    position_fee_factor_improved: int
    position_fee_factor_not_improved: int
    min_collateral_usd: int                    # MIN_COLLATERAL_USD
    min_collateral_factor: int                 # MIN_COLLATERAL_FACTOR_FOR_LIQUIDATION for a keeper's check
    cumulative_borrowing_factor: int = 0       # of the position's side, updated to now
    funding_fee_amount_per_size: int = 0       # latest, of the position's side and collateral
    ui_fee_factor: int = 0

    def __post_init__(self) -> None:
        _need(self.collateral_price_min > 0, "collateral_price_min", "must be > 0")
        for name in ("long_open_interest", "short_open_interest", "position_fee_factor_improved",
                     "position_fee_factor_not_improved", "min_collateral_usd", "min_collateral_factor",
                     "ui_fee_factor"):
            _need(getattr(self, name) >= 0, name, "must be >= 0")


@dataclass(frozen=True)
class LiquidationCheck:
    liquidatable: bool
    reason: str                       # "min collateral", "< 0", "min collateral for leverage" or ""
    remaining_collateral_usd: int
    min_collateral_usd_for_leverage: int
    pnl_usd: int
    price_impact_usd: int             # close impact + pending impact, clamped to [-max for liquidations, 0]
    collateral_cost_usd: int          # closing position fee + borrowing + funding + ui fee


def close_price_impact_usd(position: Position, market: LiquidationMarket, index_price_min: int,
                           index_price_max: int) -> tuple[int, bool]:
    """Impact counted against a position in the liquidation rule: closing it all now (positive part
    capped by the max positive factor) plus its pending impact, then never positive and never below
    -MAX_POSITION_IMPACT_FACTOR_FOR_LIQUIDATIONS x size. Also returns whether closing improves balance."""
    impact, improved = price_impact_usd(market.long_open_interest, market.short_open_interest,
                                        -position.size_in_usd, position.is_long, market.impact)
    impact = cap_positive_impact_by_max_factor(impact, position.size_in_usd, market.impact)
    pending = position.pending_impact_amount
    impact += pending * (index_price_min if pending > 0 else index_price_max)
    floor = -apply_factor(position.size_in_usd, market.impact.max_factor_for_liquidations)
    return max(min(impact, 0), floor), improved


def liquidation_check(position: Position, market: LiquidationMarket, index_price_min: int,
                      index_price_max: int | None = None) -> LiquidationCheck:
    """GMX's rule: remaining = collateral USD + PnL + close/pending impact - costs of closing now
    (position fee, pending borrowing and funding, ui fee; the liquidation fee itself not counted);
    liquidatable when remaining < MIN_COLLATERAL_USD, <= 0, or < size x min collateral factor."""
    index_price_max = index_price_min if index_price_max is None else index_price_max
    _need(0 < index_price_min <= index_price_max, "index_price_min/index_price_max", "need 0 < min <= max")
    _need(position.size_in_usd > 0 and position.size_in_tokens > 0, "position", "is empty")
    pnl, _ = position_pnl_usd(position, pnl_price(index_price_min, index_price_max, position.is_long))
    impact, improved = close_price_impact_usd(position, market, index_price_min, index_price_max)
    price = market.collateral_price_min
    fee_amount = usd_to_collateral_amount(
        position_fee_usd(position.size_in_usd, improved, market.position_fee_factor_improved,
                         market.position_fee_factor_not_improved), price)
    borrowing_amount = usd_to_collateral_amount(
        borrowing_fee_usd(position.size_in_usd, market.cumulative_borrowing_factor, position.borrowing_factor), price)
    funding_amount = max(0, funding_fee_amount(market.funding_fee_amount_per_size,
                                               position.funding_fee_amount_per_size, position.size_in_usd))
    ui_amount = usd_to_collateral_amount(apply_factor(position.size_in_usd, market.ui_fee_factor), price)
    cost_usd = (fee_amount + borrowing_amount + funding_amount + ui_amount) * price
    remaining = position.collateral_amount * price + pnl + impact - cost_usd
    for_leverage = apply_factor(position.size_in_usd, market.min_collateral_factor)
    if remaining < market.min_collateral_usd:
        reason = "min collateral"
    elif remaining <= 0:
        reason = "< 0"
    elif remaining < for_leverage:
        reason = "min collateral for leverage"
    else:
        reason = ""
    return LiquidationCheck(bool(reason), reason, remaining, for_leverage, pnl, impact, cost_usd)


def is_liquidatable(position: Position, market: LiquidationMarket, index_price: int) -> bool:
    return liquidation_check(position, market, index_price).liquidatable


def liquidation_price(position: Position, market: LiquidationMarket) -> int | None:
    """The index price at which ``liquidation_check`` flips, found by bisection on the integer price
    (the rule is monotone in the price while |pendingImpactAmount| < sizeInTokens, as it always is).

    Short: the lowest price at which it is liquidatable; long: the highest. None when no positive
    price liquidates it (a long with more collateral than it can lose) or every price does."""
    _need(position.size_in_tokens > 0, "size_in_tokens", "must be > 0")
    _need(abs(position.pending_impact_amount) < position.size_in_tokens, "pending_impact_amount",
          "must be smaller than sizeInTokens in magnitude")

    def liq(p: int) -> bool:
        return is_liquidatable(position, market, p)

    ceiling = 1 << 256
    if position.is_long:
        if not liq(1):
            return None
        lo, hi = 1, 2                      # liq(lo) is True; grow hi until liq(hi) is False
        while liq(hi):
            lo, hi = hi, hi * 2
            if hi > ceiling:
                return None
        while hi - lo > 1:                 # invariant: liq(lo), not liq(hi)
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if liq(mid) else (lo, mid)
        return lo
    if liq(1):
        return None
    lo, hi = 1, 2                          # not liq(lo); grow hi until liq(hi)
    while not liq(hi):
        lo, hi = hi, hi * 2
        if hi > ceiling:
            return None
    while hi - lo > 1:                     # invariant: not liq(lo), liq(hi)
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if liq(mid) else (mid, hi)
    return hi


# ---------------------------------------------------------------------------------------------
# The policy's collateral measure on GMX: distance to liquidation, and collateral valued at its price
# (issue 10: the policy decides collateral in liquidation distance; leverage is what GMX displays)
# ---------------------------------------------------------------------------------------------

DISTANCE_UNIT = 10**18            # distances are E18 fractions of the index price, as in the core


def _price_moved_against(position: Position, index_price: int, distance: int) -> int:
    """The index price ``distance`` (E18) against the position: a short's above, a long's below
    (at least 1: a long cannot be liquidated below a zero price)."""
    move = index_price * distance // DISTANCE_UNIT
    return index_price + move if not position.is_long else max(index_price - move, 1)


def collateral_for_distance(position: Position, market: LiquidationMarket, index_price: int,
                            distance: int) -> int:
    """The least collateral amount (token units) with which ``position`` (its size, tokens, pending
    impact and fees; its own collateral ignored) survives the index price moving ``distance``
    against it: GMX's rule (``liquidation_check``) is linear in the collateral, so the amount is
    what lifts the remaining collateral at that price to the larger of MIN_COLLATERAL_USD, the min
    collateral factor of the size, and one unit above zero, rounded up at the collateral's min price."""
    _need(distance >= 0, "distance", "must be >= 0 (an E18 fraction of the price)")
    _need(index_price > 0, "index_price", "must be > 0")
    at = _price_moved_against(position, index_price, distance)
    bare = liquidation_check(replace(position, collateral_amount=0), market, at)
    need = max(market.min_collateral_usd, bare.min_collateral_usd_for_leverage, 1)
    return max(0, round_up_division(need - bare.remaining_collateral_usd, market.collateral_price_min))


def liquidation_distance(position: Position, market: LiquidationMarket, index_price: int) -> int | None:
    """How far (E18 fraction of ``index_price``) the index price must move against ``position``
    before GMX liquidates it, rounded down; 0 when it is liquidatable already, None when no price
    liquidates it (a long whose collateral covers a fall to zero)."""
    _need(index_price > 0, "index_price", "must be > 0")
    if is_liquidatable(position, market, index_price):
        return 0
    liq = liquidation_price(position, market)
    if liq is None:
        return None
    move = liq - index_price if not position.is_long else index_price - liq
    return max(move, 0) * DISTANCE_UNIT // index_price


def distance_at_leverage(position: Position, market: LiquidationMarket, index_price: int,
                         leverage: int) -> int | None:
    """The liquidation distance of ``position`` held with collateral worth its size / ``leverage``
    (E18; GMX displays leverage as size over collateral value), the amount rounded up at the
    collateral's min price: how the operator's leverage settings become distances on GMX."""
    _need(leverage > 0, "leverage", "must be > 0 (E18)")
    amount = round_up_division(position.size_in_usd * DISTANCE_UNIT, leverage * market.collateral_price_min)
    return liquidation_distance(replace(position, collateral_amount=amount), market, index_price)


def collateral_usd_e18(amount: int, collateral_price_e18: int, decimals: int) -> int:
    """E18 USD of ``amount`` collateral token units at its price (E18 USD per whole token; GMX credits
    collateral at the token's price, not one USD a token), rounded down."""
    _need(collateral_price_e18 > 0, "collateral_price_e18", "must be > 0")
    return amount * collateral_price_e18 // 10**decimals


def collateral_amount_e18(usd_e18: int, collateral_price_e18: int, decimals: int, round_up: bool = False) -> int:
    """Token units worth ``usd_e18`` (E18 USD) at the collateral's price, rounded down or up."""
    _need(collateral_price_e18 > 0, "collateral_price_e18", "must be > 0")
    _need(usd_e18 >= 0, "usd_e18", "must be >= 0")
    num = usd_e18 * 10**decimals
    return round_up_division(num, collateral_price_e18) if round_up else num // collateral_price_e18


# ---------------------------------------------------------------------------------------------
# The policy's market model on GMX v2 (hedger.core.model.MarketModel), from one cycle's reads
# ---------------------------------------------------------------------------------------------

from hedger.core.model import INFINITE, MarketModel, Minimums, PostTrade, leverage, register_model  # noqa: E402
from hedger.core.types import AccountState, MarketState, Snapshot  # noqa: E402

E18_PER_USD30 = 10**12            # USD with 30 decimals -> E18 USD
SECONDS_PER_DAY = 86_400
OPENING_CUSHION_PCT = 102         # opening checks with 2% to spare: the keeper's price is not ours


@dataclass(frozen=True, kw_only=True)
class GmxMarketState(MarketState):
    """One GMX v2 market and the hedged account's position in it, as the adapter read them at one
    block, in GMX's own units (USD and factors with 30 decimals, token amounts in native units).
    ``price`` (E18) is the hedger's oracle: GMX's keepers price orders with their own signed
    prices, so the model values everything at the oracle the hedger trusts."""

    index_decimals: int                        # the index token's decimals (18 for ETH)
    long_open_interest: int                    # USD (1e30), both collateral tokens
    short_open_interest: int
    impact_pool_amount: int                    # POSITION_IMPACT_POOL_AMOUNT, index tokens
    impact: ImpactParams
    position_fee_factor_improved: int          # POSITION_FEE_FACTOR(market, true)
    position_fee_factor_not_improved: int      # POSITION_FEE_FACTOR(market, false)
    min_collateral_usd: int                    # MIN_COLLATERAL_USD (USD, 1e30)
    min_collateral_factor: int                 # MIN_COLLATERAL_FACTOR: the opening/withdrawal check
    min_collateral_factor_for_liquidation: int  # MIN_COLLATERAL_FACTOR_FOR_LIQUIDATION
    min_position_size_usd: int                 # MIN_POSITION_SIZE_USD (USD, 1e30; 0: none)
    borrowing_factor_per_second_longs: int     # Reader.getMarketInfo
    borrowing_factor_per_second_shorts: int
    longs_pay_shorts: bool                     # getMarketInfo.nextFunding
    funding_factor_per_second: int
    request_expiration_time: int               # REQUEST_EXPIRATION_TIME (seconds)
    execution_fee_increase: int = 0            # gas an increase order's execution fee pays for (GMX's estimate
    execution_fee_decrease: int = 0            # x the fee margin); x the gas price = wei of the native token
    position: Position | None = None           # the account's position (market, collateral token)
    pending_borrowing_usd: int = 0             # getPositionInfo fees.borrowing.borrowingFeeUsd (1e30)
    pending_funding_amount: int = 0            # getPositionInfo fees.funding.fundingFeeAmount (collateral units)
    claimable_funding_amount: int = 0          # funding received, claimable (collateral units)
    # capped negative price impact, claimable by time key (CLAIMABLE_COLLATERAL_AMOUNT, market,
    # collateral token, timestamp // CLAIMABLE_COLLATERAL_TIME_DIVISOR, account): (time key, amount)
    claimable_collateral: tuple[tuple[int, int], ...] = ()
    native_balance: int | None = None          # the account's native balance (wei), for execution fees


def _usd30_to_e18(usd: int) -> int:
    return _div_toward_zero(usd, E18_PER_USD30)


class GmxModel(MarketModel):
    """GMX v2's rules for the policy: every change is an order (size and collateral alike), fills
    carry price impact and the position fee, the liquidation rule is GMX's (``liquidation_check``:
    remaining collateral after PnL, close impact, pending impact and the costs of closing, against
    max(MIN_COLLATERAL_USD, size x MIN_COLLATERAL_FACTOR_FOR_LIQUIDATION)). ``margin`` in every
    :class:`PostTrade` is that remaining collateral (E18 USD): what GMX liquidates on."""

    collateral_moves = "order"          # MarketIncrease/MarketDecrease with sizeDeltaUsd 0
    trades_are_orders = True            # a GMX keeper executes every order later
    orders_in_flight = 1                # our rule (GMX allows more, executed in no set order)
    collateral_orders_in_flight = 1     # a collateral-only order beside a size order, when safe either way
    can_hold_long = True                # negative exposure: isLong true

    def claimable_usd(self) -> int:
        """Funding received (claimFundingFees, MarketUtils.claimFundingFees) and capped price impact
        (claimCollateral, MarketUtils.claimCollateral): GMX never adds them to collateral."""
        m = self.market
        return self.collateral_usd(m.claimable_funding_amount + sum(a for _, a in m.claimable_collateral))

    def __init__(self, market: GmxMarketState, account: AccountState, price: int, collateral_price: int) -> None:
        _need(price > 0, "price", "must be > 0 (E18 USD per whole index token)")
        _need(collateral_price > 0, "collateral_price", "must be > 0 (E18 USD per whole collateral token)")
        self.market = market
        self.account = account
        self.price = price
        self._collateral_price = collateral_price
        self.collateral_decimals = market.collateral_decimals
        # GMX's price units: USD per smallest unit x 1e30
        self.index_price = price * 10**12 // 10**market.index_decimals
        self.cprice = collateral_price * 10**12 // 10**market.collateral_decimals
        _need(self.index_price > 0 and self.cprice > 0, "price", "too small for GMX's price units")
        self._positions: dict[int, tuple[Position, LiquidationMarket] | None] = {}

    # -------------------------------------------------------------- units
    @property
    def market_price(self) -> int:
        return self.price

    @property
    def collateral_price(self) -> int:  # type: ignore[override]
        return self._collateral_price

    def _tokens(self, size_e18: int) -> int:
        """|size| (E18 asset units) in the index token's native units."""
        return abs(size_e18) * 10**self.market.index_decimals // 10**18

    def _size_e18(self, pos: Position | None) -> int:
        if pos is None or pos.size_in_tokens == 0:
            return 0
        size = pos.size_in_tokens * 10**18 // 10**self.market.index_decimals
        return size if pos.is_long else -size

    def _liq_market(self, long_oi: int, short_oi: int) -> LiquidationMarket:
        m = self.market
        return LiquidationMarket(collateral_price_min=self.cprice, long_open_interest=long_oi,
                                 short_open_interest=short_oi, impact=m.impact,
                                 position_fee_factor_improved=m.position_fee_factor_improved,
                                 position_fee_factor_not_improved=m.position_fee_factor_not_improved,
                                 min_collateral_usd=m.min_collateral_usd,
                                 min_collateral_factor=m.min_collateral_factor_for_liquidation)

    # -------------------------------------------------------------- the trade
    def _position_now(self) -> tuple[Position | None, int]:
        """The position and its collateral (native units, may fall below zero in a projection) with
        the fees pending on it settled: any order's execution charges them first
        (gmx-synthetics contracts/position/IncreasePositionUtils.sol, DecreasePositionCollateralUtils.sol)."""
        pos, m = self.market.position, self.market
        if pos is None or pos.size_in_usd == 0:
            return None, 0
        owed = usd_to_collateral_amount(m.pending_borrowing_usd, self.cprice) + m.pending_funding_amount
        # settled: the position's borrowing and funding marks become the market's now (GMX updates
        # them on every change), so the rule below charges nothing twice and never compares the
        # position's cumulative factor with a market factor this model does not carry
        settled = replace(pos, borrowing_factor=0, funding_fee_amount_per_size=0)
        return settled, pos.collateral_amount - owed

    def _increase(self, pos: Position | None, collateral: int, is_long: bool, tokens: int,
                  oi: list[int]) -> tuple[Position, int, int, int]:
        """(position, collateral, fee USD, execution price) of growing ``pos`` (or opening) by
        ``tokens`` (gmx-synthetics contracts/position/IncreasePositionUtils.sol: the impact is
        stored as pending, the position fee taken from the collateral)."""
        m = self.market
        usd = tokens * self.index_price
        inc = increase_execution(usd, is_long, self.index_price, self.index_price, oi[0], oi[1],
                                 m.impact_pool_amount, m.impact)
        fee = position_fee_usd(usd, inc.balance_was_improved, m.position_fee_factor_improved,
                               m.position_fee_factor_not_improved)
        base = pos or Position(is_long=is_long, size_in_usd=0, size_in_tokens=0, collateral_amount=0)
        new = replace(base, size_in_usd=base.size_in_usd + usd,
                      size_in_tokens=base.size_in_tokens + inc.size_delta_in_tokens,
                      pending_impact_amount=base.pending_impact_amount + inc.price_impact_amount)
        oi[0 if is_long else 1] += usd
        return new, collateral - usd_to_collateral_amount(fee, self.cprice), fee, inc.execution_price

    def _decrease(self, pos: Position, collateral: int, tokens: int,
                  oi: list[int]) -> tuple[Position | None, int, int, int]:
        """(position or None when closed, collateral, fee USD, execution price) of closing ``tokens``
        of ``pos`` (gmx-synthetics contracts/position/DecreasePositionCollateralUtils.sol
        processCollateral: PnL and impact realised pro rata; a profit is paid out to the receiver,
        a loss and the fees come out of the collateral; closing it all pays the collateral out)."""
        m = self.market
        whole = tokens >= pos.size_in_tokens
        usd = pos.size_in_usd if whole else pos.size_in_usd * tokens // pos.size_in_tokens
        dec = decrease_execution(pos, usd, self.index_price, self.index_price, oi[0], oi[1],
                                 m.impact_pool_amount, m.impact)
        pnl, closed = position_pnl_usd(replace(pos, collateral_amount=0), self.index_price, usd)
        fee = position_fee_usd(usd, dec.balance_was_improved, m.position_fee_factor_improved,
                               m.position_fee_factor_not_improved)
        realised = pnl + dec.total_impact_usd - fee
        if realised < 0:
            collateral -= round_up_division(-realised, self.cprice)
        oi[0 if pos.is_long else 1] -= usd
        if whole:
            return None, 0, fee, dec.execution_price
        new = replace(pos, size_in_usd=pos.size_in_usd - usd, size_in_tokens=pos.size_in_tokens - closed,
                      pending_impact_amount=pos.pending_impact_amount - dec.proportional_pending_impact_amount)
        return new, collateral, fee, dec.execution_price

    def _trade(self, size_delta: int, collateral_delta: int = 0
               ) -> tuple[Position | None, int, int, tuple[int, ...], list[int]]:
        """(position after, its collateral (native, may be < 0: GMX would refuse the order), fee
        USD 1e30, leg execution prices E18, open interests after). Collateral sent with an order
        is added before its fees are taken."""
        pos, collateral = self._position_now()
        collateral += collateral_delta
        oi = [self.market.long_open_interest, self.market.short_open_interest]
        fee, legs = 0, []
        if size_delta != 0:
            size = self._size_e18(pos)
            if pos is not None and (size > 0) != (size_delta > 0):
                pos, collateral, f, px = self._decrease(pos, collateral, self._tokens(size_delta), oi)
                fee += f
                legs.append(px)
                rest = abs(size_delta) - abs(size)
                if rest > 0:
                    pos, collateral, f, px = self._increase(None, collateral_delta, size_delta > 0,
                                                            self._tokens(rest), oi)
                    fee += f
                    legs.append(px)
            else:
                pos, collateral, f, px = self._increase(pos, collateral, size_delta > 0, self._tokens(size_delta), oi)
                fee += f
                legs.append(px)
        if pos is not None and pos.size_in_tokens == 0:
            pos = None
        return pos, collateral, fee, tuple(p * 10**self.market.index_decimals // 10**12 for p in legs), oi

    def _fill_of(self, size_delta: int, legs: tuple[int, ...]) -> int:
        if not legs:
            return self.price
        if len(legs) == 1:
            return legs[0]
        first = abs(self._size_e18(self._position_now()[0]))
        return (legs[0] * first + legs[1] * (abs(size_delta) - first)) // abs(size_delta)

    def fill(self, size_delta: int) -> tuple[int, int]:
        _, _, fee, legs, _ = self._trade(size_delta)
        return self._fill_of(size_delta, legs), _usd30_to_e18(fee)

    def after(self, size_delta: int, collateral_delta_native: int) -> PostTrade:
        pos, collateral, fee, legs, oi = self._trade(size_delta, collateral_delta_native)
        fill, fee_e18 = self._fill_of(size_delta, legs), _usd30_to_e18(fee)
        two = legs if len(legs) == 2 else ()
        if pos is None:
            self._positions[0] = None
            return PostTrade(size=0, margin=0, notional=0, leverage=0, liq_distance=INFINITE, fill_price=fill,
                             fee=fee_e18, leg_fills=two)
        size = self._size_e18(pos)
        deficit = max(-collateral, 0)                 # collateral the order would lack (GMX refuses it)
        pos = replace(pos, collateral_amount=max(collateral, 0))
        lm = self._liq_market(oi[0], oi[1])
        self._positions[size] = (pos, lm)
        check = liquidation_check(pos, lm, self.index_price)
        margin = _usd30_to_e18(check.remaining_collateral_usd - deficit * self.cprice)
        notional = abs(size) * self.price // 10**18
        # signed: negative when GMX would liquidate it already (the liquidation price is behind us)
        liq = liquidation_price(pos, lm)
        if deficit:
            dist = -10**18
        elif liq is None:
            dist = 0 if check.liquidatable else INFINITE
        else:
            move = liq - self.index_price if not pos.is_long else self.index_price - liq
            dist = move * 10**18 // self.index_price
            if check.liquidatable and dist > 0:
                dist = 0
        liq_e18 = 0 if liq is None else liq * 10**self.market.index_decimals // 10**12
        return PostTrade(size=size, margin=margin, notional=notional, leverage=leverage(size, self.price, margin),
                         liq_distance=dist, fill_price=fill, fee=fee_e18, leg_fills=two, liquidation_price=liq_e18)

    def _required_usd(self, size_in_usd: int, factor: int) -> int:
        return max(self.market.min_collateral_usd, apply_factor(size_in_usd, factor))

    def max_withdrawal(self) -> int:
        """A collateral-only MarketDecrease is refused unless the remaining collateral stays above
        max(MIN_COLLATERAL_USD, size x MIN_COLLATERAL_FACTOR) (gmx-synthetics
        contracts/position/PositionUtils.sol validatePosition / willPositionCollateralBeSufficient):
        remaining is linear in the collateral, so the room is (remaining - required) / price."""
        pos, collateral = self._position_now()
        if pos is None or collateral <= 0:
            return 0
        pos = replace(pos, collateral_amount=collateral)
        check = liquidation_check(pos, self._oi(), self.index_price)
        room = check.remaining_collateral_usd - self._required_usd(pos.size_in_usd, self.market.min_collateral_factor)
        return max(0, min(room // self.cprice, collateral))

    def minimums(self) -> Minimums:
        m = self.market
        order = m.min_position_size_usd * 10**18 // (self.index_price * 10**m.index_decimals) \
            if m.min_position_size_usd else 0
        return Minimums(collateral=_usd30_to_e18(m.min_collateral_usd), order=order)

    def carry_rate_per_day(self, size: int) -> int:
        """Borrowing of the position's side plus funding (paid by the larger side: the paying side
        pays the factor, the other receives it spread over its open interest), per day, E18
        (gmx-synthetics contracts/market/MarketUtils.sol getBorrowingFactorPerSecond,
        getNextFundingAmountPerSize; rates from Reader.getMarketInfo)."""
        m = self.market
        is_long = size > 0
        borrowing = m.borrowing_factor_per_second_longs if is_long else m.borrowing_factor_per_second_shorts
        paying = m.longs_pay_shorts == is_long
        f = m.funding_factor_per_second
        if paying:
            funding = f
        else:
            payer_oi = m.long_open_interest if m.longs_pay_shorts else m.short_open_interest
            receiver_oi = m.short_open_interest if m.longs_pay_shorts else m.long_open_interest
            funding = -(f * payer_oi // receiver_oi) if receiver_oi else 0
        return (borrowing + funding) * SECONDS_PER_DAY // E18_PER_USD30

    def margin_for_leverage(self, notional: int, leverage: int) -> int:
        return notional * 10**18 // leverage

    def _position_of(self, size: int) -> tuple[Position, LiquidationMarket] | None:
        """The position ``after()`` produced for ``size`` (with the open interests after it): the
        account's own when it is of ``size``, else the one trading to ``size`` would leave."""
        if size in self._positions:
            return self._positions[size]
        now, collateral = self._position_now()
        if now is not None and self._size_e18(now) == size:
            return replace(now, collateral_amount=max(collateral, 0)), self._oi()
        tokens = self._tokens(size)
        if tokens == 0:
            return None
        # the position the trade to ``size`` would leave (its own pending impact included)
        self.after(size - self._size_e18(now), 0)
        if size in self._positions:
            return self._positions[size]
        pos = Position(is_long=size > 0, size_in_usd=tokens * self.index_price, size_in_tokens=tokens,
                       collateral_amount=0)
        oi = [self.market.long_open_interest, self.market.short_open_interest]
        if now is not None:                            # the account's own position is replaced by this one
            oi[0 if now.is_long else 1] -= now.size_in_usd
        oi[0 if pos.is_long else 1] += pos.size_in_usd
        return pos, self._liq_market(max(oi[0], 0), max(oi[1], 0))

    def _oi(self) -> LiquidationMarket:
        return self._liq_market(self.market.long_open_interest, self.market.short_open_interest)

    def distance_at_leverage(self, size: int, leverage: int) -> int:
        """The distance of the position of ``size`` (its entry, pending impact and PnL as they
        stand) when its remaining collateral, ``after()``'s margin, is its notional at today's price
        / ``leverage``: the remaining collateral is linear in the collateral amount, so that amount
        is found directly (rounded up), then GMX's rule gives the distance."""
        got = self._position_of(size)
        if got is None or leverage <= 0:
            return INFINITE
        pos, lm = got
        notional_usd = self._tokens(size) * self.index_price
        bare = liquidation_check(replace(pos, collateral_amount=0), lm, self.index_price).remaining_collateral_usd
        want = round_up_division(notional_usd * 10**18, leverage)
        amount = max(0, round_up_division(want - bare, self.cprice))
        d = liquidation_distance(replace(pos, collateral_amount=amount), lm, self.index_price)
        return INFINITE if d is None else d

    def margin_for_distance(self, size: int, distance: int) -> int:
        """GMX's rule is linear in the collateral (``collateral_for_distance``): the least amount
        whose remaining collateral survives ``distance``, reported in ``after()``'s measure (the
        remaining collateral at today's price)."""
        got = self._position_of(size)
        if got is None:
            return 0
        pos, lm = got
        amount = collateral_for_distance(pos, lm, self.index_price, max(distance, 0))
        check = liquidation_check(replace(pos, collateral_amount=amount), lm, self.index_price)
        return -(-check.remaining_collateral_usd // E18_PER_USD30)

    def opening_allowed(self, pt: PostTrade) -> bool:
        """GMX refuses an increase leaving the remaining collateral below max(MIN_COLLATERAL_USD,
        size x MIN_COLLATERAL_FACTOR) or the size below MIN_POSITION_SIZE_USD (PositionUtils.sol
        validatePosition), with the cushion; and never a liquidatable one."""
        if pt.size == 0:
            return True
        m = self.market
        size_usd = pt.notional * E18_PER_USD30
        required = _usd30_to_e18(self._required_usd(size_usd, m.min_collateral_factor)) * OPENING_CUSHION_PCT // 100
        return pt.margin >= required and pt.liq_distance > 0 and size_usd >= m.min_position_size_usd


@register_model("gmx-v2")
def model_for(s: Snapshot) -> GmxModel:
    """The GMX v2 model of a snapshot, at the hedger's oracle price (the market's reading of it)."""
    if not isinstance(s.market, GmxMarketState):
        raise TypeError(f"Snapshot.market: a GMX v2 snapshot needs a GmxMarketState, got {type(s.market).__name__} "
                        "(fix: read it with the gmx-v2 adapter)")
    price = s.market.price if s.market.price > 0 else s.oracle.price_e18
    return GmxModel(market=s.market, account=s.account, price=price, collateral_price=s.collateral_price)
