"""One journal and one lock per chain and account, wherever a command is started (real processes
against anvil, HEDGER_JOURNAL_PATH and HEDGER_CHAIN_ID unset: the chain id is read from the node)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

from hedger.state.journal import Journal
from tests.conftest import Hedge
from tests.test_cli import BIN, run


def state_env(hedge: Hedge, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in hedge.env.items() if k not in ("HEDGER_JOURNAL_PATH", "HEDGER_CHAIN_ID")}
    return {**env, "XDG_STATE_HOME": str(tmp / "state")}


def folders(tmp: Path) -> tuple[Path, Path]:
    a, b = tmp / "cron-a", tmp / "home" / "b"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    return a, b


def test_commands_from_two_folders_share_one_journal(hedge: Hedge, tmp_path: Path) -> None:
    env = state_env(hedge, tmp_path)
    a, b = folders(tmp_path)
    first = run([str(BIN / "hedger"), "run-once"], env, cwd=a)
    assert first.returncode == 0, first.stderr
    second = run([str(BIN / "hedger"), "run-once"], env, cwd=b)
    assert second.returncode == 0, second.stderr
    journal = tmp_path / "state" / "hedger" / "31337" / f"{hedge.address.lower()}.sqlite"
    cycles = sorted(Journal(journal).cycles(), key=lambda c: c["id"])
    assert [c["outcome"] for c in cycles] == ["acted", "held"]     # the second saw the first's trade
    assert not list(a.iterdir()) and not list(b.iterdir())          # nothing left in the folders


def test_a_keeper_in_one_folder_locks_out_a_command_from_another(hedge: Hedge, tmp_path: Path) -> None:
    env = state_env(hedge, tmp_path)
    a, b = folders(tmp_path)
    full = {**{k: v for k, v in __import__("os").environ.items() if not k.startswith("HEDGER_")}, **env}
    keeper = subprocess.Popen([str(BIN / "hedger"), "watch", "--json-logs", "--interval", "0.3"], cwd=a, env=full,
                              text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert keeper.stdout is not None
        deadline = time.monotonic() + 90
        while True:
            line = keeper.stdout.readline()
            assert line, f"the keeper ended before its first cycle: {keeper.stderr.read() if keeper.stderr else ''}"
            assert time.monotonic() < deadline, "no cycle from the keeper"
            if line.startswith("{") and json.loads(line)["event"] == "cycle":
                break
        other = run([str(BIN / "hedger"), "run-once"], env, cwd=b)
        assert other.returncode == 11, other.stdout + other.stderr
        assert f"pid {keeper.pid}" in other.stderr and "another hedger holds the lock" in other.stderr
        assert str(tmp_path / "state" / "hedger" / "31337") in other.stderr     # names the lock file
    finally:
        keeper.send_signal(signal.SIGINT)
        keeper.communicate(timeout=60)
    assert keeper.returncode == 0
