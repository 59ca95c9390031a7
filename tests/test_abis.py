"""The committed ABIs match what the hedger needs and what the contracts compile to."""

from __future__ import annotations

from hedger.chain.abi import contract_artifact, load_abi


def _sigs(abi: list[dict]) -> set[tuple[str, tuple[str, ...]]]:
    return {(e["name"], tuple(i["type"] for i in e["inputs"])) for e in abi if e["type"] == "function"}


def test_market_abi_matches_compiled_contract() -> None:
    assert load_abi("PerpMarket") == contract_artifact("PerpMarket")["abi"]


def test_interface_abis_are_subsets_of_reference_contracts() -> None:
    # the reference token and feed implement the standard interfaces the hedger reads through
    assert _sigs(load_abi("ERC20")) <= _sigs(contract_artifact("ReferenceToken")["abi"])
    assert _sigs(load_abi("AggregatorV3Interface")) <= _sigs(contract_artifact("PriceFeed")["abi"])
    assert {"latestRoundData", "getRoundData", "decimals", "description", "version"} == \
        {n for n, _ in _sigs(load_abi("AggregatorV3Interface"))}
