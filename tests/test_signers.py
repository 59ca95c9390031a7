"""Both signers send a real hedge: a key from the environment, and an ape account."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from eth_account import Account

from hedger.chain.executor import KeySigner

from hedger.core.secrets import Secret
from hedger.sim.localchain import dev_account
from tests.conftest import Hedge
from tests.test_cli import BIN, run


def test_key_signer_repr_hides_key() -> None:
    key = dev_account(1).key.hex()
    s = KeySigner(Secret(key))
    assert key not in repr(s) and key[2:] not in repr(s) and key not in repr(Secret(key))
    assert s.address == dev_account(1).address


def test_ape_account_signs_a_cycle(hedge: Hedge, tmp_path: Path) -> None:
    """An account stored by ape (encrypted keyfile), unlocked by ape's passphrase variable."""
    data = tmp_path / "ape-data"
    (data / "accounts").mkdir(parents=True)
    keyfile = Account.encrypt(dev_account(1).key, "correct horse")
    (data / "accounts" / "hedgerbot.json").write_text(json.dumps(keyfile))
    env = {k: v for k, v in hedge.env.items() if k != "HEDGER_PRIVATE_KEY"}
    env.update({"HEDGER_APE_ACCOUNT": "hedgerbot", "APE_DATA_FOLDER": str(data),
                "APE_ACCOUNTS_hedgerbot_PASSPHRASE": "correct horse"})
    p = run([str(BIN / "hedger"), "run-once"], env, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "outcome: acted" in p.stdout
    assert hedge.position()[0] == -10 * 10**18
    # a wrong passphrase is a config error naming the variable, and sends nothing
    n = hedge.nonce()
    p = run([str(BIN / "hedger"), "run-once"], {**env, "APE_ACCOUNTS_hedgerbot_PASSPHRASE": "wrong"}, cwd=tmp_path)
    assert p.returncode == 2 and "APE_ACCOUNTS_hedgerbot_PASSPHRASE" in p.stderr
    assert "correct horse" not in p.stderr + p.stdout and "wrong" not in p.stdout
    assert hedge.nonce() == n


def test_ape_account_journal_in_the_state_folder_by_its_address(hedge: Hedge, tmp_path: Path) -> None:
    """Without HEDGER_ACCOUNT and HEDGER_JOURNAL_PATH, the ape account's address (read without its
    passphrase) and the node's chain id name the journal, as for a key."""
    data = tmp_path / "ape-data"
    (data / "accounts").mkdir(parents=True)
    (data / "accounts" / "hedgerbot.json").write_text(json.dumps(Account.encrypt(dev_account(1).key, "pw horse")))
    env = {k: v for k, v in hedge.env.items()
           if k not in ("HEDGER_PRIVATE_KEY", "HEDGER_JOURNAL_PATH", "HEDGER_CHAIN_ID")}
    env.update({"HEDGER_APE_ACCOUNT": "hedgerbot", "APE_DATA_FOLDER": str(data),
                "APE_ACCOUNTS_hedgerbot_PASSPHRASE": "pw horse", "XDG_STATE_HOME": str(tmp_path / "state")})
    work = tmp_path / "work"
    work.mkdir()
    p = run([str(BIN / "hedger"), "run-once"], env, cwd=work)
    assert p.returncode == 0, p.stdout + p.stderr
    journal = tmp_path / "state" / "hedger" / "31337" / f"{dev_account(1).address.lower()}.sqlite"
    assert journal.exists() and not list(work.iterdir())
