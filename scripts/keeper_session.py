"""A session of `hedger watch` on a local chain, as an operator would see it.

Starts anvil and deploys the reference protocol, funds a holder, starts
`hedger watch --metrics-port` with an alert webhook on loopback, moves the
price in steps (the keeper hedges, tops up, withdraws), scrapes the metrics
once, prints the alerts received, stops the keeper with SIGTERM and prints
`hedger report`. No RPC URL or key needed.

    .venv/bin/python scripts/keeper_session.py
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from web3 import Web3  # noqa: E402

from hedger.core.secrets import child_env  # noqa: E402
from hedger.sim.deploy import deploy_reference, transact  # noqa: E402
from hedger.chain.executor import KeySigner, Secret, TxSender  # noqa: E402
from hedger.sim.localchain import dev_account, free_port, start_anvil  # noqa: E402

BIN = Path(sys.executable).parent


def main() -> int:
    alerts: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            alerts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a: object) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    anvil = start_anvil()
    proc = None
    try:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        dep = TxSender(w3, KeySigner(Secret(dev_account(0).key.hex())))
        d = deploy_reference(dep)
        holder = dev_account(1)
        transact(dep, "ReferenceToken", d.spot, "mint", holder.address, 10 * 10**18)
        transact(dep, "ReferenceToken", d.collateral, "mint", holder.address, 60_000 * 10**6)
        tmp = Path(tempfile.mkdtemp(prefix="hedger-session-"))
        port = free_port()
        env = {**child_env(), "HEDGER_RPC_URL": anvil.url, "HEDGER_PRIVATE_KEY": holder.key.hex(),
               "HEDGER_MARKET": d.market, "HEDGER_ORACLE": d.oracle, "HEDGER_SPOT_TOKEN": d.spot,
               "HEDGER_COLLATERAL_TOKEN": d.collateral, "HEDGER_JOURNAL_PATH": str(tmp / "journal.sqlite"),
               "HEDGER_COOLDOWN": "0", "HEDGER_ALERT_LIQ_DISTANCE": "0.30",
               "HEDGER_ALERT_WEBHOOK": f"http://127.0.0.1:{hook.server_address[1]}/hook"}
        proc = subprocess.Popen([str(BIN / "hedger"), "watch", "--interval", "1", "--metrics-port", str(port)],
                                env=env, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[str] = []
        threading.Thread(target=lambda: [lines.append(x.rstrip()) for x in proc.stdout], daemon=True).start()

        def wait_cycles(n: int) -> None:
            deadline = time.time() + 60
            while sum("event=cycle" in x for x in lines) < n and time.time() < deadline:
                time.sleep(0.1)

        wait_cycles(1)
        for i, price in enumerate((3300, 3900, 2400), start=2):
            w3.provider.make_request("evm_increaseTime", [3600])
            transact(dep, "PriceFeed", d.oracle, "setAnswer", price * 10**8)
            print(f"--- price set to {price}")
            wait_cycles(i)
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        time.sleep(0.2)
        print("=== hedger watch (log lines)")
        for x in lines:
            print(x)
        print(f"=== exit code {proc.returncode}")
        print("=== metrics (scraped once)")
        for x in metrics.splitlines():
            if x.startswith("hedger_") and not x.startswith("hedger_refusals"):
                print(x)
        print(f"=== alerts received: {len(alerts)}")
        for a in alerts:
            print(json.dumps(a))
        print("=== hedger report")
        rep = subprocess.run([str(BIN / "hedger"), "report"], env=env, cwd=tmp, capture_output=True, text=True)
        print(rep.stdout + rep.stderr)
        return 0 if proc.returncode == 0 and alerts else 1
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        anvil.stop()
        hook.shutdown()


if __name__ == "__main__":
    sys.exit(main())
