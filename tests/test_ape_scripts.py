"""`ape run hedge` and `ape run deploy` as a user runs them: from a project folder holding a
`.env` (the settings only there, none in the environment), against a running anvil."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from hedger.chain.abi import PROJECT_ROOT
from hedger.sim.localchain import dev_account
from tests.conftest import WETH, Hedge
from tests.test_cli import BIN, run


def project(tmp: Path, dotenv: dict[str, str]) -> Path:
    """A folder ape runs the project's scripts from (its ape-config.yaml, scripts/), with ``.env``."""
    folder = tmp / "proj"
    folder.mkdir()
    shutil.copy(PROJECT_ROOT / "ape-config.yaml", folder / "ape-config.yaml")
    (folder / "scripts").symlink_to(PROJECT_ROOT / "scripts")
    (folder / ".env").write_text("".join(f"{k}={v}\n" for k, v in dotenv.items()))
    return folder


def ape(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return run([str(BIN / "ape"), "run", *args], {}, cwd=folder, timeout=180)


def test_ape_run_hedge_reads_dotenv(hedge: Hedge, tmp_path: Path) -> None:
    folder = project(tmp_path, {**hedge.env, "HEDGER_RPC_URL": "http://127.0.0.1:9"})   # the provider's URL wins
    p = ape(folder, "hedge", "--network", hedge.chain.anvil.url)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "outcome: acted" in p.stdout
    assert hedge.position()[0] == -10 * WETH


def test_ape_run_deploy_signs_with_the_key_from_dotenv(hedge: Hedge, tmp_path: Path) -> None:
    deployer = dev_account(5)
    folder = project(tmp_path, {"HEDGER_PRIVATE_KEY": deployer.key.hex()})
    p = ape(folder, "deploy", "--network", hedge.chain.anvil.url)
    assert p.returncode == 0, p.stdout + p.stderr
    d = json.loads(p.stdout.strip().splitlines()[-1])
    assert d["deployer"] == deployer.address != dev_account(0).address
    assert hedge.chain.w3.eth.get_code(d["market"]) != b""
    assert deployer.key.hex()[2:] not in p.stdout + p.stderr


def test_ape_run_deploy_without_a_key_refuses(hedge: Hedge, tmp_path: Path) -> None:
    folder = project(tmp_path, {})
    nonce = hedge.chain.w3.eth.get_transaction_count(dev_account(0).address)
    p = ape(folder, "deploy", "--network", hedge.chain.anvil.url)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "HEDGER_PRIVATE_KEY" in p.stderr and "deploying needs a signer" in p.stderr
    assert hedge.chain.w3.eth.get_transaction_count(dev_account(0).address) == nonce     # nothing sent


def test_ape_run_deploy_checks_a_reused_oracle_before_deploying_anything(hedge: Hedge, tmp_path: Path) -> None:
    """HEDGER_DEPLOY_ORACLE at a token (not a feed) is refused by name before the first transaction,
    as `hedger deploy --oracle` is."""
    deployer = dev_account(5)
    folder = project(tmp_path, {"HEDGER_PRIVATE_KEY": deployer.key.hex(),
                                "HEDGER_DEPLOY_ORACLE": hedge.chain.d.collateral})
    nonce = hedge.chain.w3.eth.get_transaction_count(deployer.address)
    p = ape(folder, "deploy", "--network", hedge.chain.anvil.url)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "HEDGER_DEPLOY_ORACLE" in p.stderr and "Chainlink price feed" in p.stderr
    assert hedge.chain.w3.eth.get_transaction_count(deployer.address) == nonce         # nothing sent


def test_ape_run_deploy_refuses_a_chain_ape_starts_and_stops(tmp_path: Path) -> None:
    folder = project(tmp_path, {"HEDGER_PRIVATE_KEY": dev_account(5).key.hex()})
    p = ape(folder, "deploy")                                       # no --network: ape's own throwaway anvil
    assert p.returncode == 2, p.stdout + p.stderr
    assert "ape started this chain" in p.stderr and "--network http://127.0.0.1:8545" in p.stderr
    assert '"market"' not in p.stdout


def test_ape_run_hedge_runs_the_check_first_as_run_once_does(hedge: Hedge, tmp_path: Path) -> None:
    """`ape run hedge` "exits with the same codes as hedger run-once", but skipped the check run-once
    runs first: with the collateral token given as the spot token it hedged the wallet's USDC as the
    asset. It refuses now (exit 5), sending nothing."""
    folder = project(tmp_path, {**hedge.env, "HEDGER_SPOT_TOKEN": hedge.chain.d.collateral})
    p = ape(folder, "hedge", "--network", hedge.chain.anvil.url)
    assert p.returncode == 5, p.stdout + p.stderr
    assert "HEDGER_SPOT_TOKEN" in p.stderr
    assert hedge.position() == (0, 0)
