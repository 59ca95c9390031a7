"""`ape run deploy --network URL`: deploy the reference protocol on a running chain.

Reads the HEDGER_* settings from the environment and ``.env`` exactly as
`hedger deploy` does, and signs with HEDGER_PRIVATE_KEY or HEDGER_APE_ACCOUNT,
on a local chain too (never silently with a development account). Refuses a
chain that ape starts for the script and stops when it ends (no ``--network``,
or a local provider ape launches): the addresses would point at nothing. Start
a node first (``anvil``) and give its URL, e.g. ``--network
http://127.0.0.1:8545``. Set HEDGER_DEPLOY_ORACLE / HEDGER_DEPLOY_COLLATERAL
to reuse an existing feed / token (or use `hedger deploy --oracle ...
--collateral ...`). The last line printed is one JSON object with the addresses.
"""

from __future__ import annotations

import json
import sys

EPHEMERAL_FIX = ("start a node first (e.g. `anvil` in another terminal) and run `ape run deploy --network "
                 "http://127.0.0.1:8545`, or use `hedger deploy` with HEDGER_RPC_URL")


def main() -> None:
    from ape import chain

    from hedger.config import Settings, environment

    from hedger.core.secrets import redact_urls
    from hedger.sim.deploy import check_reuse, deploy_reference
    from hedger.core.errors import ConfigError, HedgerError
    from hedger.chain.executor import TxSender
    from hedger.cycle.keeper import make_web3

    try:
        if getattr(chain.provider, "process", None) is not None:
            # ape launched this node for the script: it stops with the script, and the contracts with it
            raise ConfigError("--network", "ape started this chain for the script and stops it when the script "
                              "ends: the deployed addresses would point at a chain that no longer exists",
                              EPHEMERAL_FIX)
        uri = chain.provider.uri
        env = {**environment(), "HEDGER_RPC_URL": uri}
        settings = Settings.from_env(env, dotenv=False, for_deploy=True)
        signer = settings.build_signer()
        if signer is None:
            raise ConfigError("HEDGER_PRIVATE_KEY", "deploying needs a signer (none is chosen for you, on a local "
                              "chain either)", "set HEDGER_PRIVATE_KEY (in .env or the environment) or "
                              "HEDGER_APE_ACCOUNT; on anvil, one of the development keys it prints at start")
        w3 = make_web3(uri)
        sender = TxSender(w3, signer)
        # before the first transaction, as `hedger deploy` checks --oracle and --collateral
        oracle, collateral = check_reuse(sender, (env.get("HEDGER_DEPLOY_ORACLE") or "").strip() or None,
                                         (env.get("HEDGER_DEPLOY_COLLATERAL") or "").strip() or None,
                                         names=("HEDGER_DEPLOY_ORACLE", "HEDGER_DEPLOY_COLLATERAL"))
        d = deploy_reference(sender, oracle=oracle, collateral=collateral)
    except HedgerError as err:
        print(f"hedger: {type(err).__name__}: {redact_urls(str(err))}", file=sys.stderr)
        raise SystemExit(err.exit_code)
    print(f"deployed the reference protocol on chain {d.chain_id} via {settings.rpc_display}, signed by "
          f"{signer.address}", file=sys.stderr)
    print(json.dumps(d.as_dict()))
