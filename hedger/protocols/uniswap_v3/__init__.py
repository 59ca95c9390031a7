"""Uniswap v3 as the hedger's eyes: the pool's TWAP as a second price and LP positions as exposure."""
