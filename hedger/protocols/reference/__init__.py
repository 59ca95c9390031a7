"""The reference market (``contracts/PerpMarket.vy``, Synthetix PerpsV2 shape): its adapter."""
