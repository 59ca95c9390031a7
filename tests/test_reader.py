"""The reader carries raw JSON-RPC requests (a venue's ``eth_getLogs``) in the batch of its view
calls, on the plain JSON-RPC batch and on the Multicall3 path alike: no HTTP request of their own,
and an error answer to one of them is handed back, failing none of the calls. No chain: a provider
that answers batches from a table."""

from __future__ import annotations

from typing import Any

import pytest
from web3 import Web3
from web3.providers.base import BaseProvider

from hedger.chain.abi import ERC20
from hedger.chain.reader import ChainReader, CallSpec

TOKEN = "0x" + "11" * 20
MULTICALL = "0x" + "22" * 20
LOGS = ("eth_getLogs", [{"fromBlock": "0x5", "toBlock": "0x9", "topics": ["0x" + "ab" * 32]}])
A_LOG = {"address": TOKEN, "blockNumber": "0x7", "topics": ["0x" + "ab" * 32], "data": "0x"}


class Batches(BaseProvider):
    """Answers each batch (and records it): an eth_call with 18 encoded as a uint (or, to the
    Multicall3 address, an aggregate3 answer of that for each call), eth_getLogs with ``logs``."""

    def __init__(self, logs: dict[str, Any]) -> None:
        super().__init__()
        self.logs = logs
        self.batches: list[list[tuple[str, list[Any]]]] = []

    def make_batch_request(self, requests: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        self.batches.append(list(requests))
        codec = Web3().codec
        out = []
        for i, (method, params) in enumerate(requests):
            if method == "eth_getLogs":
                out.append({"jsonrpc": "2.0", "id": i, **self.logs})
                continue
            assert method == "eth_call"
            if params[0]["to"] == Web3.to_checksum_address(MULTICALL):
                (calls,) = codec.decode(["(address,bool,bytes)[]"], bytes.fromhex(params[0]["data"][10:]))
                data = codec.encode(["(bool,bytes)[]"], [[(True, codec.encode(["uint8"], [18]))] * len(calls)])
            else:
                data = codec.encode(["uint8"], [18])
            out.append({"jsonrpc": "2.0", "id": i, "result": "0x" + data.hex()})
        return out


@pytest.mark.parametrize("multicall", [None, MULTICALL], ids=["json-rpc batch", "multicall3"])
def test_a_raw_request_rides_in_the_batch_of_the_calls(multicall: str | None) -> None:
    provider = Batches({"result": [A_LOG]})
    reader = ChainReader(Web3(provider), multicall=multicall)
    specs = [CallSpec("d", TOKEN, ERC20, "decimals"), CallSpec("e", TOKEN, ERC20, "decimals")]
    values, extra = reader.call_many_with(specs, 9, [LOGS])
    assert values == {"d": 18, "e": 18}
    assert [r["result"] for r in extra] == [[A_LOG]]
    (batch,) = provider.batches                                    # one HTTP request in all
    assert [m for m, _ in batch] == ["eth_call"] * (1 if multicall else 2) + ["eth_getLogs"]
    assert batch[-1] == LOGS and reader.round_trips == 1


@pytest.mark.parametrize("multicall", [None, MULTICALL], ids=["json-rpc batch", "multicall3"])
def test_an_error_answer_to_a_raw_request_is_handed_back_and_fails_no_call(multicall: str | None) -> None:
    refused = {"error": {"code": -32005, "message": "query returned more than 10000 results"}}
    reader = ChainReader(Web3(Batches(refused)), multicall=multicall)
    values, (answer,) = reader.call_many_with([CallSpec("d", TOKEN, ERC20, "decimals")], 9, [LOGS])
    assert values == {"d": 18} and answer["error"] == refused["error"]


def test_call_many_is_unchanged_without_raw_requests() -> None:
    provider = Batches({"result": []})
    reader = ChainReader(Web3(provider))
    assert reader.call_many([CallSpec("d", TOKEN, ERC20, "decimals")], 9) == {"d": 18}
    assert [[m for m, _ in b] for b in provider.batches] == [["eth_call"]]
    assert reader.call_many_with([], 9, [LOGS])[1] == [{"jsonrpc": "2.0", "id": 0, "result": []}]


class MulticallAnswers(Batches):
    """The Multicall3 address answers aggregate3 with ``answer`` (an EOA: "0x"; another contract: a revert)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        super().__init__({"result": []})
        self.answer = answer

    def make_batch_request(self, requests: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        self.batches.append(list(requests))
        return [{"jsonrpc": "2.0", "id": i, **self.answer} for i, _ in enumerate(requests)]


@pytest.mark.parametrize("answer, exit_code", [
    ({"result": "0x"}, 5),                                               # an EOA, or no contract at all
    ({"error": {"code": 3, "message": "execution reverted"}}, 8),        # a contract that is no Multicall3
], ids=["no code", "reverts"])
def test_a_wrong_multicall_is_named_with_its_fix(answer: dict[str, Any], exit_code: int) -> None:
    """HEDGER_MULTICALL at an address that is no Multicall3 was `unexpected InsufficientDataBytes`
    (exit 1), or an error naming no setting; both now name HEDGER_MULTICALL and the fix."""
    from hedger.core.errors import HedgerError
    reader = ChainReader(Web3(MulticallAnswers(answer)), multicall=MULTICALL)
    with pytest.raises(HedgerError) as err:
        reader.call_many([CallSpec("d", TOKEN, ERC20, "decimals")], 9)
    assert err.value.exit_code == exit_code
    assert "HEDGER_MULTICALL" in str(err.value) and "Fix:" in str(err.value)
