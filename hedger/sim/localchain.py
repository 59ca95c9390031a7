"""Start and stop a local anvil (installed from npm into ``node_modules``).

Used by ``make demo``, the tests and the simulator. The binary is started
directly (not through the node wrapper in ``node_modules/.bin``) so that
stopping it by PID really stops it.
"""

from __future__ import annotations

import os
import platform
import queue
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from hedger.chain.abi import PROJECT_ROOT

# anvil's well-known development mnemonic: its accounts are public test keys.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
Account.enable_unaudited_hdwallet_features()


def dev_account(index: int) -> LocalAccount:
    """anvil's development account ``index`` (funded with 10,000 ETH on a fresh anvil)."""
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def anvil_binary() -> str:
    # this platform's binary from npm (@foundry-rs/anvil-linux-amd64, -darwin-arm64, ...), not the
    # node.js launcher in node_modules/.bin: a signal to the launcher does not reach anvil
    system = {"darwin": "darwin", "win32": "win32"}.get(sys.platform, "linux")
    arch = "arm64" if platform.machine().lower() in ("arm64", "aarch64") else "amd64"
    exe = "anvil.exe" if system == "win32" else "anvil"
    binary = PROJECT_ROOT / "node_modules" / "@foundry-rs" / f"anvil-{system}-{arch}" / "bin" / exe
    if os.access(binary, os.X_OK):
        return str(binary)
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
    """Start anvil on loopback and wait until it listens.

    With no ``port``, anvil binds port 0 and the kernel picks a free one, which anvil then
    prints: no window in which another process can take the port between our choice and its
    bind. Either way the node is ours only once *this* process has printed that it listens (a
    port that merely answers might be someone else's)."""
    args = [anvil_binary(), "--host", "127.0.0.1", "--port", str(port or 0), "--chain-id", str(chain_id),
            *(extra or [])]
    from hedger.core.secrets import child_env
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=child_env(), start_new_session=True)   # no key or passphrase for anvil
    listening: queue.Queue[int | None] = queue.Queue()

    def read_stdout() -> None:
        # after the banner anvil logs each request here; reading on keeps the pipe from filling
        assert proc.stdout is not None
        for raw in proc.stdout:
            if raw.startswith(b"Listening on "):
                listening.put(int(raw.strip().rsplit(b":", 1)[1]))
        listening.put(None)

    threading.Thread(target=read_stdout, name=f"anvil-{proc.pid}-stdout", daemon=True).start()
    try:
        bound = listening.get(timeout=timeout)
    except queue.Empty:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"anvil did not start within {timeout}s") from None
    if bound is None:
        proc.wait()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        raise RuntimeError(f"anvil exited at start: {err.strip()[-300:]}")
    return Anvil(port=bound, chain_id=chain_id, process=proc, args=args)
