"""No RPC: the message names the node by host and port (never its credentials) and says the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli import hedger

ADDR = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"    # anvil dev account 2


@pytest.mark.parametrize("command", ["run-once", "status"])
def test_no_rpc_names_host_and_port_and_the_fix(tmp_path: Path, command: str) -> None:
    env = {"HEDGER_RPC_URL": "http://alice:hunter2@127.0.0.1:9/v2/APIKEY12345", "HEDGER_PRIVATE_KEY": KEY,
           "HEDGER_CHAIN_ID": "31337", "HEDGER_MARKET": ADDR, "HEDGER_ORACLE": ADDR, "HEDGER_SPOT_TOKEN": ADDR,
           "HEDGER_COLLATERAL_TOKEN": ADDR, "HEDGER_JOURNAL_PATH": str(tmp_path / "j.sqlite"),
           "HEDGER_RPC_TIMEOUT": "2"}
    p = hedger([command], env, tmp_path)
    assert p.returncode == 8, p.stdout + p.stderr
    assert "http://127.0.0.1:9" in p.stderr                       # the port is kept
    assert "Fix: check HEDGER_RPC_URL" in p.stderr and "start the node" in p.stderr
    for secret in ("alice", "hunter2", "APIKEY12345", KEY[2:]):
        assert secret not in p.stdout + p.stderr
