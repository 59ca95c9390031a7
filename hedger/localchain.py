"""Start and stop a local anvil (installed from npm into ``node_modules``).

Used by ``make demo``, the tests and the simulator. The binary is started
directly (not through the node wrapper in ``node_modules/.bin``) so that
stopping it by PID really stops it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from hedger.abi import PROJECT_ROOT

# anvil's well-known development mnemonic: its accounts are public test keys.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
Account.enable_unaudited_hdwallet_features()


def dev_account(index: int) -> LocalAccount:
    """anvil's development account ``index`` (funded with 10,000 ETH on a fresh anvil)."""
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def anvil_binary() -> str:
    candidates = [
        PROJECT_ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil",
        PROJECT_ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-arm64" / "bin" / "anvil",
    ]
    for c in candidates:
        if c.exists():
            return str(c)
    found = shutil.which("anvil")
    if found:
        return found
    raise FileNotFoundError("anvil not found: run `make deps` (installs @foundry-rs/anvil from npm)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Anvil:
    port: int
    chain_id: int
    process: subprocess.Popen
    args: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "Anvil":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_anvil(port: int | None = None, chain_id: int = 31337, extra: list[str] | None = None,
                timeout: float = 15.0) -> Anvil:
    """Start anvil on loopback and wait until it answers."""
    port = port or free_port()
    args = [anvil_binary(), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id),
            "--silent", *(extra or [])]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ}, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"anvil exited at start: {err.strip()[-300:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return Anvil(port=port, chain_id=chain_id, process=proc, args=args)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"anvil did not start on port {port} within {timeout}s")
