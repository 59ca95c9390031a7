"""``hedger simulate --engine ray``: the same runs as :func:`hedger.sim.simulate.run_jobs`, on Ray.

Every (scenario, seed, policy, parameter point) is one task on a pool of Ray actors. An actor
(:class:`SimWorker`) owns one :class:`~hedger.sim.simulate.SimChain` (its upstream anvil and
its fork) for its whole life and a :class:`~hedger.sim.simulate.Runner`, which reverts the
chain to its base snapshot before each run; an actor runs one job at a time, so a chain is
never shared by two runs. With no address a local Ray instance sized to the machine is
started (and stopped at the end); ``--ray-address`` (or ``RAY_ADDRESS``) joins a cluster
whose nodes have this project installed (``make compile``) at the same commit: an actor whose
code differs from the driver's refuses to start.

- Results are the same as the local engine's to the wei: the same Runner on the same chain
  state; a run depends on its seed only.
- A run that fails (its anvil crashed, its worker was lost) is retried once, on a fresh
  actor (the failed one is killed: its chain may be what failed); the retry and a second
  failure are reported (:class:`RayOutcome`), never dropped.
- Ctrl-C cancels the pending tasks and kills every actor, and with it its anvils; a watchdog
  beside each actor (a small process of its own) kills them too when the actor dies any other
  way (lost, out of memory), even mid-start.
- Workers get no secret: the local instance starts inside :func:`scrubbed_environ`, each
  actor drops secret variables on start, nothing is passed in ``runtime_env``, and the fork
  URL travels as a :class:`~hedger.core.secrets.Secret` (its repr redacted); its block is
  pinned by the caller (``fork_block``) so that every actor forks the same state.

Only the simulator imports this module: the keeper's commands never load Ray (an
import-linter contract in pyproject.toml, and tests/test_sim_ray.py).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import ray
from ray.exceptions import GetTimeoutError, RayError

from hedger.core.secrets import Secret, child_env, is_secret_env, redact_urls, scrubbed_environ
from hedger.sim.simulate import Job, Runner, RunResult, SimChain, SimOptions, _progress, _steps_of

log = logging.getLogger("hedger.sim.engine_ray")

# a watchdog per actor, started before its chain: when the actor process is gone (killed, lost,
# out of memory, Ctrl-C), every process started under it (anvils run in sessions of their own, so no
# signal to the actor reaches them) goes too. They are found by a marker in their environment, which
# they inherit from the actor: this still finds them once they have been re-parented.
MARKER = "HEDGER_SIM_ACTOR"
_WATCHDOG = r"""
import os, signal, sys, time
parent, mark = int(sys.argv[1]), ("%s=%s" % (sys.argv[2], sys.argv[3])).encode() + b"\0"
while os.getppid() == parent:
    time.sleep(0.25)
for _ in range(3):
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if mark in f.read():
                    os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.2)
"""

# injected by tests: the worker process dies; the fork's anvil crashes; the run never ends (only a kill stops it)
FAULTS = ("exit", "anvil", "hang")
ACTOR_START_TIMEOUT_S = 600   # a busy cluster may queue actors; one that never comes is said, not waited on


class SimWorker:
    """A Ray actor: one chain for its lifetime, one run at a time."""

    def __init__(self, chain_kw: dict[str, Any], options: SimOptions, code: str,
                 fork_url: Secret | None = None, cwd: str | None = None) -> None:
        for k, v in list(os.environ.items()):      # a cluster node's environment: no secret for anvil or ape
            if is_secret_env(k, v):
                del os.environ[k]
        if cwd and os.path.isdir(cwd):
            os.chdir(cwd)
        from hedger.sim.runstore import code_version
        if code != code_version():
            raise RuntimeError(f"this Ray node runs other code ({code_version()}) than the command ({code}): "
                               f"install the same commit on every node (make compile)")
        if not options.workdir.is_dir():       # the driver's temp folder, on another machine
            options = replace(options, workdir=Path(tempfile.gettempdir()))
        kw = dict(chain_kw)
        if fork_url is not None:
            kw["fork_url"] = fork_url.get_secret_value()
        token = f"{os.getpid()}-{os.urandom(8).hex()}"
        self.watchdog = subprocess.Popen([sys.executable, "-c", _WATCHDOG, str(os.getpid()), MARKER, token],
                                         env=child_env(), start_new_session=True,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.environ[MARKER] = token           # inherited by every anvil this actor starts
        self.chain = SimChain(**kw).start()
        self.runner = Runner(self.chain, options)

    def anvil_pids(self) -> list[int]:
        """The processes of this actor's chain: the upstream anvil (if any) and the fork."""
        pids = []
        if self.chain.upstream is not None:
            pids.append(self.chain.upstream.process.pid)
        proc = getattr(getattr(self.chain._ctx, "_provider", None), "process", None)
        if proc is not None:
            pids.append(proc.pid)
        return pids

    def info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "anvils": self.anvil_pids(), "node": ray.util.get_node_ip_address()}

    def run(self, job: Job, fault: str | None = None) -> RunResult:
        if fault == "exit":
            os._exit(1)                                  # the worker is lost mid-task
        if fault == "anvil":
            os.kill(self.anvil_pids()[-1], signal.SIGKILL)   # the fork's anvil crashes
        if fault == "hang":
            threading.Event().wait()                     # a run that never ends: cancel cannot stop it, a kill can
        return self.runner.run(job)

    def stop(self) -> None:
        self.chain.stop()


_Actor = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(SimWorker)


@dataclass
class Retry:
    index: int             # the job's index
    error: str             # why the first attempt failed (redacted)
    first_actor: str
    retry_actor: str = ""
    failed_again: str = ""  # the second attempt's error: the run has no result


@dataclass
class RayOutcome:
    """What a Ray sweep did: results in the order of the jobs (None for a run that failed twice)."""

    results: list[RunResult | None]
    retries: list[Retry] = field(default_factory=list)
    actors: int = 0
    where: str = ""
    anvils: dict[str, list[int]] = field(default_factory=dict)   # the first actors' anvil processes

    @property
    def failed(self) -> list[Retry]:
        return [r for r in self.retries if r.failed_again]


@dataclass
class _Slot:
    n: int
    gen: int
    actor: Any                # None once killed after a failure, until work needs it again

    @property
    def name(self) -> str:
        return f"actor {self.n}.{self.gen}"


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address``, or start a local Ray instance (``num_cpus``: default all);
    a Ray already initialised in this process is used as it is. True when this call started or
    joined it (the caller then shuts it down)."""
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    with scrubbed_environ():      # a local instance's processes start from this environment: no key
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(address="local", num_cpus=num_cpus, object_store_memory=128 * 1024 * 1024, **kw)
    return True


def _why(err: BaseException) -> str:
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException):
        text = f"{type(cause).__name__}: {cause}"
    else:
        text = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    return redact_urls(" ".join(text.split()))[:400]


def run_jobs_ray(jobs: list[Job], *, chain_kw: dict[str, Any] | None = None, options: SimOptions | None = None,
                 actors: int | None = None, address: str | None = None, progress: bool = True,
                 on_result: Callable[[int, RunResult], None] | None = None,
                 on_start: Callable[[dict[str, list[int]]], None] | None = None,
                 faults: dict[int, tuple[str | None, ...]] | None = None) -> RayOutcome:
    """Run ``jobs`` on Ray actors (``actors``: default one per CPU of the cluster, at most one per
    job); ``on_result(index, result)`` as each run finishes; ``on_start(anvils)`` once the actors are
    up, with each one's anvil processes. ``faults`` (tests only): job index ->
    the fault (one of FAULTS, or None) injected into each attempt of that job."""
    from hedger.sim.runstore import code_version
    chain_kw = dict(chain_kw or {})
    options = options or SimOptions()
    fork_url = chain_kw.pop("fork_url", None)
    secret_url = Secret(fork_url) if fork_url else None
    started = connect(address, None)
    outcome = RayOutcome([None] * len(jobs))
    bar = _progress(sum(_steps_of(j) for j in jobs), progress)
    slots: list[_Slot] = []
    running: dict[Any, tuple[int, int, _Slot]] = {}
    try:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n = max(1, min(actors or cpus, cpus, len(jobs)))
        outcome.actors = n
        outcome.where = f"Ray at {redact_urls(address)}" if address else f"local Ray instance ({cpus} CPUs)"
        code, cwd = code_version(), os.getcwd()

        def new_actor() -> Any:
            return _Actor.remote(chain_kw, options, code, secret_url, cwd)

        slots = [_Slot(k, 0, new_actor()) for k in range(n)]
        try:    # every actor up (its chain started) before the first run: a set-up error is said once
            infos = ray.get([s.actor.info.remote() for s in slots], timeout=ACTOR_START_TIMEOUT_S)
        except GetTimeoutError:
            raise RuntimeError(f"the Ray actors did not start within {ACTOR_START_TIMEOUT_S}s: the cluster has "
                               f"no free CPU for {n} actors, or its workers hang at start (see `ray status` "
                               f"and the Ray logs)") from None
        except RayError as err:
            raise RuntimeError(f"a Ray actor could not start its chain: {_why(err)}") from None
        outcome.anvils = {s.name: info["anvils"] for s, info in zip(slots, infos)}
        if on_start:
            on_start(dict(outcome.anvils))
        queue: deque[tuple[int, int]] = deque((i, 0) for i in range(len(jobs)))
        idle = list(slots)
        retries: dict[int, Retry] = {}
        while queue or running:
            while queue and idle:
                i, attempt = queue.popleft()
                slot = idle.pop(0)
                if slot.actor is None:           # its actor was killed after a failure: a fresh one
                    slot.gen += 1
                    slot.actor = new_actor()
                planned = (faults or {}).get(i, ())
                fault = planned[attempt] if attempt < len(planned) else None
                running[slot.actor.run.remote(jobs[i], fault)] = (i, attempt, slot)
                if attempt:
                    retries[i].retry_actor = slot.name
            ready, _ = ray.wait(list(running), num_returns=1)
            ref = ready[0]
            i, attempt, slot = running.pop(ref)
            try:
                result = ray.get(ref)
            except RayError as err:
                why = _why(err)
                log.warning("run %d (%s seed %d / %s) failed on %s: %s", i, jobs[i].scenario, jobs[i].seed,
                            jobs[i].policy.name, slot.name, why)
                # the actor's chain may be what failed: a fresh actor takes its place when work is left
                ray.kill(slot.actor, no_restart=True)
                slot.actor = None
                if attempt == 0:
                    retries[i] = Retry(i, why, slot.name)
                    queue.appendleft((i, 1))
                else:
                    retries[i].failed_again = why
                    bar.update(_steps_of(jobs[i]))
                idle.append(slot)
                continue
            outcome.results[i] = result
            bar.update(_steps_of(jobs[i]))
            if on_result:
                on_result(i, result)
            idle.append(slot)
        outcome.retries = [retries[i] for i in sorted(retries)]
        _stop(slots)
        return outcome
    except BaseException:
        # Ctrl-C or an error: nothing of this command keeps running (each actor's watchdog ends its anvils)
        for ref in running:
            try:
                ray.cancel(ref)
            except Exception:
                pass
        for s in slots:
            try:
                if s.actor is not None:
                    ray.kill(s.actor, no_restart=True)
            except Exception:
                pass
        raise
    finally:
        bar.close()
        if started:
            ray.shutdown()


def _stop(slots: list[_Slot]) -> None:
    """Stop each actor's chain, then the actor."""
    live = [s for s in slots if s.actor is not None]
    try:
        ray.get([s.actor.stop.remote() for s in live], timeout=60)
    except RayError as err:
        log.warning("an actor did not stop cleanly: %s", _why(err))
    for s in live:
        ray.kill(s.actor, no_restart=True)
