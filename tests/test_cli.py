"""The command line as a user (or cron) runs it: real processes against anvil."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hedger.chain.abi import PROJECT_ROOT
from hedger.sim.localchain import dev_account
from tests.conftest import Hedge
from tests.rpcproxy import RpcProxy

BIN = Path(sys.executable).parent


def run(args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("HEDGER_")}
    full.update(env)
    full["PATH"] = f"{BIN}:{PROJECT_ROOT / 'node_modules' / '.bin'}:{full.get('PATH', '')}"
    return subprocess.run(args, env=full, cwd=cwd or PROJECT_ROOT, capture_output=True, text=True, timeout=timeout)


def hedger(args: list[str], env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess:
    # run from an empty folder so that no .env of the developer's is picked up
    return run([str(BIN / "hedger"), *args], env, cwd=tmp)


def test_status_json_and_table(hedge: Hedge, tmp_path: Path) -> None:
    p = hedger(["status", "--json"], hedge.env, tmp_path)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    for key in ("oracle_price", "oracle_age_s", "spot_exposure", "position_size", "margin", "leverage",
                "liquidation_price", "funding_rate", "decision"):
        assert key in d
    assert d["oracle_price"] == 3000.0 and d["spot_exposure"] == 10.0 and d["position_size"] == 0.0
    assert d["decision"]["kind"] == "rebalance" and d["decision"]["reason"]
    assert hedger(["run-once"], hedge.env, tmp_path).returncode == 0
    d = json.loads(hedger(["status", "--json"], hedge.env, tmp_path).stdout)
    assert d["position_size"] == pytest.approx(-10.0)          # signed: a short is negative
    assert 1.5 <= d["leverage"] <= 3.0 and d["liquidation_price"] > d["oracle_price"]
    assert d["decision"]["kind"] == "hold" and "band" in d["decision"]["reason"]
    table = hedger(["status"], hedge.env, tmp_path)
    assert table.returncode == 0 and "liquidation price" in table.stdout and "decision" in table.stdout


def test_run_once_acts_then_holds_exit_zero(hedge: Hedge, tmp_path: Path) -> None:
    p = hedger(["run-once"], hedge.env, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "outcome: acted" in p.stdout and "modifyPosition" in p.stdout
    p = hedger(["run-once", "--json"], hedge.env, tmp_path)
    assert p.returncode == 0
    assert json.loads(p.stdout)["outcome"] == "held"


def test_dry_run_prints_calls_and_sends_nothing(hedge: Hedge, tmp_path: Path) -> None:
    n = hedge.nonce()
    p = hedger(["run-once", "--dry-run"], hedge.env, tmp_path)
    assert p.returncode == 0, p.stderr
    assert "nothing sent" in p.stdout
    assert f"market({hedge.chain.d.market}).modifyPosition(-10000000000000000000, " in p.stdout
    assert f"collateral({hedge.chain.d.collateral}).approve(" in p.stdout
    assert hedge.nonce() == n and hedge.position() == (0, 0)
    # no signer at all: dry run by itself
    env = {k: v for k, v in hedge.env.items() if k != "HEDGER_PRIVATE_KEY"}
    env["HEDGER_ACCOUNT"] = hedge.address
    p = hedger(["run-once"], env, tmp_path)
    assert p.returncode == 0 and "dry run" in p.stderr and "transferMargin" in p.stdout
    assert hedge.nonce() == n


def test_bad_config_exit_2_names_the_variable(hedge: Hedge, tmp_path: Path) -> None:
    n = hedge.nonce()
    p = hedger(["run-once"], {**hedge.env, "HEDGER_MARKET": "0x1234"}, tmp_path)
    assert p.returncode == 2
    assert "HEDGER_MARKET" in p.stderr and "Fix:" in p.stderr
    p = hedger(["run-once"], {**hedge.env, "HEDGER_BAND": "five percent"}, tmp_path)
    assert p.returncode == 2 and "HEDGER_BAND" in p.stderr
    assert hedge.nonce() == n


def test_stale_oracle_exit_3_on_stderr(hedge: Hedge, tmp_path: Path) -> None:
    hedge.chain.advance(4000)
    n = hedge.nonce()
    p = hedger(["run-once"], hedge.env, tmp_path)
    assert p.returncode == 3
    assert "stale" in p.stderr
    assert hedge.nonce() == n


def test_sequencer_down_exit_4(hedge: Hedge, tmp_path: Path) -> None:
    hedge.chain.admin("PriceFeed", hedge.chain.d.sequencer_feed, "setAnswer", 1)
    p = hedger(["run-once"], hedge.env, tmp_path)
    assert p.returncode == 4 and "sequencer" in p.stderr


def test_no_secret_in_any_output(hedge: Hedge, tmp_path: Path) -> None:
    key = hedge.env["HEDGER_PRIVATE_KEY"]
    # hosted RPCs put the API key in the path (here a proxy that accepts any path)
    with RpcProxy(hedge.chain.anvil.url) as proxy:
        env = {**hedge.env, "HEDGER_RPC_URL": proxy.url("/v2/SUPERSECRETAPIKEY")}
        outs = [hedger(["-v", "run-once"], env, tmp_path), hedger(["status"], env, tmp_path),
                hedger(["-v", "run-once"], {**env, "HEDGER_CHAIN_ID": "1"}, tmp_path)]
        assert proxy.paths and set(proxy.paths) == {"/v2/SUPERSECRETAPIKEY"}
    dead = {**env, "HEDGER_RPC_URL": "http://user:hunter2@127.0.0.1:9/v2/SUPERSECRETAPIKEY"}
    outs.append(hedger(["-v", "run-once"], dead, tmp_path))
    assert outs[0].returncode == 0, outs[0].stderr
    assert outs[2].returncode == 5
    assert outs[3].returncode == 8, outs[3].stderr
    for p in outs:
        text = p.stdout + p.stderr
        assert key not in text and key[2:] not in text and key[2:18] not in text
        assert "SUPERSECRETAPIKEY" not in text and "hunter2" not in text


def test_deploy_prints_addresses_and_reuses_oracle(hedge: Hedge, tmp_path: Path) -> None:
    env = {"HEDGER_RPC_URL": hedge.chain.anvil.url, "HEDGER_PRIVATE_KEY": dev_account(5).key.hex()}
    p = hedger(["deploy", "--oracle", hedge.chain.d.oracle, "--collateral", hedge.chain.d.collateral], env, tmp_path)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout.strip().splitlines()[-1])
    assert d["oracle"] == hedge.chain.d.oracle and d["collateral"] == hedge.chain.d.collateral
    assert d["market"] != hedge.chain.d.market
    assert hedge.chain.w3.eth.get_code(d["market"]) != b""
    assert hedge.chain.contract("PerpMarket", d["market"]).functions.feed().call() == hedge.chain.d.oracle
    p = hedger(["deploy"], {"HEDGER_RPC_URL": hedge.chain.anvil.url}, tmp_path)
    assert p.returncode == 2 and "HEDGER_PRIVATE_KEY" in p.stderr


def test_ape_run_hedge_on_the_network_ape_selects(hedge: Hedge, tmp_path: Path) -> None:
    p = run([str(BIN / "ape"), "run", "hedge", "--network", hedge.chain.anvil.url],
            {**hedge.env, "HEDGER_RPC_URL": "http://127.0.0.1:9"}, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "outcome: acted" in p.stdout
    assert hedge.position()[0] == -10 * 10**18


def test_ape_run_deploy_prints_addresses(hedge: Hedge, tmp_path: Path) -> None:
    env = {"HEDGER_PRIVATE_KEY": dev_account(6).key.hex(), "HEDGER_DEPLOY_ORACLE": hedge.chain.d.oracle}
    p = run([str(BIN / "ape"), "run", "deploy", "--network", hedge.chain.anvil.url], env, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    d = json.loads(p.stdout.strip().splitlines()[-1])
    assert d["oracle"] == hedge.chain.d.oracle and d["deployer"] == dev_account(6).address
    assert hedge.chain.w3.eth.get_code(d["market"]) != b""


def test_a_wrong_address_names_its_variable_and_the_fix(hedge: Hedge, tmp_path: Path) -> None:
    """The market address pointing at a feed: say which setting, and never "run `hedger status`" to
    the user who just ran it."""
    env = {**hedge.env, "HEDGER_MARKET": hedge.chain.d.oracle}
    p = hedger(["status"], env, tmp_path)
    assert p.returncode == 5, p.stdout + p.stderr
    assert "HEDGER_MARKET:" in p.stderr and "Fix: check that HEDGER_MARKET is the right address" in p.stderr
    assert "hedger status" not in p.stderr
    p = hedger(["status"], {**hedge.env, "HEDGER_SPOT_TOKEN": hedge.chain.d.oracle}, tmp_path)
    assert p.returncode == 5 and "HEDGER_SPOT_TOKEN:" in p.stderr and "hedger status" not in p.stderr


def test_status_measures_the_liquidation_distance_from_the_markets_price(hedge: Hedge, tmp_path: Path) -> None:
    """The market liquidates at its own price: with an oracle that reads 10% higher, the distance
    is still measured from the market's price."""
    from hedger.sim.deploy import deploy_contract, transact
    assert hedger(["run-once"], hedge.env, tmp_path).returncode == 0
    feed = deploy_contract(hedge.chain.deployer, "PriceFeed", 8, "ETH / USD (other)", 1)
    transact(hedge.chain.deployer, "PriceFeed", feed, "setAnswer", 3300 * 10**8)
    p = hedger(["status", "--json"], {**hedge.env, "HEDGER_ORACLE": feed}, tmp_path)
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["oracle_price"] == 3300.0 and d["market_price"] == 3000.0
    assert d["liquidation_distance"] == pytest.approx((d["liquidation_price"] - 3000.0) / 3000.0)
    assert d["liquidation_distance_from"] == "market_price"
    table = hedger(["status"], {**hedge.env, "HEDGER_ORACLE": feed}, tmp_path).stdout
    assert "away from the market price" in table and "market price       3,000.00 USD" in table


def test_times_are_utc_in_text_and_raw_in_json(hedge: Hedge, tmp_path: Path) -> None:
    import re
    assert hedger(["pause", "--reason", "audit"], hedge.env, tmp_path).returncode == 0
    table = hedger(["status"], hedge.env, tmp_path).stdout
    line = next(x for x in table.splitlines() if x.startswith("paused"))
    assert re.search(r"YES since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \((\d+s ago|now)\): audit", line), line
    d = json.loads(hedger(["status", "--json"], hedge.env, tmp_path).stdout)
    assert isinstance(d["paused"]["since"], int) and isinstance(d["block_timestamp"], int)
    # a pending two-step order: its times as UTC date-times
    assert hedger(["resume"], hedge.env, tmp_path).returncode == 0
    env = {**hedge.env, "HEDGER_ORDER_MODE": "delayed"}
    assert hedger(["run-once"], env, tmp_path).returncode == 0
    table = hedger(["status"], env, tmp_path).stdout
    line = next(x for x in table.splitlines() if x.startswith("order "))
    assert re.search(r"pending increase -\d+\.\d{4}, age \d+s \(executable at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC "
                     r".*expires at \d{4}-.*\), key 0x[0-9a-fA-F]{40}$", line), line
    (o,) = json.loads(hedger(["status", "--json"], env, tmp_path).stdout)["orders"]
    assert isinstance(o["executable_at"], int) and isinstance(o["expires_at"], int)
    assert o["state"] == "pending" and o["kind"] == "increase" and o["key"] == hedge.address
    assert isinstance(o["age_s"], int) and o["age_s"] >= 0


def test_version(tmp_path: Path) -> None:
    from importlib.metadata import version
    p = hedger(["--version"], {}, tmp_path)
    assert p.returncode == 0 and p.stdout.strip() == f"hedger {version('perp-hedger')}"


@pytest.mark.parametrize("argv, flag", [
    (["watch", "--interval", "0"], "--interval"),                   # a tight loop against the node
    (["watch", "--interval", "-1"], "--interval"),
    (["watch", "--max-failures", "0"], "--max-failures"),
    (["watch", "--metrics-port", "99999"], "--metrics-port"),       # was `unexpected OverflowError`, exit 1
    (["unwind", "--timeout", "-5"], "--timeout"),
])
def test_watch_and_unwind_flags_out_of_range_are_refused_by_name(argv: list[str], flag: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """They were accepted (a watch polling without a pause, a circuit breaker of 0) or died unexpectedly;
    now exit 2 naming the flag, before any setting is read (no chain here)."""
    from hedger.cli import main
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{flag}:" in err and "Fix:" in err


def test_output_to_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`hedger report | head -1` (the reader gone before all is written) ended `hedger: unexpected
    BrokenPipeError` and exit 1, like an internal error; now quietly, with the shell's code for a
    command stopped by SIGPIPE (141)."""
    from hedger.state.journal import Journal
    journal = tmp_path / "journal.sqlite"
    Journal(str(journal))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEDGER_")}
    env.update({"HEDGER_ACCOUNT": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "HEDGER_CHAIN_ID": "31337",
                "HEDGER_JOURNAL_PATH": str(journal), "HEDGER_RPC_URL": "http://127.0.0.1:9",
                "HEDGER_MARKET": "0x" + "11" * 20, "HEDGER_ORACLE": "0x" + "22" * 20,
                "HEDGER_SPOT_TOKEN": "0x" + "33" * 20, "HEDGER_COLLATERAL_TOKEN": "0x" + "44" * 20})
    r, w = os.pipe()
    os.close(r)                                     # the reader has gone
    try:
        p = subprocess.run([str(BIN / "hedger"), "report"], env=env, cwd=tmp_path, stdout=w,
                           stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(w)
    assert "unexpected" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert p.returncode == 141, p.stderr
