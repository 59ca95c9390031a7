"""The simulator on a real fork: an upstream anvil (chain id 1) with the reference protocol,
forked through ape-foundry, the production keeper running each step.

Runs are short (a few to a few dozen steps) to keep the suite fast; the headline figures
come from ``hedger simulate`` (README)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from statistics import pvariance

from typing import Any

import pytest
from hedger.sim import simreport, simulate
from hedger.chain.abi import PROJECT_ROOT, load_abi
from hedger.sim.deploy import deploy_contract, deploy_reference
from hedger.chain.executor import KeySigner, TxSender
from hedger.core.secrets import Secret
from hedger.cycle.keeper import make_web3
from hedger.sim.localchain import dev_account, start_anvil
from hedger.sim.simulate import Holding, Job, Runner, SimChain, SimOptions, policies, run_jobs
from hedger.core.types import UNIT, PolicyParams

POL = policies(PolicyParams())
# a broken policy for contrast: opens the hedge at the first step, never runs again
OPEN_ONCE = POL["open-once"]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory):
    c = SimChain().start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def runner(chain: SimChain, tmp_path_factory: pytest.TempPathFactory) -> Runner:
    return Runner(chain, SimOptions(workdir=tmp_path_factory.mktemp("sim")))


def test_fork_is_chain_1_through_ape_foundry(chain: SimChain) -> None:
    assert chain.w3.eth.chain_id == 1
    assert chain.upstream is not None and chain.fork_uri != chain.upstream.url
    # the protocol was deployed on the upstream; the fork reads it from there
    up = make_web3(chain.upstream.url)
    assert up.eth.get_code(chain.d.market) == chain.w3.eth.get_code(chain.d.market) != b""


def test_the_fork_keeps_no_step_traces(chain: SimChain) -> None:
    """ape-foundry starts anvil with --steps-tracing (every opcode of every transaction kept in
    memory, for ape's traces): a week of GMX orders grew a fork to 23 GB, killed by the kernel."""
    args = chain._ctx._provider.process.args
    assert "anvil" in str(args[0]) and "--fork-url" in args and "--steps-tracing" not in args


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_fork_never_runs_on_a_node_it_did_not_start_and_ends_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """The port chosen for the fork is taken by another anvil before ape starts one there (the
    race that failed CI once, when ape drew ports at random): the simulator neither uses nor
    stops that node, starts its fork on another port, and on stop ends its fork and upstream."""
    squatter = start_anvil(chain_id=1)      # chain id 1, like a fork: only the process check tells
    ports = iter([squatter.port])
    real_free_port = simulate.free_port
    monkeypatch.setattr(simulate, "free_port", lambda: next(ports, None) or real_free_port())
    try:
        c = SimChain().start()
        fork_port = int(c.fork_uri.rsplit(":", 1)[1])
        up_port = c.upstream.port
        assert fork_port != squatter.port
        assert c.w3.eth.get_code(c.d.market) != b""       # the fork holds the protocol
        c.stop()
        assert not _answers(fork_port) and not _answers(up_port)
        assert squatter.process.poll() is None and _answers(squatter.port)
        assert make_web3(squatter.url).eth.block_number == 0     # nothing was sent to it
    finally:
        squatter.stop()


def test_start_anvil_never_hands_back_a_port_it_does_not_hold() -> None:
    """A port that answers is not proof: here a plain socket listens on it. Asked for that port,
    start_anvil fails; asked for none, it takes the one anvil itself bound."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        with pytest.raises(RuntimeError, match="in use"):
            start_anvil(port=taken)
        with start_anvil() as node:
            assert node.port != taken
            assert make_web3(node.url).eth.chain_id == 31337


def test_default_policy_hedges_and_tracks_the_target(runner: Runner) -> None:
    r = runner.run(Job("gbm", 3, POL["default"], steps=24))
    assert len(r.tracking_steps()) == 24 and r.liquidations == 0
    # every run ends by unwinding through `hedger unwind`'s path: the exit is paid and measured
    last = r.steps[-1]
    assert len(r.steps) == 25 and last.decision == simulate.UNWIND and r.unwound
    assert last.position == 0 and last.d_fees < 0 and last.d_gas < 0 and last.txs >= 2   # close, then withdraw
    assert r.outcomes.get("unwind_acted", 0) >= 2
    band = PolicyParams().band / UNIT
    for s in r.tracking_steps()[1:]:
        # after each cycle the short is within the band (plus the per-cycle cap at the opening)
        assert abs(s.position - s.target) <= band * abs(s.target) + 1e-9, s
    assert pvariance(r.hedged_changes()) < pvariance(r.unhedged_changes()) / 20
    # what separates a working policy from one that merely opens a hedge: the same path with
    # the same flows (+20% spot at step 8, -30% at 16) and LP leg, hedged once and never again
    once = runner.run(Job("gbm", 3, OPEN_ONCE, steps=24))
    assert sum(1 for s in once.tracking_steps() if s.decision != "skipped") == 1
    risk = simreport.summarize([r])["residual_risk_usd"]
    risk_once = simreport.summarize([once])["residual_risk_usd"]
    assert risk < risk_once / 2, (risk, risk_once)
    assert max(abs(s.exposure + s.position) for s in r.tracking_steps()[1:]) < \
        max(abs(s.exposure + s.position) for s in once.tracking_steps()[1:]) / 2
    doc = simreport.report([r, once], {})
    assert doc["policies"]["default"]["risk_vs_open_once"] < 0.5
    assert doc["policies"]["open-once"]["in_band_fraction"] < doc["policies"]["default"]["in_band_fraction"]
    # gas had a price: the base-fee path was set on the chain each step
    assert r.gas_used > 0 and r.gas_usd > 0 and all(s.base_fee_gwei > 1 for s in r.steps)
    assert r.gas_wei >= r.gas_used * 5 * 10**9
    assert r.reserve_used_usd > 0


def test_gas_priced_at_a_given_eth_usd_for_another_asset(runner: Runner) -> None:
    job = Job("gbm", 3, POL["default"], steps=12)
    at_asset = runner.run(job)
    fixed = Runner(runner.chain, replace(runner.o, eth_usd=1_000 * UNIT)).run(job)
    assert fixed.gas_wei == at_asset.gas_wei > 0                     # the same run, priced otherwise
    assert fixed.gas_usd == pytest.approx(fixed.gas_wei / 1e18 * 1_000, rel=1e-9)
    assert at_asset.gas_usd > fixed.gas_usd * 2                      # the GBM path starts at 3,000


def test_wall_clock_does_not_matter(runner: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's chain starts at its wall-clock time; later runs revert to that start while the
    wall clock moves on. No guard may refuse because of it (the block-lag guard once did)."""
    first = runner.run(Job("gbm", 3, POL["default"], steps=6))
    import hedger.chain.reader
    real = hedger.chain.reader.time.time
    monkeypatch.setattr(hedger.chain.reader.time, "time", lambda: real() + 7200)
    later = runner.run(Job("gbm", 3, POL["default"], steps=6))
    assert "refused" not in later.outcomes
    assert later.steps == first.steps


def test_same_seed_same_run(runner: Runner) -> None:
    a = runner.run(Job("chop", 5, POL["band-only"], steps=8))
    b = runner.run(Job("chop", 5, POL["band-only"], steps=8))
    assert a.steps == b.steps and a.txs == b.txs and a.gas_used == b.gas_used
    c = runner.run(Job("chop", 6, POL["band-only"], steps=8))
    assert [s.price for s in c.steps] != [s.price for s in a.steps]


def test_fixed_interval_trades_more_than_the_band(runner: Runner) -> None:
    fixed = runner.run(Job("gbm", 4, POL["fixed-interval"], steps=12))
    band = runner.run(Job("gbm", 4, POL["default"], steps=12))
    assert fixed.txs > band.txs and fixed.gas_used > band.gas_used
    # exact target every step: the residual delta stays small
    assert max(abs(s.exposure + s.position) for s in fixed.tracking_steps()[1:]) < 0.5
    # a 3-hour interval runs the keeper every third step only
    every3 = runner.run(Job("gbm", 4, replace(POL["fixed-interval"], interval_s=3 * 3600), steps=12))
    assert sum(1 for s in every3.tracking_steps() if s.decision != "skipped") == 4


def test_gap_up_no_liquidation_by_default_but_liquidated_when_overlevered(runner: Runner) -> None:
    safe = runner.run(Job("gap-up", 1, POL["default"], steps=27))
    assert safe.liquidations == 0
    # the same jump against a short kept at ~9x with no top-ups: the liquidation keeper takes it
    reckless = replace(PolicyParams(), target_leverage=9 * UNIT, max_leverage=10 * UNIT, min_leverage=8 * UNIT,
                       liquidation_buffer=0)
    r = runner.run(Job("gap-up", 1, replace(POL["default"], params=reckless), steps=27))
    assert r.liquidations >= 1
    assert min(s.margin_ratio for s in r.tracking_steps() if s.margin_ratio is not None) < 0.12


def test_oracle_outage_refuses_while_the_feed_is_stale(runner: Runner) -> None:
    r = runner.run(Job("oracle-outage", 2, POL["default"], steps=28))
    assert r.outcomes.get("refused", 0) >= 1
    decisions = [s.decision for s in r.tracking_steps()]
    assert set(decisions[21:26]) <= {"oracle_stale", "market_price_invalid"}, decisions
    assert "oracle_stale" in decisions[21:26] and decisions[27] not in ("oracle_stale", "market_price_invalid")


def test_funding_aware_holds_less_short_when_shorts_pay(runner: Runner) -> None:
    base = runner.run(Job("funding-short", 1, POL["default"], steps=36))
    aware = runner.run(Job("funding-short", 1, POL["funding-aware"], steps=36))
    assert base.tracking_steps()[-1].funding_rate_yr < -0.10         # shorts pay more than the 10%/yr threshold
    assert any(s.decision == "funding_range" for s in aware.steps)
    assert all(s.target_low == pytest.approx(-0.8 * s.exposure) for s in aware.steps if s.funding_rate_yr < -0.1)
    assert all(s.target_low is None for s in base.steps)
    # the aware hedge sits inside 0.8..1.0 of the exposure, and pays less funding
    for s in aware.tracking_steps()[-10:]:
        assert 0.8 * s.exposure - 1e-6 <= -s.position <= 1.0 * s.exposure + 1e-6
    assert aware.funding_usd > base.funding_usd


def test_delayed_orders_are_filled_by_the_protocol_keeper(tmp_path: Path) -> None:
    runs = run_jobs([Job("gbm", 2, POL["default"], steps=4)], chain_kw={"order_mode": "delayed"},
                    options=SimOptions(workdir=tmp_path), progress=False)
    r = runs[0]
    assert abs(r.tracking_steps()[-1].position - r.tracking_steps()[-1].target) <= 0.05 * abs(r.tracking_steps()[-1].target) + 1e-9
    assert r.fees_usd > 0


def test_exposure_moves_with_flows_and_the_lp_leg(runner: Runner) -> None:
    r = runner.run(Job("rally", 1, POL["band-only"], steps=48))
    ex = [s.exposure for s in r.tracking_steps()]
    # the LP leg sells the asset as the price rises (1/sqrt(P)); the flows add then remove spot
    assert ex[16] - ex[15] == pytest.approx(12.0, abs=0.5)       # +20% of the 60 spot at n/3
    assert ex[32] - ex[31] == pytest.approx(-18.0, abs=0.5)      # -30% at 2n/3
    p0, p47 = r.tracking_steps()[0].price, r.tracking_steps()[47].price
    assert p47 > 1.4 * p0
    assert ex[47] == pytest.approx(60 + 12 - 18 + 40 * (p0 / p47) ** 0.5, rel=1e-9)
    no_lp = Holding(spot=100 * UNIT, lp=0, flows=False)
    r2 = Runner(runner.chain, replace(runner.o, holding=no_lp)).run(Job("rally", 1, POL["band-only"], steps=10))
    assert {s.exposure for s in r2.steps} == {100.0}


# Runs a command as a child subreaper (Linux prctl PR_SET_CHILD_SUBREAPER): whatever the command
# starts and leaves behind is re-parented to this wrapper, not to init, so after the command ends
# its leftovers are exactly this wrapper's remaining descendants. It writes their names as JSON to
# the file named by argv[1], ends them, and exits with the command's status.
_REAPER = r"""
import ctypes, json, os, signal, subprocess, sys, time
if ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
rc = subprocess.run(sys.argv[2:]).returncode

def live_descendants():
    parent, name = {}, {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            rest = stat[stat.rindex(")") + 2:].split()
            if rest[0] != "Z":
                parent[int(d)], name[int(d)] = int(rest[1]), stat[stat.index("(") + 1:stat.rindex(")")]
    me, out = os.getpid(), []
    for pid in parent:
        p = parent[pid]
        while p > 1 and p != me:
            p = parent.get(p, 0)
        if p == me:
            out.append((pid, name[pid]))
    return out

left = live_descendants()
with open(sys.argv[1], "w") as f:
    json.dump([n for _, n in left], f)
for pid, _ in left:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
deadline = time.monotonic() + 10
while left and time.monotonic() < deadline:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
sys.exit(rc)
"""


def _run_reaped(cmd: list[str], tmp: Path, **kw: Any) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``cmd`` under the subreaper wrapper: its result, and the names of the processes it
    started (directly or not) that were still running when it ended."""
    report = tmp / f"leftovers-{len(list(tmp.glob('leftovers-*')))}.json"
    p = subprocess.run([sys.executable, "-c", _REAPER, str(report), *cmd], capture_output=True, text=True, **kw)
    return p, json.loads(report.read_text())


def _cli(*args: str, timeout: float = 600,
         reaped: Path | None = None) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``hedger simulate`` as a user runs it; with ``reaped`` (a folder for the report), under the
    subreaper wrapper: then also the names of the processes it left running."""
    env = {**os.environ, "PATH": f"{PROJECT_ROOT / 'node_modules' / '.bin'}:{Path(sys.executable).parent}:"
                                 f"{os.environ.get('PATH', '')}"}
    cmd = [sys.executable, "-m", "hedger.cli", "simulate", "--no-progress", *args]
    if reaped is not None:
        return _run_reaped(cmd, reaped, timeout=timeout, cwd=PROJECT_ROOT, env=env)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT, env=env), []


def test_reaper_sees_what_a_command_leaves_running(tmp_path: Path) -> None:
    """The leftover check can fail: a command that leaves an 'anvil' behind (a copy of sleep,
    detached into the background) is caught, and the leftover is ended."""
    fake = tmp_path / "anvil"
    fake.write_bytes(Path("/bin/sleep").read_bytes())
    fake.chmod(0o755)
    p, left = _run_reaped(["sh", "-c", f"({fake} 60 &)"], tmp_path, timeout=60)
    assert p.returncode == 0 and left == ["anvil"]
    p, left = _run_reaped(["sh", "-c", "true"], tmp_path, timeout=60)
    assert p.returncode == 0 and left == []


def test_a_killed_simulate_leaves_no_worker_or_anvil_running(tmp_path: Path) -> None:
    """`kill PID` of a `hedger simulate` with worker processes (not a Ctrl-C, which reaches the
    whole group): its workers end, and with them their anvils (they once ran on, orphaned)."""
    sim = (f"{sys.executable} -m hedger.cli simulate --no-progress --scenario gbm --steps 150 --seeds 2 "
           f"--policies default --workers 2")
    # kill the command once a worker has an anvil running (a worker's child), then give the
    # workers 10 s to end
    script = (f"{sim} & pid=$!; n=0; until [ $n -ge 240 ]; do for w in $(pgrep -P $pid); do "
              f"pgrep -P $w -x anvil >/dev/null && n=999; done; n=$((n+1)); sleep 0.25; done; "
              f"kill -TERM $pid; wait $pid; sleep 10")
    env = {**os.environ, "PATH": f"{PROJECT_ROOT / 'node_modules' / '.bin'}:{Path(sys.executable).parent}:"
                                 f"{os.environ.get('PATH', '')}"}
    p, left = _run_reaped(["sh", "-c", script], tmp_path, timeout=180, cwd=PROJECT_ROOT, env=env)
    assert not [n for n in left if n in ("anvil", "node", "python", "python3")], (left, p.stderr[-1500:])


def test_cli_json_parallel_and_reproducible(tmp_path: Path, runner: Runner) -> None:
    out = tmp_path / "sim.json"
    # PATH as a user's shell after `make`: npm's node.js launcher for anvil comes first
    p, left = _cli("--scenario", "gbm", "--seed", "7", "--seeds", "2", "--steps", "5", "--policies",
                   "default,fixed-interval", "--workers", "2", "--json", str(out), "--plots", str(tmp_path / "png"),
                   reaped=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    # each worker's upstream and fork ended with the run (they once outlived it, orphaned); only
    # what this run started counts, not another job's anvil on the same machine
    assert not [n for n in left if n in ("anvil", "node")], left
    assert "var.red." in p.stdout and "steps/s" in p.stdout
    doc = json.loads(out.read_text())
    for name in ("default", "fixed-interval"):
        pol = doc["policies"][name]
        for key in ("variance_reduction", "liquidations", "txs", "gas_used", "cost_usd"):
            assert key in pol, key
        assert 0 < pol["variance_reduction"] <= 1 and pol["txs"] > 0 and pol["cost_usd"] > 0
    assert len(list((tmp_path / "png").glob("*.png"))) == 2
    # the same jobs in this process give the same figures as the two worker processes did
    again = [runner.run(Job("gbm", seed, POL[name], steps=5)) for seed in (7, 8) for name in ("default", "fixed-interval")]
    by_key = {(r["seed"], r["policy"]): r for r in doc["runs"]}
    for r in again:
        j = by_key[(r.seed, r.policy)]
        assert j["txs"] == r.txs and j["gas_used"] == r.gas_used
        assert j["cost_usd"] == pytest.approx(r.cost_usd, rel=1e-12)


def test_cli_sweep_reports_a_frontier(tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    p, _ = _cli("--scenario", "chop", "--steps", "4", "--policies", "fixed-interval", "--sweep", "band=0.02,0.1",
             "--workers", "1", "--json", str(out))
    assert p.returncode == 0, p.stderr[-2000:]
    doc = json.loads(out.read_text())
    labels = {pt["label"] for pt in doc["frontier"]}
    assert labels == {"fixed-interval", "default[band=0.02]", "default[band=0.1]"}
    assert any(pt["frontier"] for pt in doc["frontier"])
    assert "frontier" in p.stdout


@pytest.mark.parametrize("args, flag", [
    (["--scenario", "moon"], "--scenario"),
    (["--scenario", "csv:/nonexistent.csv"], "--scenario"),
    (["--sweep", "band"], "--sweep"),
    (["--sweep", "spread=1"], "--sweep"),
    (["--set", "target_leverage=5"], "--set"),
    (["--policies", "yolo"], "--policies"),
    (["--json", "/nonexistent/dir/x.json"], "--json"),
    (["--oracle", "0x0000000000000000000000000000000000000001"], "--oracle"),
    (["--eth-usd", "-5"], "--eth-usd"),
    (["--eth-usd", "nan"], "--eth-usd"),
    (["--spot", "inf"], "--spot/--lp"),
])
def test_cli_bad_input_names_the_flag(args: list[str], flag: str) -> None:
    p, _ = _cli(*args, timeout=120)
    assert p.returncode == 2
    assert flag in p.stderr and "Fix:" in p.stderr


def test_fork_url_reuses_real_contracts_and_etches_the_feed(tmp_path: Path) -> None:
    """A stand-in for a real chain: chain id 1 with a feed and collateral that the simulator
    does not own (deployed by another key). It etches the feed and deals the collateral."""
    real = start_anvil(chain_id=1)
    try:
        w3 = make_web3(real.url)
        other = TxSender(w3, KeySigner(Secret(dev_account(7).key.hex())))
        d = deploy_reference(other, initial_price=2_000 * 10**8)
        # an 18-decimal stablecoin (DAI-like) that the simulator cannot mint: it is dealt
        dai = deploy_contract(other, "ReferenceToken", "Dai (stand-in)", "DAI", 18)
        runs = run_jobs([Job("crash", 1, POL["default"], steps=4)],
                        chain_kw={"fork_url": real.url, "oracle": d.oracle, "collateral": dai},
                        options=SimOptions(workdir=tmp_path), progress=False)
        r = runs[0]
        assert [round(s.price, 2) for s in r.tracking_steps()] == [round(p / 1e8, 2) for p in
                                                         _prices("crash", 1)[:4]]
        assert r.tracking_steps()[-1].position < 0 and r.liquidations == 0
        assert 100_000 < r.reserve_used_usd < 200_000        # ~half the notional, in whole DAI
        # the real chain itself was not touched
        feed = w3.eth.contract(address=d.oracle, abi=load_abi("AggregatorV3Interface"))
        assert feed.functions.latestRoundData().call()[1] == 2_000 * 10**8
    finally:
        real.stop()


def _prices(name: str, seed: int) -> list[int]:
    from hedger.sim.scenarios import make
    return make(name, seed).prices()



def test_ape_run_simulate(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{PROJECT_ROOT / 'node_modules' / '.bin'}:{Path(sys.executable).parent}:"
                                 f"{os.environ.get('PATH', '')}"}
    p = subprocess.run([str(Path(sys.executable).parent / "ape"), "run", "simulate", "--scenario", "gbm", "--steps",
                        "2", "--policies", "default", "--workers", "1", "--no-progress", "--json",
                        str(tmp_path / "a.json")], capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT,
                       env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "var.red." in p.stdout
    assert json.loads((tmp_path / "a.json").read_text())["policies"]["default"]["runs"] == 1
    bad = subprocess.run([str(Path(sys.executable).parent / "ape"), "run", "simulate", "--scenario", "moon"],
                         capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT, env=env)
    assert bad.returncode == 2 and "--scenario" in bad.stderr
