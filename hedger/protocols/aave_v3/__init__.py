"""Aave v3: borrow the asset, sell it on Uniswap v3, supply the proceeds (a short without a perp)."""
