"""Uniswap v3 math in integers, bit-exact with the deployed contracts; no I/O.

What the hedger needs from a pool and its positions, computed the way the
contracts compute it, so that a number read here equals the number the chain
would pay out:

* :func:`sqrt_ratio_at_tick` / :func:`tick_at_sqrt_ratio`: ``TickMath`` (v3-core).
* :func:`amount0_delta` / :func:`amount1_delta`: ``SqrtPriceMath`` with either rounding.
* :func:`amounts_for_liquidity`: the principal ``NonfungiblePositionManager.decreaseLiquidity``
  returns for the whole liquidity (the pool's ``burn`` rounds both amounts down).
* :func:`fee_growth_inside` / :func:`fees_owed`: ``Tick.getFeeGrowthInside`` and the manager's
  fee accounting (uint256 wrap-around, ``FullMath.mulDiv`` by 2**128, uint128 truncation), i.e.
  what ``decreaseLiquidity`` + ``collect`` would pay in fees.
* :func:`mean_tick` / :func:`quote_at_tick`: ``OracleLibrary.consult`` (mean tick rounded toward
  negative infinity) and ``OracleLibrary.getQuoteAtTick``.
* :func:`price_e18_at_tick`: the asset's price in the quote token as an 18-decimal integer.
* :func:`asset_amount_of_position`: principal + owed fees of a position in the asset's units.

Bad input (a tick out of range, a price no pool can have, a ``slot0`` tick that does not go with
its price) raises :class:`UniswapMathError` (a ``ValueError``) naming the argument and the fix.
Only the standard library is imported, so the math can be used and tested without a chain.
"""

from __future__ import annotations

from collections.abc import Sequence

MIN_TICK = -887272
MAX_TICK = 887272
MIN_SQRT_RATIO = 4295128739
MAX_SQRT_RATIO = 1461446703485210103287273052203988822378723970342

Q96 = 1 << 96
Q128 = 1 << 128
Q192 = 1 << 192

UINT32_MAX = (1 << 32) - 1
UINT128_MAX = (1 << 128) - 1
UINT160_MAX = (1 << 160) - 1
UINT256_MAX = (1 << 256) - 1
_MOD256 = 1 << 256
_MOD128 = 1 << 128
_MOD56 = 1 << 56
_INT56_MIN = -(1 << 55)
_INT56_MAX = (1 << 55) - 1

# sqrt(1.0001)^-(2^i) in Q128.128, for each bit i of |tick| (TickMath.getSqrtRatioAtTick).
_TICK_FACTORS = (
    (0x2, 0xFFF97272373D413259A46990580E213A),
    (0x4, 0xFFF2E50F5F656932EF12357CF3C7FDCC),
    (0x8, 0xFFE5CACA7E10E4E61C3624EAA0941CD0),
    (0x10, 0xFFCB9843D60F6159C9DB58835C926644),
    (0x20, 0xFF973B41FA98C081472E6896DFB254C0),
    (0x40, 0xFF2EA16466C96A3843EC78B326B52861),
    (0x80, 0xFE5DEE046A99A2A811C461F1969C3053),
    (0x100, 0xFCBE86C7900A88AEDCFFC83B479AA3A4),
    (0x200, 0xF987A7253AC413176F2B074CF7815E54),
    (0x400, 0xF3392B0822B70005940C7A398E4B70F3),
    (0x800, 0xE7159475A2C29B7443B29C7FA6E889D9),
    (0x1000, 0xD097F3BDFD2022B8845AD8F792AA5825),
    (0x2000, 0xA9F746462D870FDF8A65DC1F90E061E5),
    (0x4000, 0x70D869A156D2A1B890BB3DF62BAF32F7),
    (0x8000, 0x31BE135F97D08FD981231505542FCFA6),
    (0x10000, 0x9AA508B5B7A84E1C677DE54F3E99BC9),
    (0x20000, 0x5D6AF8DEDB81196699C329225EE604),
    (0x40000, 0x2216E584F5FA1EA926041BEDFE98),
    (0x80000, 0x48A170391F7DC42444E8FA2),
)
_TICK_ODD_FACTOR = 0xFFFCB933BD6FAD37AA2D162D1A594001
# log_sqrt(1.0001)(2) in Q.64 and the error bounds of getTickAtSqrtRatio's log approximation.
_LOG_SQRT10001_OF_2 = 255738958999603826347141
_TICK_LOW_ERROR = 3402992956809132418596140100660247210
_TICK_HIGH_ERROR = 291339464771989622907027621153398088495


class UniswapMathError(ValueError):
    """An argument no pool or position can have; the message names it and says what to fix."""


def _int(name: str, value: object, lo: int, hi: int, what: str) -> int:
    """``value`` as an int in [lo, hi], or a UniswapMathError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UniswapMathError(f"{name} must be an integer ({what}), got {value!r}")
    if not lo <= value <= hi:
        raise UniswapMathError(f"{name}={value} is out of range: {what} lies in [{lo}, {hi}]")
    return value


def _tick(name: str, value: object) -> int:
    return _int(name, value, MIN_TICK, MAX_TICK, "a Uniswap v3 tick (TickMath MIN_TICK..MAX_TICK)")


def _pair(name: str, value: object, hi: int, what: str) -> tuple[int, int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise UniswapMathError(f"{name} must be a pair (token0, token1) of integers, got {value!r}")
    return (_int(f"{name}[0]", value[0], 0, hi, what), _int(f"{name}[1]", value[1], 0, hi, what))


def _range(tick_lower: object, tick_upper: object) -> tuple[int, int]:
    lower, upper = _tick("tick_lower", tick_lower), _tick("tick_upper", tick_upper)
    if lower >= upper:
        raise UniswapMathError(
            f"tick_lower={lower} must be below tick_upper={upper} (a position's range is [lower, upper))")
    return lower, upper


def mul_div(a: int, b: int, denominator: int) -> int:
    """floor(a * b / denominator) as FullMath.mulDiv (reverts if the result needs more than 256 bits)."""
    if denominator <= 0:
        raise UniswapMathError(f"mul_div denominator={denominator} must be positive")
    result = a * b // denominator
    if result > UINT256_MAX:
        raise UniswapMathError("mul_div result does not fit in 256 bits (FullMath.mulDiv reverts)")
    return result


def mul_div_rounding_up(a: int, b: int, denominator: int) -> int:
    """ceil(a * b / denominator) as FullMath.mulDivRoundingUp."""
    result = mul_div(a, b, denominator)
    if a * b % denominator:
        if result >= UINT256_MAX:
            raise UniswapMathError("mul_div_rounding_up result does not fit in 256 bits")
        result += 1
    return result


def sqrt_ratio_at_tick(tick: int) -> int:
    """sqrt(1.0001**tick) * 2**96, rounded as TickMath.getSqrtRatioAtTick (reverts 'T' out of range)."""
    if isinstance(tick, bool) or not isinstance(tick, int):
        raise UniswapMathError(f"tick must be an integer, got {tick!r}")
    abs_tick = abs(tick)
    if abs_tick > MAX_TICK:
        raise UniswapMathError(
            f"tick={tick} is out of range (TickMath reverts 'T'): |tick| must be at most {MAX_TICK}")
    ratio = _TICK_ODD_FACTOR if abs_tick & 0x1 else Q128
    for bit, factor in _TICK_FACTORS:
        if abs_tick & bit:
            ratio = (ratio * factor) >> 128
    if tick > 0:
        ratio = UINT256_MAX // ratio
    # Q128.128 -> Q64.96, rounding up so that tick_at_sqrt_ratio of the result gives the tick back.
    return (ratio >> 32) + (1 if ratio & 0xFFFFFFFF else 0)


def tick_at_sqrt_ratio(sqrt_price_x96: int) -> int:
    """The greatest tick whose sqrt ratio is <= ``sqrt_price_x96``, as TickMath.getTickAtSqrtRatio.

    Follows the contract's log2 approximation step by step (then picks between the two candidate
    ticks with :func:`sqrt_ratio_at_tick`), so it agrees with the chain bit for bit.
    """
    if isinstance(sqrt_price_x96, bool) or not isinstance(sqrt_price_x96, int):
        raise UniswapMathError(f"sqrt_price_x96 must be an integer (Q64.96), got {sqrt_price_x96!r}")
    if not MIN_SQRT_RATIO <= sqrt_price_x96 < MAX_SQRT_RATIO:
        raise UniswapMathError(
            f"sqrt_price_x96={sqrt_price_x96} is out of range (TickMath reverts 'R'): it must lie in "
            f"[MIN_SQRT_RATIO={MIN_SQRT_RATIO}, MAX_SQRT_RATIO={MAX_SQRT_RATIO})")
    ratio = sqrt_price_x96 << 32
    msb = ratio.bit_length() - 1
    r = ratio >> (msb - 127) if msb >= 128 else ratio << (127 - msb)
    log_2 = (msb - 128) << 64
    for shift in range(63, 49, -1):
        r = (r * r) >> 127
        f = r >> 128
        log_2 |= f << shift
        r >>= f
    log_sqrt10001 = log_2 * _LOG_SQRT10001_OF_2
    tick_low = (log_sqrt10001 - _TICK_LOW_ERROR) >> 128
    tick_high = (log_sqrt10001 + _TICK_HIGH_ERROR) >> 128
    if tick_low == tick_high:
        return tick_low
    return tick_high if sqrt_ratio_at_tick(tick_high) <= sqrt_price_x96 else tick_low


def _sqrt_price(name: str, value: object) -> int:
    return _int(name, value, MIN_SQRT_RATIO, MAX_SQRT_RATIO,
                "a pool's sqrtPriceX96 (slot0), between TickMath's MIN_SQRT_RATIO and MAX_SQRT_RATIO")


def amount0_delta(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int, round_up: bool) -> int:
    """Token0 between two sqrt prices for ``liquidity``, as SqrtPriceMath.getAmount0Delta."""
    a = _int("sqrt_ratio_a_x96", sqrt_ratio_a_x96, 0, UINT160_MAX, "a Q64.96 sqrt price")
    b = _int("sqrt_ratio_b_x96", sqrt_ratio_b_x96, 0, UINT160_MAX, "a Q64.96 sqrt price")
    liq = _int("liquidity", liquidity, 0, UINT128_MAX, "a uint128 liquidity")
    if a > b:
        a, b = b, a
    if a == 0:
        raise UniswapMathError("sqrt_ratio_a_x96 must be positive (SqrtPriceMath.getAmount0Delta reverts on 0)")
    numerator1, numerator2 = liq << 96, b - a
    if round_up:
        inner = mul_div_rounding_up(numerator1, numerator2, b)
        return -(-inner // a)
    return mul_div(numerator1, numerator2, b) // a


def amount1_delta(sqrt_ratio_a_x96: int, sqrt_ratio_b_x96: int, liquidity: int, round_up: bool) -> int:
    """Token1 between two sqrt prices for ``liquidity``, as SqrtPriceMath.getAmount1Delta."""
    a = _int("sqrt_ratio_a_x96", sqrt_ratio_a_x96, 0, UINT160_MAX, "a Q64.96 sqrt price")
    b = _int("sqrt_ratio_b_x96", sqrt_ratio_b_x96, 0, UINT160_MAX, "a Q64.96 sqrt price")
    liq = _int("liquidity", liquidity, 0, UINT128_MAX, "a uint128 liquidity")
    if a > b:
        a, b = b, a
    if round_up:
        return mul_div_rounding_up(liq, b - a, Q96)
    return mul_div(liq, b - a, Q96)


def amounts_for_liquidity(sqrt_price_x96: int, tick_lower: int, tick_upper: int,
                          liquidity: int) -> tuple[int, int]:
    """(amount0, amount1) that ``decreaseLiquidity`` of all ``liquidity`` returns at this price.

    The pool's ``burn`` is ``_modifyPosition`` with a negative delta, so both SqrtPriceMath deltas
    round down. The pool branches on ``slot0.tick``; branching on the price instead gives the same
    amounts (at a range boundary the in-range formula yields 0 of one token either way), so the
    price alone decides: at or below the range all token0, at or above it all token1.
    """
    price = _sqrt_price("sqrt_price_x96", sqrt_price_x96)
    lower, upper = _range(tick_lower, tick_upper)
    liq = _int("liquidity", liquidity, 0, UINT128_MAX, "a position's uint128 liquidity")
    sqrt_lower, sqrt_upper = sqrt_ratio_at_tick(lower), sqrt_ratio_at_tick(upper)
    if price <= sqrt_lower:
        return amount0_delta(sqrt_lower, sqrt_upper, liq, False), 0
    if price < sqrt_upper:
        return amount0_delta(price, sqrt_upper, liq, False), amount1_delta(sqrt_lower, price, liq, False)
    return 0, amount1_delta(sqrt_lower, sqrt_upper, liq, False)


def check_slot0(sqrt_price_x96: int, tick_current: int) -> None:
    """Refuse a (sqrtPriceX96, tick) pair that no ``slot0`` can hold (e.g. read at different blocks).

    The pool keeps ``sqrt_ratio_at_tick(tick) <= sqrtPriceX96 <= sqrt_ratio_at_tick(tick + 1)``
    (equality on the right after a swap that stopped exactly on a tick going down).
    """
    price = _sqrt_price("sqrt_price_x96", sqrt_price_x96)
    tick = _tick("tick_current", tick_current)
    high = sqrt_ratio_at_tick(tick + 1) if tick < MAX_TICK else MAX_SQRT_RATIO
    if not sqrt_ratio_at_tick(tick) <= price <= high:
        raise UniswapMathError(
            f"tick_current={tick} does not go with sqrt_price_x96={price} (its tick is "
            f"{tick_at_sqrt_ratio(min(price, MAX_SQRT_RATIO - 1))}): read both from one slot0() call")


def fee_growth_inside(tick_current: int, tick_lower: int, tick_upper: int, fee_growth_global_x128: int,
                      lower_fee_growth_outside_x128: int, upper_fee_growth_outside_x128: int) -> int:
    """Fee growth per unit of liquidity inside [tick_lower, tick_upper), as Tick.getFeeGrowthInside.

    One token at a time; every subtraction wraps modulo 2**256 as the contract's does.
    """
    current = _tick("tick_current", tick_current)
    lower, upper = _range(tick_lower, tick_upper)
    what = "a uint256 fee growth in Q128.128"
    global_ = _int("fee_growth_global_x128", fee_growth_global_x128, 0, UINT256_MAX, what)
    outside_lower = _int("lower_fee_growth_outside_x128", lower_fee_growth_outside_x128, 0, UINT256_MAX, what)
    outside_upper = _int("upper_fee_growth_outside_x128", upper_fee_growth_outside_x128, 0, UINT256_MAX, what)
    below = outside_lower if current >= lower else (global_ - outside_lower) % _MOD256
    above = outside_upper if current < upper else (global_ - outside_upper) % _MOD256
    return (global_ - below - above) % _MOD256


def fees_owed(*, liquidity: int, tick_current: int, tick_lower: int, tick_upper: int,
              fee_growth_global_x128: Sequence[int], lower_fee_growth_outside_x128: Sequence[int],
              upper_fee_growth_outside_x128: Sequence[int], fee_growth_inside_last_x128: Sequence[int],
              tokens_owed: Sequence[int]) -> tuple[int, int]:
    """(owed0, owed1): fees a static ``decreaseLiquidity`` + ``collect`` of the position would pay.

    Pairs are (token0, token1). Inputs come from one block: the pool's ``feeGrowthGlobal{0,1}X128``
    and ``slot0().tick``, ``ticks(tick_lower)`` / ``ticks(tick_upper)``'s ``feeGrowthOutside{0,1}X128``,
    and the manager's ``positions(tokenId)`` (liquidity, ``feeGrowthInside{0,1}LastX128``,
    ``tokensOwed{0,1}``). As the manager does: ``tokensOwed + uint128(mulDiv(inside - last,
    liquidity, 2**128))``, the subtraction modulo 2**256, the cast and the sum modulo 2**128.
    """
    liq = _int("liquidity", liquidity, 0, UINT128_MAX, "a position's uint128 liquidity")
    what = "a uint256 fee growth in Q128.128"
    globals_ = _pair("fee_growth_global_x128", fee_growth_global_x128, UINT256_MAX, what)
    lowers = _pair("lower_fee_growth_outside_x128", lower_fee_growth_outside_x128, UINT256_MAX, what)
    uppers = _pair("upper_fee_growth_outside_x128", upper_fee_growth_outside_x128, UINT256_MAX, what)
    lasts = _pair("fee_growth_inside_last_x128", fee_growth_inside_last_x128, UINT256_MAX, what)
    owed = _pair("tokens_owed", tokens_owed, UINT128_MAX, "a uint128 amount in the token's units")
    result = []
    for i in (0, 1):
        inside = fee_growth_inside(tick_current, tick_lower, tick_upper, globals_[i], lowers[i], uppers[i])
        fees = mul_div((inside - lasts[i]) % _MOD256, liq, Q128) % _MOD128
        result.append((owed[i] + fees) % _MOD128)
    return result[0], result[1]


def mean_tick(tick_cumulatives: Sequence[int], seconds: int) -> int:
    """Arithmetic mean tick over ``seconds``, rounded toward negative infinity (OracleLibrary.consult).

    ``tick_cumulatives`` is what ``pool.observe([seconds, 0])`` returns: (then, now). The
    difference wraps as an int56 like the contract's.
    """
    window = _int("seconds", seconds, 1, UINT32_MAX, "a TWAP window in seconds (OracleLibrary reverts 'BP' on 0)")
    if isinstance(tick_cumulatives, (str, bytes)) or not isinstance(tick_cumulatives, Sequence) \
            or len(tick_cumulatives) != 2:
        raise UniswapMathError(
            f"tick_cumulatives must be the pair pool.observe([seconds, 0]) returns, got {tick_cumulatives!r}")
    then = _int("tick_cumulatives[0]", tick_cumulatives[0], _INT56_MIN, _INT56_MAX, "an int56 tick cumulative")
    now = _int("tick_cumulatives[1]", tick_cumulatives[1], _INT56_MIN, _INT56_MAX, "an int56 tick cumulative")
    delta = (now - then - _INT56_MIN) % _MOD56 + _INT56_MIN
    tick = delta // window  # Python floors: the contract's truncation plus its "round to -inf" step
    if not MIN_TICK <= tick <= MAX_TICK:
        raise UniswapMathError(
            f"mean tick {tick} over {window}s is outside [{MIN_TICK}, {MAX_TICK}]: tick_cumulatives "
            f"{list(tick_cumulatives)} are not two observations of one pool {window}s apart")
    return tick


def quote_at_tick(tick: int, base_amount: int, base_is_token0: bool) -> int:
    """Quote-token amount for ``base_amount`` of the base token at ``tick``, as OracleLibrary.getQuoteAtTick."""
    sqrt_ratio = sqrt_ratio_at_tick(tick)
    base = _int("base_amount", base_amount, 0, UINT128_MAX, "a uint128 amount of the base token")
    if sqrt_ratio <= UINT128_MAX:
        ratio_x192 = sqrt_ratio * sqrt_ratio
        return mul_div(ratio_x192, base, Q192) if base_is_token0 else mul_div(Q192, base, ratio_x192)
    ratio_x128 = mul_div(sqrt_ratio, sqrt_ratio, 1 << 64)
    return mul_div(ratio_x128, base, Q128) if base_is_token0 else mul_div(Q128, base, ratio_x128)


def price_e18_at_tick(tick: int, decimals0: int, decimals1: int, asset_is_token0: bool) -> int:
    """The asset's price in the other (quote) token at ``tick``, as an 18-decimal integer, rounded down.

    ``1.0001**tick`` is token1 per token0 in raw units; the exact value at ``sqrt_ratio_at_tick(tick)``
    is rescaled by the decimals and floored once: for the asset as token0 it is
    ``sqrtP**2 * 10**(18 + decimals0) / (2**192 * 10**decimals1)``, as token1 the reciprocal
    with the decimals swapped. (Equal to :func:`quote_at_tick` of ``10**(18 + dA - dQ)`` base units
    whenever that contract's exact branch applies, i.e. ``sqrtP < 2**128``.)
    """
    sqrt_ratio = sqrt_ratio_at_tick(tick)
    d0 = _int("decimals0", decimals0, 0, 255, "an ERC-20 decimals() value")
    d1 = _int("decimals1", decimals1, 0, 255, "an ERC-20 decimals() value")
    if not isinstance(asset_is_token0, bool):
        raise UniswapMathError(f"asset_is_token0 must be True or False, got {asset_is_token0!r}")
    ratio_x192 = sqrt_ratio * sqrt_ratio
    if asset_is_token0:
        return ratio_x192 * 10 ** (18 + d0) // (Q192 * 10**d1)
    return Q192 * 10 ** (18 + d1) // (ratio_x192 * 10**d0)


def asset_amount_of_position(*, sqrt_price_x96: int, tick_current: int, tick_lower: int, tick_upper: int,
                             liquidity: int, fee_growth_global_x128: Sequence[int],
                             lower_fee_growth_outside_x128: Sequence[int],
                             upper_fee_growth_outside_x128: Sequence[int],
                             fee_growth_inside_last_x128: Sequence[int], tokens_owed: Sequence[int],
                             asset_is_token0: bool) -> int:
    """The asset a position holds (principal + owed fees) in the asset's native units.

    What a static ``decreaseLiquidity`` of all its liquidity followed by ``collect`` would pay in
    the asset token. ``sqrt_price_x96`` and ``tick_current`` are one ``slot0()`` reading (checked
    by :func:`check_slot0`); the other arguments are as for :func:`fees_owed`. A total above
    uint128 (which the manager's bookkeeping would wrap) is refused rather than wrapped.
    """
    if not isinstance(asset_is_token0, bool):
        raise UniswapMathError(f"asset_is_token0 must be True or False, got {asset_is_token0!r}")
    check_slot0(sqrt_price_x96, tick_current)
    principal = amounts_for_liquidity(sqrt_price_x96, tick_lower, tick_upper, liquidity)
    owed = fees_owed(liquidity=liquidity, tick_current=tick_current, tick_lower=tick_lower,
                     tick_upper=tick_upper, fee_growth_global_x128=fee_growth_global_x128,
                     lower_fee_growth_outside_x128=lower_fee_growth_outside_x128,
                     upper_fee_growth_outside_x128=upper_fee_growth_outside_x128,
                     fee_growth_inside_last_x128=fee_growth_inside_last_x128, tokens_owed=tokens_owed)
    i = 0 if asset_is_token0 else 1
    total = principal[i] + owed[i]
    if total > UINT128_MAX:
        raise UniswapMathError(
            f"the position's token{i} total {total} exceeds uint128: the manager's bookkeeping would wrap; "
            "collect its fees before counting it as exposure")
    return total
