"""``hedger simulate --engine ray``: the same runs as the local engine to the wei, a failed run
retried on another actor and reported, ``--resume`` skipping stored runs, and no Ray in the
keeper's commands. One local Ray instance (2 CPUs) serves the whole file."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hedger.chain.abi import PROJECT_ROOT
from hedger.cli import main
from hedger.core.types import PolicyParams
from hedger.sim import runstore
from hedger.sim.simulate import Job, SimOptions, policies

POL = policies(PolicyParams())
FAKE_KEY = "0x" + "11" * 32
SWEEP = ["simulate", "--scenario", "gbm", "--seed", "3", "--seeds", "2", "--steps", "6", "--policies", "default,fixed-interval",
         "--no-progress"]
RAY_KILLS_CHILDREN = "RAY_kill_child_processes_on_worker_exit"


@pytest.fixture(scope="session")
def ray_session() -> Any:
    ray = pytest.importorskip("ray")
    from hedger.sim.engine_ray import connect
    # the command holds a key in its environment (from .env) when it starts Ray: workers must not see it
    # Ray's raylet kills a lost worker's child processes itself; it is turned off here so that
    # the tests see what the engine does (its kill on Ctrl-C, each actor's watchdog), which is
    # what stops the anvils where that Ray setting is off or a child escaped it
    saved = {k: os.environ.get(k) for k in ("HEDGER_PRIVATE_KEY", RAY_KILLS_CHILDREN)}
    os.environ["HEDGER_PRIVATE_KEY"] = FAKE_KEY
    os.environ[RAY_KILLS_CHILDREN] = "0"
    try:
        assert connect(None, num_cpus=2)
    finally:
        for k, v in saved.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small sweep on the local engine (one process), its report and its streamed runs."""
    out = tmp_path_factory.mktemp("local") / "sweep.json"
    assert main([*SWEEP, "--engine", "local", "--workers", "1", "--json", str(out)]) == 0
    return out


def _runs(path: Path) -> dict[str, dict[str, Any]]:
    """The runs streamed for the report ``path``, by key (a torn line skipped)."""
    out = {}
    for line in runstore.stream_path(path).read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        out[row["key"]] = row["run"]
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_keeper_commands_never_import_ray() -> None:
    """Every module of the keeper (all of hedger but the Ray engine) and a keeper command leave
    Ray unloaded; the same probe sees Ray once the engine is imported (so it can fail)."""
    probe = (
        "import importlib, pkgutil, sys, hedger\n"
        "from hedger.cli import main\n"
        "try:\n    main(['status', '--help'])\nexcept SystemExit:\n    pass\n"
        "for m in pkgutil.walk_packages(hedger.__path__, 'hedger.'):\n"
        "    if m.name != 'hedger.sim.engine_ray':\n        importlib.import_module(m.name)\n"
        "print('before', 'ray' in sys.modules)\n"
        "import hedger.sim.engine_ray\n"
        "print('after', 'ray' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "before False" in p.stdout and "after True" in p.stdout, p.stdout


def test_both_engines_give_every_run_to_the_wei(ray_session: Any, local_sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "ray.json"
    assert main([*SWEEP, "--engine", "ray", "--workers", "2", "--json", str(out)]) == 0
    local, remote = _runs(local_sweep), _runs(out)
    assert len(local) == 4 and local.keys() == remote.keys()
    for key, run in local.items():
        assert run == remote[key], key              # every field: gas in wei, every step's record
        assert run["gas_wei"] > 0 and run["txs"] > 0
    a, b = json.loads(local_sweep.read_text()), json.loads(out.read_text())
    assert a["engine"] == "local" and b["engine"] == "ray"
    assert a["runs"] == b["runs"] and a["policies"] == b["policies"]


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_ctrl_c_stops_running_tasks_keeps_the_finished_runs_and_resume_runs_only_the_rest(
        ray_session: Any, local_sweep: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Two actors; runs 0 and 1 finish, runs 2 and 3 never end on their own (only a kill stops
    them); Ctrl-C at the second finished run: the command exits 130 with those 2 runs in
    PATH.runs.jsonl, and both actors (busy with a run) and their four anvils are gone. A line
    then torn mid-write is skipped; --resume runs only the 2 missing runs, and the report is the
    uninterrupted sweep's (the local engine's)."""
    from hedger.sim import engine_ray
    out = tmp_path / "cut.json"
    anvils: dict[str, list[int]] = {}
    real_run = engine_ray.run_jobs_ray
    monkeypatch.setattr(engine_ray, "run_jobs_ray",
                        lambda *a, **kw: real_run(*a, on_start=anvils.update, faults={2: ("hang",), 3: ("hang",)}, **kw))
    real_append = runstore.RunStream.append
    appended: list[str] = []

    def append_then_ctrl_c(self: runstore.RunStream, key: str, r: Any) -> None:
        real_append(self, key, r)
        appended.append(key)
        if len(appended) == 2:
            time.sleep(1)              # both hanging runs have started on their actors
            raise KeyboardInterrupt

    monkeypatch.setattr(runstore.RunStream, "append", append_then_ctrl_c)
    assert main([*SWEEP, "--engine", "ray", "--workers", "2", "--json", str(out)]) == 130
    assert "interrupted: 2 of 4 runs kept in" in capsys.readouterr().err
    pids = [p for ps in anvils.values() for p in ps]
    assert len(pids) == 4                                  # two actors, each an upstream anvil and a fork
    actors = {_parent(p) for p in pids}
    assert len(actors) == 2 and os.getpid() not in actors
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in [*pids, *actors]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in actors if _alive(p)], "an actor still runs its task after Ctrl-C"
    assert not [p for p in pids if _alive(p)], "an anvil outlived its actor"
    monkeypatch.setattr(runstore.RunStream, "append", real_append)
    monkeypatch.setattr(engine_ray, "run_jobs_ray", real_run)
    stream = runstore.stream_path(out)
    assert len(_runs(out)) == 2
    torn = stream.read_text().splitlines()[0][:100]
    with open(stream, "a") as f:
        f.write(torn)                                   # a third run killed mid-write
    assert main([*SWEEP, "--engine", "ray", "--workers", "1", "--resume", str(out)]) == 0
    assert "resume: 2 of 4 runs already in" in capsys.readouterr().err
    keys = []
    for line in stream.read_text().splitlines():
        try:
            keys.append(json.loads(line)["key"])
        except ValueError:
            assert line == torn                         # only the torn line does not parse
    assert len(keys) == 4 and len(set(keys)) == 4         # the two stored runs were not run again
    assert _runs(out) == _runs(local_sweep)
    assert json.loads(out.read_text())["runs"] == json.loads(local_sweep.read_text())["runs"]


def test_run_key_follows_what_makes_a_run() -> None:
    shared = runstore.shared_settings(SimOptions(), {"order_mode": "direct"})
    job = Job("gbm", 1, POL["default"], steps=6)
    key = runstore.run_key(job, shared)
    assert key == runstore.run_key(Job("gbm", 1, POL["default"], steps=6), shared)
    other_params = dataclasses.replace(POL["default"], params=dataclasses.replace(POL["default"].params, band=1))
    for changed in (runstore.run_key(dataclasses.replace(job, seed=2), shared),
                    runstore.run_key(dataclasses.replace(job, scenario="chop"), shared),
                    runstore.run_key(dataclasses.replace(job, policy=other_params), shared),
                    runstore.run_key(dataclasses.replace(job, steps=7), shared),
                    runstore.run_key(job, runstore.shared_settings(SimOptions(reserve_usd=1), {"order_mode": "direct"})),
                    runstore.run_key(job, shared, version="another commit")):
        assert changed != key
    # the fork URL (maybe with an API key) is not hashed, only that there is one and its block
    with_url = runstore.shared_settings(SimOptions(), {"fork_url": "https://x.example/v2/KEY", "fork_block": 5})
    assert "KEY" not in json.dumps(with_url)


def test_failed_runs_are_retried_on_another_actor_and_reported(ray_session: Any, local_sweep: Path) -> None:
    """Run 0's worker dies mid-task, run 1's fork anvil crashes on both attempts: run 0 is retried
    on another actor with the local engine's result to the wei, run 1 is reported failed twice
    (no result, not dropped), and no anvil of the actors outlives them."""
    from hedger.sim.engine_ray import run_jobs_ray
    jobs = [Job("gbm", 3, POL["default"], steps=6), Job("gbm", 4, POL["default"], steps=6)]
    out = run_jobs_ray(jobs, actors=1, progress=False, faults={0: ("exit",), 1: ("anvil", "anvil")})
    assert [r.index for r in out.retries] == [0, 1]
    lost, crashed = out.retries
    assert lost.first_actor != lost.retry_actor and not lost.failed_again
    assert "ActorDiedError" in lost.error, lost.error
    assert crashed.first_actor != crashed.retry_actor and "ConnectionError" in crashed.failed_again
    assert out.results[1] is None and [r.index for r in out.failed] == [1]
    local = {(r["seed"], r["policy"]): r for r in _runs(local_sweep).values()}
    assert dataclasses.asdict(out.results[0]) == local[(3, "default")]
    pids = [p for ps in out.anvils.values() for p in ps]
    assert len(pids) == 2          # the first actor: an upstream anvil and a fork
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if _alive(p)]


def test_ray_address_needs_the_ray_engine(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SWEEP, "--ray-address", "127.0.0.1:6379"]) == 2
    err = capsys.readouterr().err
    assert "--ray-address" in err and "Fix:" in err


def test_resume_of_nothing_stored_names_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SWEEP, "--resume", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "Fix:" in err


def test_no_secret_reaches_the_workers(ray_session: Any) -> None:
    """The local Ray instance was started while the command held a key: no worker sees it."""

    @ray_session.remote(num_cpus=0)
    def env_of_worker() -> list[str]:
        return [k for k, v in os.environ.items() if "PRIVATE_KEY" in k or v == FAKE_KEY]

    assert ray_session.get(env_of_worker.remote()) == []


def test_fork_block_is_pinned_for_every_worker() -> None:
    """The command reads the fork URL's head once; a chain forked later, after the upstream has
    moved on, still forks that block (so every worker, started whenever, has the same state)."""
    from hedger.cycle.keeper import make_web3
    from hedger.sim.localchain import start_anvil
    from hedger.sim.simcli import pin_fork_block
    from hedger.sim.simulate import SimChain
    up = start_anvil(chain_id=1)
    try:
        w3 = make_web3(up.url)
        w3.provider.make_request("anvil_mine", [5])
        pinned = pin_fork_block(up.url)
        w3.provider.make_request("anvil_mine", [3])          # the chain moves on before a worker starts
        chain = SimChain(fork_url=up.url, fork_block=pinned).start()
        try:
            assert pinned == 5
            assert chain.w3.eth.get_block(pinned)["hash"] == w3.eth.get_block(pinned)["hash"]
            assert chain.w3.eth.get_block(pinned + 1)["hash"] != w3.eth.get_block(pinned + 1)["hash"]
        finally:
            chain.stop()
    finally:
        up.stop()
