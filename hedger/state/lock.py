"""One hedger per account: an exclusive file lock next to the journal.

Two cron runs that overlap, or a cron run beside a keeper, would both read the
same position and both send the same hedge. The lock is an OS-level ``flock``:
the kernel releases it when the process dies (a kill -9 leaves no stale lock),
and the file records who holds it so the refusal can name the holder.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from hedger.core.errors import LockHeld


class AccountLock:
    def __init__(self, journal_path: Path, account: str) -> None:
        folder = journal_path.parent if str(journal_path.parent) else Path(".")
        self.path = folder / f".hedger-{account.lower()}.lock"
        self.account = account
        self._fh: Any = None

    def acquire(self) -> "AccountLock":
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            try:
                holder = json.loads(fh.read() or "{}")
            except ValueError:
                holder = {}
            fh.close()
            who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                   f"since {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(holder.get('since', 0)))} UTC")
            raise LockHeld(f"another hedger holds the lock for account {self.account} ({who}; lock file "
                           f"{self.path}): not running a second one at the same time", holder=holder)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": int(time.time()),
                             "account": self.account}))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            try:
                fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            finally:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> "AccountLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
