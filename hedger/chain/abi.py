"""The JSON ABIs under ``abis/`` and the compiled reference contracts under ``.build/``.

The hedger talks to addresses only through these interface ABIs, so any
contract with the interface works: a real Chainlink proxy, real USDC.
"""

from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from hedger.core.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ABI_DIR = PROJECT_ROOT / "abis"
BUILD_MANIFEST = PROJECT_ROOT / ".build" / "__local__.json"


@lru_cache(maxsize=None)
def load_abi(name: str) -> list[dict[str, Any]]:
    path = ABI_DIR / f"{name}.json"
    with path.open() as fh:
        return json.load(fh)


ERC20 = "ERC20"
AGGREGATOR_V3 = "AggregatorV3Interface"
PERP_MARKET = "PerpMarket"
UNISWAP_V3_POOL = "UniswapV3Pool"   # the views a TWAP and an LP position read (from @uniswap/v3-core)
UNISWAP_V3_FACTORY = "UniswapV3Factory"
POSITION_MANAGER = "NonfungiblePositionManager"   # (from @uniswap/v3-periphery)


def _manifest_stale() -> bool:
    if not BUILD_MANIFEST.exists():
        return True
    built = BUILD_MANIFEST.stat().st_mtime
    return any(p.stat().st_mtime > built for p in (PROJECT_ROOT / "contracts").glob("*.vy"))


@lru_cache(maxsize=None)
def contract_artifact(name: str) -> dict[str, Any]:
    """ABI and deployment bytecode of a reference contract, compiled by ape-vyper.

    Runs ``ape compile`` when the build is missing or older than the sources.
    """
    if _manifest_stale():
        from hedger.core.secrets import child_env
        env = child_env()          # `ape compile` needs no key, passphrase or RPC credentials
        venv_bin = PROJECT_ROOT / ".venv" / "bin"
        npm_bin = PROJECT_ROOT / "node_modules" / ".bin"
        env["PATH"] = f"{npm_bin}:{venv_bin}:{env.get('PATH', '')}"
        ape = venv_bin / "ape"
        cmd = [str(ape) if ape.exists() else "ape", "compile"]
        proc = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ConfigError("contracts/", f"`ape compile` failed: {proc.stderr.strip()[-500:]}",
                              "run `make compile` and read its output")
    with BUILD_MANIFEST.open() as fh:
        manifest = json.load(fh)
    ct = manifest["contractTypes"].get(name)
    if ct is None:
        raise ConfigError("contracts/", f"no compiled contract named {name}", "run `make compile`")
    return {"abi": ct["abi"], "bytecode": ct["deploymentBytecode"]["bytecode"],
            "runtime": ct.get("runtimeBytecode", {}).get("bytecode", "0x")}
