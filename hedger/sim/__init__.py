"""Simulation and test chains: the real Aave v3 and Uniswap v3 deployed from their npm artifacts."""
