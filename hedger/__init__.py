"""On-chain perpetual-swap hedger.

A cycle flows one way: read (oracle, exposure, market and account state)
-> decide (``policy``, pure) -> plan (``planner``, pure) -> execute
(``executor``, the only code that signs) -> journal.
"""

__version__ = "0.1.0"
