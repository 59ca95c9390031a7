"""Print Vyper struct definitions for GMX's Reader return shapes, from abis/gmx-v2/Reader.json.

The stand-in's Reader (contracts/GmxReader.vy) must return exactly GMX's tuples, component names
included; writing them by hand is error-prone, so this prints them (dependencies first) for pasting
between the "generated structs" markers. tests/test_gmx_standin.py checks the result against the ABI.

    .venv/bin/python scripts/gmx_standin_structs.py getPositionInfo getMarketInfo ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ABI = Path(__file__).resolve().parent.parent / "abis" / "gmx-v2" / "Reader.json"
GENERIC = {"Props", "Addresses", "Numbers", "Flags"}
ARRAY_BOUND = {"swapPath": 4, "_dataList": 8}
DEFAULT_BOUND = 16


def struct_name(internal_type: str) -> str:
    library, _, name = internal_type.removeprefix("struct ").removesuffix("[]").rpartition(".")
    return (library + name) if name in GENERIC else name


def vyper_type(p: dict[str, Any]) -> str:
    t = p["type"]
    if t.startswith("tuple"):
        base = struct_name(p["internalType"])
    else:
        base = t.rstrip("[]")
    if t.endswith("[]"):
        return f"DynArray[{base}, {ARRAY_BOUND.get(p['name'], DEFAULT_BOUND)}]"
    return base


def collect(p: dict[str, Any], out: dict[str, list[str]]) -> None:
    if not p["type"].startswith("tuple"):
        return
    for c in p["components"]:
        collect(c, out)
    name = struct_name(p["internalType"])
    if name not in out:
        out[name] = [f"    {c['name']}: {vyper_type(c)}" for c in p["components"]]


def main(functions: list[str]) -> None:
    abi = json.loads(ABI.read_text())
    out: dict[str, list[str]] = {}
    for e in abi:
        if e.get("type") == "function" and e["name"] in functions:
            for p in e["inputs"] + e["outputs"]:
                collect(p, out)
    for name, fields in out.items():
        print(f"struct {name}:")
        print("\n".join(fields))


if __name__ == "__main__":
    main(sys.argv[1:])
