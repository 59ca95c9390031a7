"""`hedger simulate`'s policy list, --set and --sweep parsing (no chain)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from hedger.core.errors import ConfigError
from hedger.sim.simcli import build_policies
from hedger.core.types import UNIT, PolicyParams


def args(**kw: object) -> argparse.Namespace:
    base = {"policies": "fixed-interval,band-only,default,funding-aware", "set": [], "sweep": []}
    return argparse.Namespace(**{**base, **kw})


def test_named_policies_and_fixed_interval_hours() -> None:
    pols = build_policies(args(policies="default,fixed-interval,fixed-interval-4h,fixed-interval-0.5h"))
    by = {p.name: p for p in pols}
    assert by["default"].params == PolicyParams() and by["default"].interval_s == 0
    assert by["fixed-interval"].interval_s == 3600 and by["fixed-interval"].params.band == 0
    assert by["fixed-interval-4h"].interval_s == 4 * 3600 and by["fixed-interval-0.5h"].interval_s == 1800


def test_set_applies_to_every_policy_and_keeps_the_funding_range_off() -> None:
    pols = {p.name: p for p in build_policies(args(set=["hedge_ratio=0.9", "cooldown=60"]))}
    assert pols["default"].params.hedge_ratio == 9 * UNIT // 10
    assert pols["default"].params.funding_min_ratio == pols["default"].params.hedge_ratio   # still off
    assert pols["funding-aware"].params.funding_min_ratio == 8 * UNIT // 10
    assert pols["band-only"].params.cooldown_s == 0 and pols["default"].params.cooldown_s == 60


def test_sweep_grid_and_intervals() -> None:
    pols = build_policies(args(policies="default", sweep=["band=0.02,0.1", "target_leverage=1.75,2.5",
                                                          "interval=2,8"]))
    names = [p.name for p in pols]
    assert names == ["default", "fixed-interval-2h", "fixed-interval-8h",
                     "default[band=0.02,target_leverage=1.75]", "default[band=0.02,target_leverage=2.5]",
                     "default[band=0.1,target_leverage=1.75]", "default[band=0.1,target_leverage=2.5]"]
    last = pols[-1].params
    assert last.band == UNIT // 10 and last.target_leverage == 25 * UNIT // 10


@pytest.mark.parametrize("kw, flag", [
    ({"policies": "yolo"}, "--policies"),
    ({"policies": "fixed-interval-xh"}, "--policies"),
    ({"policies": "default,default"}, "--policies"),
    ({"set": ["band"]}, "--set"),
    ({"set": ["spread=1"]}, "--set"),
    ({"set": ["band=abc"]}, "--set"),
    ({"set": ["target_leverage=4"]}, "--set"),
    ({"sweep": ["band=0.1,-1"]}, "--sweep"),
    ({"sweep": ["band="]}, "--sweep"),
    ({"set": ["band=nan"]}, "--set"),
    ({"sweep": ["cooldown=inf"]}, "--sweep"),
    ({"policies": "fixed-interval-infh"}, "--policies"),
    ({"policies": "fixed-interval-0h"}, "--policies"),
])
def test_bad_input_names_the_flag(kw: dict[str, object], flag: str) -> None:
    with pytest.raises(ConfigError) as e:
        build_policies(args(**kw))
    assert e.value.variable == flag and e.value.fix


@pytest.mark.parametrize("window, fix", [
    ("2020-02-30:", "YYYY-MM-DD"),                               # no such day
    ("2030-01-01:2030-02-01", "give dates between 2020-03-01 00:00 and 2020-03-01 23:00"),
    ("2020-03-01T12:00:2020-03-01T11:00", "give FROM before TO"),
])
def test_a_bad_csv_window_names_the_option_and_the_fix(tmp_path: Path, window: str, fix: str) -> None:
    from hedger.sim.simcli import cmd_simulate
    f = tmp_path / "eth.csv"
    f.write_text("timestamp,price\n" + "".join(f"{1_583_020_800 + h * 3600},{3000 + h}\n" for h in range(24)))
    with pytest.raises(ConfigError) as e:
        cmd_simulate(argparse.Namespace(scenario=[f"csv:{f}:{window}"], seed=1))
    assert e.value.variable == "--scenario" and fix in e.value.fix, e.value


def test_a_fork_url_of_another_chain_than_ethereum_is_refused_by_name(tmp_path: Path) -> None:
    """`--fork-url` forks through ape's ethereum:mainnet-fork network, chain id 1 only. A node of another
    chain (a local anvil, 31337) made every worker die in ape's NetworkMismatchError, and the command end
    in `unexpected BrokenProcessPool` (exit 1) after two tracebacks; now it is refused at the start, naming
    the flag and the chain id, before any chain starts. A fake node: no anvil, no network."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from hedger.sim.simcli import cmd_simulate

    class Node(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = {"eth_chainId": "0x7a69", "eth_blockNumber": "0x10"}
            out = json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": answer[body["method"]]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Node)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        from hedger.cli import build_parser
        ns = build_parser().parse_args(["simulate", "--fork-url", url, "--scenario", "gbm", "--steps", "2",
                                        "--policies", "default", "--workers", "1"])
        with pytest.raises(ConfigError) as e:
            cmd_simulate(ns)
        assert e.value.variable == "--fork-url" and "31337" in str(e.value) and "chain id 1" in str(e.value)
    finally:
        server.shutdown()


def test_plots_at_a_file_is_refused_before_any_run(tmp_path: Path) -> None:
    """`--plots PATH` at an existing file ran every run, then died `unexpected FileExistsError` (exit 1)
    when writing the first plot; now refused by name before any chain starts."""
    from hedger.cli import build_parser
    from hedger.sim.simcli import cmd_simulate
    f = tmp_path / "not-a-folder"
    f.write_text("x")
    ns = build_parser().parse_args(["simulate", "--scenario", "gbm", "--steps", "2", "--policies", "default",
                                    "--workers", "1", "--plots", str(f)])
    with pytest.raises(ConfigError) as e:
        cmd_simulate(ns)
    assert e.value.variable == "--plots"


def test_a_ray_address_where_nothing_listens_is_refused_at_once(tmp_path: Path) -> None:
    """`--engine ray --ray-address HOST:PORT` with no Ray head there waited in Ray's own connection
    attempts for minutes (a typo in the address looked like a hang); it is refused by name at once."""
    import socket
    from hedger.cli import build_parser
    from hedger.sim.simcli import cmd_simulate
    with socket.socket() as s:                      # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ns = build_parser().parse_args(["simulate", "--scenario", "gbm", "--steps", "2", "--policies", "default",
                                    "--engine", "ray", "--ray-address", f"127.0.0.1:{port}"])
    with pytest.raises(ConfigError) as e:
        cmd_simulate(ns)
    assert e.value.variable == "--ray-address" and f"127.0.0.1:{port}" in str(e.value)
