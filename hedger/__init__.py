"""On-chain perpetual-swap hedger.

A cycle flows one way, and the folders follow it: ``core`` (data, units, errors), ``decide``
(guards, policy and planner: pure), ``protocols`` (one adapter per venue), ``chain`` (block-pinned
reads, the executor: the only code that signs), ``state`` (journal, reconciliation, lock),
``cycle`` (read -> decide -> plan -> execute -> journal), then ``ops`` and ``sim`` on top.
The layers are import-linter contracts in ``pyproject.toml``.
"""

__version__ = "0.1.0"
