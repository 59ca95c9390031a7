"""Generate ``abis/gmx-v2/`` from GMX's own npm package ``@gmx-io/sdk`` (pinned in package.json).

GMX publishes its ABIs and deployed addresses in the SDK, not its bytecode; the hedger's GMX v2
adapter reads only these generated files, so what it calls is what GMX deployed. Run after
`make compile` (which installs node_modules):

    .venv/bin/python scripts/gmx_abis.py           # (re)write abis/gmx-v2/*.json
    .venv/bin/python scripts/gmx_abis.py --check   # exit 1 if the committed files differ

The SDK ships CommonJS modules (``build/cjs/src/abis/<Name>.js`` exporting ``default`` = the ABI
array; ``build/cjs/src/configs/contracts.js`` exporting ``CONTRACTS`` = {chainId: {name: address}});
node loads them and hands JSON to Python, which writes it with sorted keys and a fixed indent so the
output is byte-for-byte reproducible.

Not in the SDK 1.4.0 (so not generated): a ``RoleStore`` ABI (``hasRole``), an ``OrderHandler`` ABI
(``orderVault()``), and the RoleStore/OrderHandler addresses; the adapter reads
``ExchangeRouter.roleStore()``/``.orderHandler()`` on chain, and the OrderVault address is in
``addresses.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SDK_DIR = PROJECT_ROOT / "node_modules" / "@gmx-io" / "sdk"
OUT_DIR = PROJECT_ROOT / "abis" / "gmx-v2"

# file written (abis/gmx-v2/<key>.json) -> module of the SDK (build/cjs/src/abis/<value>.js)
ABI_FILES: dict[str, str] = {
    "ExchangeRouter": "ExchangeRouter",
    "Reader": "SyntheticsReader",      # GMX v2's Reader; the SDK's "Reader" is GMX v1's
    "DataStore": "DataStore",
    "EventEmitter": "EventEmitter",
    "CustomErrors": "CustomErrors",
    "Router": "SyntheticsRouter",      # the Router that tokens are approved to
    "ReferralStorage": "ReferralStorage",
}

DEPLOYMENTS: dict[str, int] = {"arbitrum": 42161, "avalanche": 43114}

# name in addresses.json -> name in the SDK's address book (CONTRACTS[chainId])
ADDRESS_NAMES: dict[str, str] = {
    "ExchangeRouter": "ExchangeRouter",
    "Reader": "SyntheticsReader",
    "DataStore": "DataStore",
    "Router": "SyntheticsRouter",
    "OrderVault": "OrderVault",
    "EventEmitter": "EventEmitter",
    "ReferralStorage": "ReferralStorage",
    # GMX's on-chain Chainlink provider: fork mode (hedger.sim.gmx_fork) prices orders through it
    "ChainlinkPriceFeedProvider": "ChainlinkPriceFeedProvider",
}

ZERO_ADDRESS = "0x" + "0" * 40

_NODE_PROGRAM = r"""
const path = require('path');
const root = process.argv[1];
const names = JSON.parse(process.argv[2]);
const pkg = require(path.join(root, 'package.json'));
const abis = {};
for (const n of names) {
  const mod = require(path.join(root, 'build/cjs/src/abis', n + '.js'));
  abis[n] = mod.default !== undefined ? mod.default : mod;
}
const contracts = require(path.join(root, 'build/cjs/src/configs/contracts.js')).CONTRACTS;
process.stdout.write(JSON.stringify({name: pkg.name, version: pkg.version, abis, contracts}));
"""


class GenerationError(RuntimeError):
    """The SDK is missing or does not have the shape this script expects."""


def read_sdk(sdk_dir: Path = SDK_DIR) -> dict[str, Any]:
    """The SDK's package name/version, the ABIs named in ``ABI_FILES`` and its address book."""
    if not (sdk_dir / "package.json").exists():
        raise GenerationError(f"{sdk_dir} is missing: run `make compile` (npm ci installs @gmx-io/sdk)")
    node = shutil.which("node")
    if node is None:
        raise GenerationError("`node` is not on PATH: install Node.js (the SDK's modules are JavaScript)")
    proc = subprocess.run([node, "-e", _NODE_PROGRAM, str(sdk_dir), json.dumps(sorted(set(ABI_FILES.values())))],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, check=False)
    if proc.returncode != 0:
        raise GenerationError(f"node could not load the SDK's modules: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout)


def _checksum(address: str, where: str) -> str:
    from eth_utils import is_address, to_checksum_address
    if not is_address(address):
        raise GenerationError(f"{where}: {address!r} is not an address")
    return to_checksum_address(address)


def render(sdk: dict[str, Any]) -> dict[str, str]:
    """File name -> exact text of every file under abis/gmx-v2/ (sorted keys, indent 1, final newline)."""
    out: dict[str, str] = {}
    for fname, module in ABI_FILES.items():
        abi = sdk["abis"][module]
        if not isinstance(abi, list) or not all(isinstance(e, dict) and "type" in e for e in abi):
            raise GenerationError(f"abis/{module}.js: expected an array of ABI entries as its default export")
        out[f"{fname}.json"] = _dump(abi)
    book: dict[str, Any] = {"source": {"package": sdk["name"], "version": sdk["version"],
                                       "file": "build/cjs/src/configs/contracts.js"}}
    for deployment, chain_id in DEPLOYMENTS.items():
        entries = sdk["contracts"].get(str(chain_id))
        if entries is None:
            raise GenerationError(f"configs/contracts.js: no chain {chain_id} ({deployment})")
        row: dict[str, Any] = {"chainId": chain_id}
        for name, sdk_name in ADDRESS_NAMES.items():
            address = entries.get(sdk_name)
            if address is None or int(address, 16) == 0:
                continue      # not deployed there per the SDK: leave it out rather than write zero
            row[name] = _checksum(address, f"CONTRACTS[{chain_id}].{sdk_name}")
        book[deployment] = row
    out["addresses.json"] = _dump(book)
    return out


def _dump(value: Any) -> str:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def generate(sdk_dir: Path = SDK_DIR) -> dict[str, str]:
    return render(read_sdk(sdk_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = parser.parse_args(argv)
    try:
        files = generate()
    except GenerationError as err:
        print(f"gmx_abis: {err}", file=sys.stderr)
        return 2
    if args.check:
        stale = [n for n, text in files.items()
                 if not (OUT_DIR / n).exists() or (OUT_DIR / n).read_text() != text]
        extra = sorted(p.name for p in OUT_DIR.glob("*.json") if p.name not in files) if OUT_DIR.exists() else []
        for n in stale:
            print(f"abis/gmx-v2/{n} differs from the SDK: run scripts/gmx_abis.py", file=sys.stderr)
        for n in extra:
            print(f"abis/gmx-v2/{n} is not generated from the SDK: remove it", file=sys.stderr)
        return 1 if stale or extra else 0
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for n, text in files.items():
        (OUT_DIR / n).write_text(text)
    print(f"wrote {len(files)} files to {OUT_DIR.relative_to(PROJECT_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
