"""abis/gmx-v2/ is what scripts/gmx_abis.py generates from the pinned @gmx-io/sdk, and it has the
functions, structs and events the GMX v2 adapter calls, with the shapes it encodes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from eth_utils import is_checksum_address

ROOT = Path(__file__).resolve().parent.parent
ABI_DIR = ROOT / "abis" / "gmx-v2"
SDK = ROOT / "node_modules" / "@gmx-io" / "sdk" / "package.json"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("gmx_abis", ROOT / "scripts" / "gmx_abis.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _abi(name: str) -> list[dict[str, Any]]:
    return json.loads((ABI_DIR / f"{name}.json").read_text())


def _entry(abi: list[dict[str, Any]], name: str, kind: str = "function") -> dict[str, Any]:
    found = [e for e in abi if e.get("type") == kind and e.get("name") == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} entries"
    return found[0]


def _shape(params: list[dict[str, Any]]) -> list[Any]:
    """(name, type) pairs, tuples expanded to their components' names and types, recursively."""
    out: list[Any] = []
    for p in params:
        if p["type"].startswith("tuple"):
            out.append((p["name"], p["type"], _shape(p["components"])))
        else:
            out.append((p["name"], p["type"]))
    return out


def _names(params: list[dict[str, Any]]) -> list[str]:
    return [p["name"] for p in params]


@pytest.mark.skipif(not SDK.exists(), reason="node_modules/@gmx-io/sdk is not installed: run `make compile`")
def test_committed_files_are_what_the_sdk_generates() -> None:
    # fails when someone edits abis/gmx-v2 by hand or the pinned SDK version changes
    # (addresses.json records the SDK's version): re-run scripts/gmx_abis.py and review the diff
    generated = _script().generate()
    committed = {p.name: p.read_text() for p in ABI_DIR.glob("*.json")}
    assert sorted(committed) == sorted(generated)
    for name, text in generated.items():
        assert committed[name] == text, f"abis/gmx-v2/{name} differs from the SDK: run scripts/gmx_abis.py"


@pytest.mark.skipif(not SDK.exists(), reason="node_modules/@gmx-io/sdk is not installed: run `make compile`")
def test_check_mode_reports_a_hand_edit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _script()
    for p in ABI_DIR.glob("*.json"):
        (tmp_path / p.name).write_text(p.read_text())
    monkeypatch.setattr(script, "OUT_DIR", tmp_path)
    assert script.main(["--check"]) == 0
    edited = json.loads((tmp_path / "ExchangeRouter.json").read_text())[:-1]
    (tmp_path / "ExchangeRouter.json").write_text(json.dumps(edited))
    assert script.main(["--check"]) == 1


def test_sdk_version_is_the_pinned_one() -> None:
    book = json.loads((ABI_DIR / "addresses.json").read_text())
    pinned = json.loads((ROOT / "package.json").read_text())
    deps = {**pinned.get("dependencies", {}), **pinned.get("devDependencies", {})}
    assert book["source"]["package"] == "@gmx-io/sdk"
    assert deps["@gmx-io/sdk"].lstrip("=^~") == book["source"]["version"]


def test_address_book_for_both_deployments() -> None:
    book = json.loads((ABI_DIR / "addresses.json").read_text())
    for deployment, chain_id in (("arbitrum", 42161), ("avalanche", 43114)):
        row = book[deployment]
        assert row["chainId"] == chain_id
        for name in ("ExchangeRouter", "Reader", "DataStore", "Router", "OrderVault", "EventEmitter",
                     "ReferralStorage", "ChainlinkPriceFeedProvider"):
            assert is_checksum_address(row[name]), f"{deployment}.{name}"
            assert int(row[name], 16) != 0
    # the v2 Reader (SDK's "SyntheticsReader"), not GMX v1's "Reader"
    assert book["arbitrum"]["Reader"] == "0x470fbC46bcC0f16532691Df360A07d8Bf5ee0789"
    assert book["arbitrum"]["ExchangeRouter"] != book["avalanche"]["ExchangeRouter"]
    # GMX's on-chain Chainlink provider, through which fork mode prices orders (hedger.sim.gmx_fork)
    assert book["arbitrum"]["ChainlinkPriceFeedProvider"] == "0x38B8dB61b724b51e42A88Cb8eC564CD685a0f53B"


CREATE_ORDER_PARAMS = [
    ("addresses", "tuple", [("receiver", "address"), ("cancellationReceiver", "address"),
                            ("callbackContract", "address"), ("uiFeeReceiver", "address"),
                            ("market", "address"), ("initialCollateralToken", "address"),
                            ("swapPath", "address[]")]),
    ("numbers", "tuple", [("sizeDeltaUsd", "uint256"), ("initialCollateralDeltaAmount", "uint256"),
                          ("triggerPrice", "uint256"), ("acceptablePrice", "uint256"),
                          ("executionFee", "uint256"), ("callbackGasLimit", "uint256"),
                          ("minOutputAmount", "uint256"), ("validFromTime", "uint256")]),
    ("orderType", "uint8"), ("decreasePositionSwapType", "uint8"), ("isLong", "bool"),
    ("shouldUnwrapNativeToken", "bool"), ("autoCancel", "bool"), ("referralCode", "bytes32"),
    ("dataList", "bytes32[]"),
]


def test_exchange_router_functions_the_adapter_calls() -> None:
    abi = _abi("ExchangeRouter")
    multicall = _entry(abi, "multicall")
    assert _shape(multicall["inputs"]) == [("data", "bytes[]")] and multicall["stateMutability"] == "payable"
    assert _shape(_entry(abi, "sendWnt")["inputs"]) == [("receiver", "address"), ("amount", "uint256")]
    assert _shape(_entry(abi, "sendTokens")["inputs"]) == [("token", "address"), ("receiver", "address"),
                                                           ("amount", "uint256")]
    create = _entry(abi, "createOrder")
    assert [(p["name"], p["type"]) for p in create["inputs"]] == [("params", "tuple")]
    assert _shape(create["inputs"][0]["components"]) == CREATE_ORDER_PARAMS
    assert [o["type"] for o in create["outputs"]] == ["bytes32"]          # the order key
    assert _shape(_entry(abi, "cancelOrder")["inputs"]) == [("key", "bytes32")]
    assert _shape(_entry(abi, "claimFundingFees")["inputs"]) == [
        ("markets", "address[]"), ("tokens", "address[]"), ("receiver", "address")]
    assert _shape(_entry(abi, "claimCollateral")["inputs"]) == [
        ("markets", "address[]"), ("tokens", "address[]"), ("timeKeys", "uint256[]"), ("receiver", "address")]
    for view in ("dataStore", "router", "orderHandler", "eventEmitter", "roleStore"):
        entry = _entry(abi, view)
        assert entry["inputs"] == [] and [o["type"] for o in entry["outputs"]] == ["address"], view


MARKET_PRICES = ("prices", "tuple", [("indexTokenPrice", "tuple", [("min", "uint256"), ("max", "uint256")]),
                                     ("longTokenPrice", "tuple", [("min", "uint256"), ("max", "uint256")]),
                                     ("shortTokenPrice", "tuple", [("min", "uint256"), ("max", "uint256")])])
POSITION_NUMBERS = ["sizeInUsd", "sizeInTokens", "collateralAmount", "pendingImpactAmount", "borrowingFactor",
                    "fundingFeeAmountPerSize", "longTokenClaimableFundingAmountPerSize",
                    "shortTokenClaimableFundingAmountPerSize", "increasedAtTime", "decreasedAtTime"]


def test_reader_functions_the_adapter_calls() -> None:
    abi = _abi("Reader")
    info = _entry(abi, "getPositionInfo")
    assert _shape(info["inputs"]) == [("dataStore", "address"), ("referralStorage", "address"),
                                      ("positionKey", "bytes32"), MARKET_PRICES, ("sizeDeltaUsd", "uint256"),
                                      ("uiFeeReceiver", "address"), ("usePositionSizeAsSizeDeltaUsd", "bool")]
    out = {c["name"]: c for c in info["outputs"][0]["components"]}
    assert {"positionKey", "position", "fees", "executionPriceResult", "basePnlUsd", "pnlAfterPriceImpactUsd"} <= set(out)
    numbers = {c["name"]: c for c in out["position"]["components"]}["numbers"]
    # the position carries its pending price impact (signed): the model's Position mirrors this
    assert _names(numbers["components"]) == POSITION_NUMBERS
    assert {c["name"]: c["type"] for c in numbers["components"]}["pendingImpactAmount"] == "int256"
    fees = {c["name"]: c for c in out["fees"]["components"]}
    assert {"funding", "borrowing", "positionFeeAmount", "totalCostAmount"} <= set(fees)

    positions = _entry(abi, "getAccountPositions")
    assert _shape(positions["inputs"]) == [("dataStore", "address"), ("account", "address"),
                                           ("start", "uint256"), ("end", "uint256")]
    assert positions["outputs"][0]["type"] == "tuple[]"
    orders = _entry(abi, "getAccountOrders")
    assert _shape(orders["inputs"]) == _shape(positions["inputs"])
    assert _names(orders["outputs"][0]["components"]) == ["orderKey", "order"]

    market = _entry(abi, "getMarketInfo")
    assert _shape(market["inputs"]) == [("dataStore", "address"), MARKET_PRICES, ("marketKey", "address")]
    fields = _names(market["outputs"][0]["components"])
    assert {"borrowingFactorPerSecondForLongs", "borrowingFactorPerSecondForShorts", "nextFunding"} <= set(fields)
    next_funding = {c["name"]: c for c in market["outputs"][0]["components"]}["nextFunding"]
    assert {"longsPayShorts", "fundingFactorPerSecond"} <= set(_names(next_funding["components"]))


def test_event_emitter_events_the_adapter_decodes() -> None:
    abi = _abi("EventEmitter")
    for name, topics in (("EventLog1", ["topic1"]), ("EventLog2", ["topic1", "topic2"])):
        event = _entry(abi, name, kind="event")
        assert _names(event["inputs"]) == ["msgSender", "eventName", "eventNameHash", *topics, "eventData"]
        indexed = [i["name"] for i in event["inputs"] if i["indexed"]]
        assert indexed == ["eventNameHash", *topics], name
        data = event["inputs"][-1]
        assert _names(data["components"]) == ["addressItems", "uintItems", "intItems", "boolItems",
                                              "bytes32Items", "bytesItems", "stringItems"]
        for group in data["components"]:                 # every group: named items and named arrays
            assert _names(group["components"]) == ["items", "arrayItems"]
            assert _names(group["components"][0]["components"]) == ["key", "value"]


def test_errors_and_router_are_there() -> None:
    errors = {e["name"] for e in _abi("CustomErrors") if e["type"] == "error"}
    assert {"InsufficientExecutionFee", "OrderNotFulfillableAtAcceptablePrice", "LiquidatablePosition",
            "EmptyPosition"} <= errors
    assert _entry(_abi("DataStore"), "getUint")["inputs"][0]["type"] == "bytes32"
    assert _entry(_abi("Router"), "pluginTransfer")
