"""The project's exceptions, in one tree.

::

    HedgerError                      root; ``exit_code`` is what the CLI exits with
    ├── ConfigError (ValueError)     a setting is missing or wrong; names the variable and the fix
    ├── RefusedError                 a guard refused to act; nothing was sent
    │   ├── OracleError              price feed unusable (non-positive, zero round, stale, future)
    │   ├── SequencerDownError       L2 sequencer down or inside its grace period
    │   └── ChainGuardError          wrong chain id, block lagging the wall clock, no code at an address
    ├── RpcError (ConnectionError)   the node could not be reached or answered nonsense
    ├── LockHeld                     another hedger process holds this account's lock
    └── ExecutionError               sending a plan failed; carries step, tx hash, revert reason
        ├── SimulationFailed         a step reverted in simulation, before it was sent
        │   └── ActionTooLarge       one action is above the per-action notional cap
        ├── TransactionReverted      a mined transaction reverted
        ├── StuckTransaction         nothing landed at a nonce despite replacements
        ├── GasHeld                  a risk-increasing step waits: fees above the ceiling (on purpose)
        ├── GasTooHigh               a risk-reducing step blocked: fees above the emergency ceiling
        └── PartialExecution         some steps were mined, then one failed; the rest was not sent

Errors from web3/ape are converted into these at one place (``raise ... from err``),
and each keeps its context as attributes.
"""

from __future__ import annotations


class HedgerError(Exception):
    """Root of every error the hedger raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, **context: object) -> None:
        super().__init__(message)
        self.message = message
        self.context = context

    def __str__(self) -> str:
        return self.message


class ConfigError(HedgerError, ValueError):
    """A setting is missing, malformed or inconsistent. ``variable`` names it."""

    exit_code = 2

    def __init__(self, variable: str, problem: str, fix: str) -> None:
        super().__init__(f"{variable}: {problem}. Fix: {fix}", variable=variable)
        self.variable = variable
        self.problem = problem
        self.fix = fix


class RefusedError(HedgerError):
    """A guard refused to act on doubtful data; nothing was sent."""

    exit_code = 3


class OracleError(RefusedError):
    """The price feed's latest round must not be used."""

    exit_code = 3


class SequencerDownError(RefusedError):
    """The L2 sequencer is down, or came back less than the grace period ago."""

    exit_code = 4


class ChainGuardError(RefusedError):
    """The chain is not the one configured, lags the wall clock, or an address has no code."""

    exit_code = 5


class RpcError(HedgerError, ConnectionError):
    """The RPC node failed or answered something unusable."""

    exit_code = 8


class ExecutionError(HedgerError):
    """Sending a plan failed. Context: step, tx_hash, revert_reason."""

    exit_code = 6

    def __init__(self, message: str, *, step: str | None = None, tx_hash: str | None = None,
                 revert_reason: str | None = None, sent: int = 0) -> None:
        super().__init__(message, step=step, tx_hash=tx_hash, revert_reason=revert_reason)
        self.step = step
        self.tx_hash = tx_hash
        self.revert_reason = revert_reason
        self.sent = sent


class SimulationFailed(ExecutionError):
    """A step reverted when simulated just before sending; it was not sent."""

    exit_code = 6


class ActionTooLarge(SimulationFailed):
    """One action moves more notional than HEDGER_MAX_ACTION_USD allows; the plan was not sent."""

    exit_code = 6


class StuckTransaction(ExecutionError):
    """A transaction (and its fee-bumped replacements) did not land within the timeout."""

    exit_code = 7


class GasHeld(ExecutionError):
    """A risk-increasing step was held because fees are above the ceiling. On purpose: exit 0."""

    exit_code = 0


class GasTooHigh(ExecutionError):
    """A step's fees would exceed its ceiling; for a risk-reducing step that is an alarm."""

    exit_code = 10

    def __init__(self, message: str, *, risk_reducing: bool = False, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.risk_reducing = risk_reducing


class LockHeld(HedgerError):
    """Another hedger process holds the lock for this account (overlapping cron runs)."""

    exit_code = 11


class TransactionReverted(ExecutionError):
    """A transaction was mined and reverted."""

    exit_code = 7


class PartialExecution(ExecutionError):
    """Earlier steps of the plan were mined; a later one failed and the rest was not sent.

    Plans order risk-reducing steps first, so what was mined left the account
    no riskier than before: "partial, safe".
    """

    exit_code = 7
