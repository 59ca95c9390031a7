"""`ape run hedge [--network ...]`: one hedge cycle on the network ape selects.

Reads the HEDGER_* settings from the environment and ``.env`` exactly as
`hedger run-once` does; the RPC comes from ape's provider instead of
HEDGER_RPC_URL. Set HEDGER_DRY_RUN=1 to print the planned calls without
sending. Exits with the same codes as `hedger run-once`.
"""

from __future__ import annotations

import sys


def main() -> None:
    from ape import chain

    from hedger.cli import _checked_keeper, print_cycle
    from hedger.config import Settings, environment
    from hedger.core.secrets import redact_urls
    from hedger.core.errors import HedgerError

    try:
        env = {**environment(), "HEDGER_RPC_URL": chain.provider.uri}
        settings = Settings.from_env(env, dotenv=False)
        # `hedger check` first, as run-once: a wrong address refuses (exit 5) before anything is sent
        res = _checked_keeper(settings).cycle(dry_run=env.get("HEDGER_DRY_RUN") == "1")
    except HedgerError as err:
        print(f"hedger: {type(err).__name__}: {redact_urls(str(err))}", file=sys.stderr)
        raise SystemExit(err.exit_code)
    print_cycle(res)
    if res.exit_code:
        print(f"hedger: {res.outcome}: {res.error}", file=sys.stderr)
        raise SystemExit(res.exit_code)
