"""`ape run deploy [--network ...]`: deploy the reference protocol on the network ape selects.

Signs with HEDGER_PRIVATE_KEY or HEDGER_APE_ACCOUNT; on a local development
chain without either, with anvil's public development account 0. Set
HEDGER_DEPLOY_ORACLE / HEDGER_DEPLOY_COLLATERAL to reuse an existing feed /
token (or use `hedger deploy --oracle ... --collateral ...`). The last line
printed is one JSON object with the addresses.
"""

from __future__ import annotations

import json
import os


def main() -> None:
    from ape import chain

    from hedger.config import LOCAL_CHAIN_IDS, Settings
    from hedger.deploy import deploy_reference
    from hedger.executor import KeySigner, Secret, TxSender
    from hedger.keeper import make_web3
    from hedger.localchain import dev_account

    uri = chain.provider.uri
    settings = Settings.from_env({**os.environ, "HEDGER_RPC_URL": uri}, for_deploy=True)
    signer = settings.build_signer()
    w3 = make_web3(uri)
    if signer is None:
        if w3.eth.chain_id not in LOCAL_CHAIN_IDS:
            raise SystemExit("set HEDGER_PRIVATE_KEY or HEDGER_APE_ACCOUNT to deploy on a non-local chain")
        signer = KeySigner(Secret(dev_account(0).key.hex()))
    d = deploy_reference(TxSender(w3, signer), oracle=os.environ.get("HEDGER_DEPLOY_ORACLE") or None,
                         collateral=os.environ.get("HEDGER_DEPLOY_COLLATERAL") or None)
    print(json.dumps(d.as_dict()))
