"""Integer fixed-point helpers with explicit rounding.

The market keeps 18-decimal fixed point and is written in Vyper, whose signed
``//`` truncates toward zero (``-7 // 2 == -3``) where Python floors
(``-7 // 2 == -4``). Code here that mirrors contract math uses :func:`sdiv`,
and ``tests/test_fixedpoint.py`` checks it against the deployed contract.
"""

from __future__ import annotations

UNIT = 10**18
DAY = 86_400


def sdiv(a: int, b: int) -> int:
    """Signed division truncating toward zero, as the EVM and Vyper do."""
    if b == 0:
        raise ZeroDivisionError("division by zero")
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def mul_div_down(a: int, b: int, c: int) -> int:
    """floor(a * b / c) for non-negative operands."""
    if a < 0 or b < 0 or c <= 0:
        raise ValueError("mul_div_down takes non-negative operands and a positive divisor")
    return a * b // c


def mul_div_up(a: int, b: int, c: int) -> int:
    """ceil(a * b / c) for non-negative operands."""
    if a < 0 or b < 0 or c <= 0:
        raise ValueError("mul_div_up takes non-negative operands and a positive divisor")
    return -(-(a * b) // c)


def to_e18(amount: int, decimals: int) -> int:
    """Native units with ``decimals`` -> 18-decimal fixed point (exact for decimals <= 18)."""
    if decimals <= 18:
        return amount * 10 ** (18 - decimals)
    return sdiv(amount, 10 ** (decimals - 18))


def from_e18_down(value: int, decimals: int) -> int:
    """18-decimal fixed point -> native units, rounded toward negative infinity."""
    if decimals <= 18:
        return value // 10 ** (18 - decimals)
    return value * 10 ** (decimals - 18)


def from_e18_up(value: int, decimals: int) -> int:
    """18-decimal fixed point -> native units, rounded toward positive infinity."""
    if decimals <= 18:
        return -(-value // 10 ** (18 - decimals))
    return value * 10 ** (decimals - 18)


def ratio_e18(numerator: int, denominator: int) -> int:
    """numerator / denominator as an 18-decimal fraction (floor); 0 when denominator is 0."""
    if denominator == 0:
        return 0
    return numerator * UNIT // denominator


def fmt_units(value: int, decimals: int, places: int = 4) -> str:
    """Human-readable decimal string of an integer amount, for reports only."""
    sign = "-" if value < 0 else ""
    v = abs(value)
    whole, frac = divmod(v, 10**decimals)
    if places == 0:
        return f"{sign}{whole:,}"
    frac_s = str(frac).rjust(decimals, "0")[:places].ljust(places, "0")
    return f"{sign}{whole:,}.{frac_s}"


# ---- mirrors of the reference market's math (contracts/PerpMarket.vy) ----

def market_fill_price(price: int, skew: int, size_delta: int, skew_scale: int) -> int:
    """Fill price = price * (1 + (skew_before + skew_after) / 2 / skew_scale), rounded as the contract."""
    pd_before = sdiv(skew * UNIT, skew_scale)
    pd_after = sdiv((skew + size_delta) * UNIT, skew_scale)
    return price + sdiv(price * (pd_before + pd_after), 2 * UNIT)


def market_order_fee(skew: int, size_delta: int, fill: int, taker_fee: int, maker_fee: int) -> int:
    """Maker/taker fee as the contract charges it (maker for the part that narrows the skew)."""
    notional = abs(size_delta) * fill // UNIT
    if skew == 0 or (skew > 0) == (size_delta > 0):
        return notional * taker_fee // UNIT
    if abs(size_delta) <= abs(skew):
        return notional * maker_fee // UNIT
    maker_part = abs(skew) * fill // UNIT
    return maker_part * maker_fee // UNIT + (notional - maker_part) * taker_fee // UNIT


def market_funding_velocity(skew: int, skew_scale: int, max_velocity: int) -> int:
    pskew = sdiv(skew * UNIT, skew_scale)
    pskew = max(min(pskew, UNIT), -UNIT)
    return sdiv(pskew * max_velocity, UNIT)


def market_funding_rate(rate_last: int, velocity: int, elapsed: int) -> int:
    return rate_last + sdiv(velocity * elapsed, DAY)


def market_unrecorded_funding(rate_last: int, rate_now: int, elapsed: int, price: int) -> int:
    """Funding per unit of size accrued since the last recompute (negative when longs pay)."""
    return sdiv(-sdiv((rate_last + rate_now) * elapsed, 2 * DAY) * price, UNIT)
