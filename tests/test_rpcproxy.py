"""The test RPC proxies themselves (tests/rpcproxy.py): counting, each injected fault as a
web3 client sees it, dropped transactions, and geth's replacement rule in front of anvil.

A dedicated anvil serves this module (the replacement tests switch automine off), and
only dev accounts 7-9 send transactions.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from typing import Any, Iterator

import pytest
import requests
from eth_utils import keccak
from web3 import Web3

from hedger.sim.localchain import Anvil, dev_account, start_anvil
from tests.rpcproxy import FaultProxy, RpcProxy, decode_raw_tx

GWEI = 10**9
CHAIN_ID = 31337
SINK = dev_account(6).address       # receives the test transfers


@pytest.fixture(scope="module")
def node() -> Iterator[Anvil]:
    n = start_anvil(chain_id=CHAIN_ID)
    yield n
    n.stop()


@pytest.fixture()
def upstream(node: Anvil) -> Web3:
    return Web3(Web3.HTTPProvider(node.url, exception_retry_configuration=None))


@pytest.fixture()
def proxy(node: Anvil) -> Iterator[FaultProxy]:
    with FaultProxy(node.url) as p:
        yield p


def client(url: str, timeout: float = 5.0, retry: bool = False) -> Web3:
    """A web3 client; by default without web3's own retries (which would hide the faults)."""
    kw: dict[str, Any] = {} if retry else {"exception_retry_configuration": None}
    return Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}, **kw))


def rpc(w3: Web3, method: str, *params: Any) -> Any:
    return w3.provider.make_request(method, list(params))


def raw_post(url: str, payload: Any, timeout: float = 5.0) -> requests.Response:
    return requests.post(url, json=payload, timeout=timeout)


def signed(index: int, nonce: int, max_fee: int, tip: int, value: int = 1) -> Any:
    return dev_account(index).sign_transaction({
        "type": 2, "chainId": CHAIN_ID, "nonce": nonce, "to": SINK, "value": value, "gas": 21_000,
        "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip})


def raw_hex(tx: Any) -> str:
    return "0x" + bytes(tx.raw_transaction).hex()


def tx_hash(tx: Any) -> str:
    return "0x" + bytes(tx.hash).hex()


def known_upstream(upstream: Web3, h: str) -> bool:
    return rpc(upstream, "eth_getTransactionByHash", h)["result"] is not None


# --------------------------------------------------------------------------- forwarding and counting

def test_plain_proxy_forwards_and_records_paths(node):
    with RpcProxy(node.url) as p:
        w3 = client(p.url("/v2/KEY"))
        assert w3.eth.chain_id == CHAIN_ID
        assert w3.eth.block_number >= 0
    assert p.requests == 2 and p.paths == ["/v2/KEY", "/v2/KEY"]


def test_counts_per_method_for_single_and_batch_requests(proxy):
    w3 = client(proxy.url())
    assert rpc(w3, "eth_chainId")["result"] == hex(CHAIN_ID)
    rpc(w3, "eth_blockNumber")
    answers = w3.provider.make_batch_request(
        [("eth_chainId", []), ("eth_blockNumber", []), ("eth_chainId", []), ("eth_gasPrice", [])])
    assert [a["result"] for a in answers][0] == hex(CHAIN_ID) and len(answers) == 4
    assert proxy.calls == Counter(eth_chainId=3, eth_blockNumber=2, eth_gasPrice=1)
    assert proxy.http_requests == proxy.requests == 3
    assert proxy.forwarded == proxy.calls
    proxy.reset_counts()
    assert not proxy.calls and proxy.http_requests == 0


def test_fault_applies_only_to_the_named_methods_and_only_count_times(proxy):
    w3 = client(proxy.url())
    fault = proxy.http_error(503, count=2, methods="eth_blockNumber")
    assert rpc(w3, "eth_chainId")["result"] == hex(CHAIN_ID)          # not a named method: untouched
    for _ in range(2):
        with pytest.raises(requests.HTTPError):
            rpc(w3, "eth_blockNumber")
    assert "result" in rpc(w3, "eth_blockNumber")                       # used up
    assert (fault.remaining, fault.applied) == (0, 2)
    # a batch carrying a named method takes the fault as a whole
    proxy.http_error(methods=["eth_gasPrice"])
    with pytest.raises(requests.HTTPError):
        w3.provider.make_batch_request([("eth_chainId", []), ("eth_gasPrice", [])])
    assert proxy.calls == Counter(eth_chainId=2, eth_blockNumber=3, eth_gasPrice=1)
    assert proxy.forwarded == Counter(eth_chainId=1, eth_blockNumber=1)
    assert [k for k, _ in proxy.applied] == ["http_error"] * 3


def test_unknown_fault_kind_is_refused(proxy):
    with pytest.raises(ValueError, match="unknown fault"):
        proxy.inject("slow")


# --------------------------------------------------------------------------- faults as a client sees them

def test_timeout_is_a_client_read_timeout(proxy):
    w3 = client(proxy.url(), timeout=0.3)
    proxy.timeout(seconds=10)
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        rpc(w3, "eth_blockNumber")
    assert time.monotonic() - t0 < 5                      # gave up long before the proxy's 10 s
    assert "result" in rpc(w3, "eth_blockNumber")        # the next request is answered
    assert proxy.forwarded == Counter(eth_blockNumber=1)  # the held one never reached the node


def test_timeout_then_closed_connection_when_the_client_waits_longer(proxy):
    w3 = client(proxy.url(), timeout=5)
    proxy.timeout(seconds=0.2)
    with pytest.raises(requests.exceptions.ConnectionError, match="without response"):
        rpc(w3, "eth_blockNumber")


def test_held_request_does_not_block_shutdown(node):
    errors: list[BaseException] = []
    with FaultProxy(node.url) as p:
        p.timeout(seconds=60)
        w3 = client(p.url(), timeout=30)

        def call() -> None:
            try:
                rpc(w3, "eth_blockNumber")
            except BaseException as err:  # noqa: BLE001
                errors.append(err)

        t = threading.Thread(target=call, daemon=True)
        t.start()
        deadline = time.monotonic() + 2
        while p.http_requests == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 10                     # not the held request's 60 s (margin for CI)
    t.join(2)
    assert not t.is_alive()
    assert errors and isinstance(errors[0], requests.exceptions.ConnectionError)


def test_http_error_is_an_http_error_with_an_html_body(proxy):
    w3 = client(proxy.url())
    proxy.http_error(502)
    with pytest.raises(requests.HTTPError) as exc:
        rpc(w3, "eth_blockNumber")
    assert exc.value.response.status_code == 502
    assert exc.value.response.headers["Content-Type"] == "text/html"
    assert "502 Bad Gateway" in exc.value.response.text


def test_web3_default_retries_absorb_a_transient_http_error(proxy):
    # web3's HTTPProvider retries read-only methods (5 tries) unless told not to
    w3 = client(proxy.url(), retry=True)
    proxy.http_error(502, count=2)
    assert w3.eth.block_number >= 0
    assert proxy.calls["eth_blockNumber"] == 3


def test_malformed_is_a_json_decode_error(proxy):
    w3 = client(proxy.url())
    proxy.malformed()
    with pytest.raises(json.JSONDecodeError):
        rpc(w3, "eth_blockNumber")
    proxy.malformed(body=b"<html>maintenance</html>")
    r = raw_post(proxy.url(), {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert r.content == b"<html>maintenance</html>"


def test_wrong_id(proxy):
    w3 = client(proxy.url())
    proxy.wrong_id()
    r = raw_post(proxy.url(), {"jsonrpc": "2.0", "id": 7, "method": "eth_chainId", "params": []}).json()
    assert r["id"] != 7 and r["result"] == hex(CHAIN_ID)
    # in a batch the ids are rotated: web3 sorts answers by id, so each request gets another's result
    proxy.wrong_id()
    chain_id, gas_price = w3.provider.make_batch_request([("eth_chainId", []), ("eth_gasPrice", [])])
    assert gas_price["result"] == hex(CHAIN_ID)
    assert chain_id["result"] != hex(CHAIN_ID)


def test_truncated_batch_answers_fewer_entries(proxy):
    w3 = client(proxy.url())
    proxy.truncated_batch()
    assert "result" in rpc(w3, "eth_chainId")          # single requests do not take the fault
    answers = w3.provider.make_batch_request([("eth_chainId", []), ("eth_blockNumber", []), ("eth_gasPrice", [])])
    assert len(answers) == 2
    assert len(w3.provider.make_batch_request([("eth_chainId", []), ("eth_blockNumber", [])])) == 2
    assert proxy.calls == Counter(eth_chainId=3, eth_blockNumber=2, eth_gasPrice=1)


def test_latency_delays_then_answers(proxy):
    w3 = client(proxy.url())
    proxy.latency(0.3, methods="eth_blockNumber")
    t0 = time.monotonic()
    assert "result" in rpc(w3, "eth_blockNumber")        # answered, after the delay
    assert time.monotonic() - t0 >= 0.3                   # a lower bound: the proxy really waited
    assert proxy.applied == [("latency", ("eth_blockNumber",))]
    assert proxy.forwarded == Counter(eth_blockNumber=1)


def test_latency_holds_only_the_named_method(proxy):
    """While a request of the named method is held, another method is answered at once.
    Checked by order of events, not by a time limit: the held request (60 s) is still
    unanswered when the other one's answer arrives."""
    proxy.latency(60, count=2, methods="eth_blockNumber")   # a second use would hold eth_chainId too
    held: list[Any] = []

    def call() -> None:
        try:
            held.append(rpc(client(proxy.url(), timeout=120), "eth_blockNumber"))
        except Exception as err:  # noqa: BLE001  (woken by the proxy's shutdown)
            held.append(err)

    t = threading.Thread(target=call, daemon=True)
    t.start()
    deadline = time.monotonic() + 30
    while proxy.calls["eth_blockNumber"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proxy.calls["eth_blockNumber"] == 1
    assert rpc(client(proxy.url(), timeout=30), "eth_chainId")["result"] == hex(CHAIN_ID)
    assert held == [] and t.is_alive()                    # the named method is still being held
    assert proxy.applied == [("latency", ("eth_blockNumber",))]
    assert proxy.forwarded == Counter(eth_chainId=1)     # the held request has not reached the node


# --------------------------------------------------------------------------- transactions

def test_drop_tx_returns_the_hash_but_the_node_never_sees_it(proxy, upstream):
    w3 = client(proxy.url())
    sender = dev_account(7).address
    nonce = w3.eth.get_transaction_count(sender)
    tx = signed(7, nonce, 50 * GWEI, 2 * GWEI)
    proxy.drop_tx()
    h = w3.eth.send_raw_transaction(tx.raw_transaction)
    assert h == tx.hash == keccak(bytes(tx.raw_transaction))
    assert proxy.dropped == [tx_hash(tx)]
    assert proxy.calls["eth_sendRawTransaction"] == 1 and proxy.forwarded["eth_sendRawTransaction"] == 0
    assert not known_upstream(upstream, tx_hash(tx))
    assert upstream.eth.get_transaction_count(sender) == nonce
    # in a batch, only the transaction is dropped; the rest is answered by the node
    proxy.drop_tx()
    r = raw_post(proxy.url(), [{"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                               {"jsonrpc": "2.0", "id": 2, "method": "eth_sendRawTransaction",
                                "params": [raw_hex(tx)]}]).json()
    assert r == [{"jsonrpc": "2.0", "id": 1, "result": hex(CHAIN_ID)},
                 {"jsonrpc": "2.0", "id": 2, "result": tx_hash(tx)}]
    assert not known_upstream(upstream, tx_hash(tx))
    # the fault used up, the same bytes reach the node and are mined (automine)
    w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(tx.raw_transaction), timeout=5)
    assert upstream.eth.get_transaction_count(sender) == nonce + 1


def test_two_backends_hide_blackhole_and_the_other_backend_hook(proxy, upstream):
    """The proxy as the backend that does not see a transaction another backend mines."""
    w3 = client(proxy.url())
    sender = dev_account(7).address
    nonce = upstream.eth.get_transaction_count(sender)
    tx = signed(7, nonce, 50 * GWEI, 2 * GWEI)
    proxy.blackhole(tx_hash(tx))
    seen: list[str] = []
    proxy.on_raw_tx = seen.append
    assert w3.eth.send_raw_transaction(tx.raw_transaction) == tx.hash   # answered with its hash...
    assert seen == [raw_hex(tx)] and not known_upstream(upstream, tx_hash(tx))   # ...never forwarded
    # the other backend mines it; this one does not show it for two lookups, then does
    rpc(upstream, "eth_sendRawTransaction", raw_hex(tx))
    proxy.hide(tx_hash(tx), lookups=2)
    assert rpc(w3, "eth_getTransactionReceipt", tx_hash(tx))["result"] is None
    assert rpc(w3, "eth_getTransactionByHash", tx_hash(tx))["result"] is None
    assert rpc(w3, "eth_getTransactionReceipt", tx_hash(tx))["result"]["status"] == "0x1"
    proxy.hide(tx_hash(tx))                                 # until unhidden
    for _ in range(3):
        assert rpc(w3, "eth_getTransactionByHash", tx_hash(tx))["result"] is None
    proxy.unhide(tx_hash(tx))
    assert rpc(w3, "eth_getTransactionByHash", tx_hash(tx))["result"]["hash"] == tx_hash(tx)
    assert proxy.forwarded["eth_sendRawTransaction"] == 0


def test_forwarded_timeout_broadcasts_the_tx_but_loses_the_answer(proxy, upstream):
    w3 = client(proxy.url(), timeout=0.3)
    tx = signed(7, upstream.eth.get_transaction_count(dev_account(7).address), 50 * GWEI, 2 * GWEI)
    proxy.timeout(seconds=5, methods="eth_sendRawTransaction", forward=True)
    with pytest.raises(requests.exceptions.ReadTimeout):
        w3.eth.send_raw_transaction(tx.raw_transaction)
    assert known_upstream(upstream, tx_hash(tx))


def test_decode_raw_tx():
    tx = signed(8, 3, 40 * GWEI, 3 * GWEI)
    d = decode_raw_tx(raw_hex(tx))
    assert d == {"sender": dev_account(8).address, "nonce": 3, "maxFeePerGas": 40 * GWEI,
                 "maxPriorityFeePerGas": 3 * GWEI, "hash": tx_hash(tx)}
    legacy = dev_account(8).sign_transaction({"chainId": CHAIN_ID, "nonce": 4, "to": SINK, "value": 0,
                                              "gas": 21_000, "gasPrice": 9 * GWEI})
    d = decode_raw_tx(raw_hex(legacy))
    assert (d["sender"], d["nonce"], d["maxFeePerGas"], d["maxPriorityFeePerGas"]) == \
        (dev_account(8).address, 4, 9 * GWEI, 9 * GWEI)


@pytest.fixture()
def no_automine(upstream: Web3) -> Iterator[Web3]:
    assert "error" not in rpc(upstream, "evm_setAutomine", False)
    try:
        yield upstream
    finally:
        rpc(upstream, "evm_setAutomine", True)


def test_geth_replacement_rule(node, no_automine):
    upstream = no_automine
    fee, tip = 100 * GWEI, 2 * GWEI

    # anvil alone accepts a 5% bump (it only asks for a higher fee)
    n9 = upstream.eth.get_transaction_count(dev_account(9).address)
    a9, b9 = signed(9, n9, fee, tip), signed(9, n9, fee * 105 // 100, tip * 105 // 100)
    assert "result" in rpc(upstream, "eth_sendRawTransaction", raw_hex(a9))
    assert rpc(upstream, "eth_sendRawTransaction", raw_hex(b9))["result"] == tx_hash(b9)

    with FaultProxy(node.url, enforce_geth_replacement=True) as p:
        w3 = client(p.url())
        n8 = upstream.eth.get_transaction_count(dev_account(8).address)
        first = signed(8, n8, fee, tip)
        assert w3.eth.send_raw_transaction(first.raw_transaction) == first.hash

        # +5% on both fees: refused by the proxy, never forwarded
        five = signed(8, n8, fee * 105 // 100, tip * 105 // 100)
        answer = rpc(w3, "eth_sendRawTransaction", raw_hex(five))
        assert answer["error"] == {"code": -32000, "message": "replacement transaction underpriced"}
        with pytest.raises(Exception, match="replacement transaction underpriced"):
            w3.eth.send_raw_transaction(five.raw_transaction)
        assert not known_upstream(upstream, tx_hash(five)) and known_upstream(upstream, tx_hash(first))

        # +12.5% on one fee only is still underpriced; geth asks for both
        one = signed(8, n8, fee * 1125 // 1000, tip)
        assert rpc(w3, "eth_sendRawTransaction", raw_hex(one))["error"]["message"] == \
            "replacement transaction underpriced"
        # the very same bytes again: geth's "already known"
        assert rpc(w3, "eth_sendRawTransaction", raw_hex(first))["error"]["message"] == "already known"
        # exactly +10% passes the integer rule new*100 >= old*110
        ten = signed(8, n8, fee * 110 // 100, tip * 110 // 100)
        assert rpc(w3, "eth_sendRawTransaction", raw_hex(ten))["result"] == tx_hash(ten)
        # +12.5% on both over the pending (+10%) one passes and replaces it at the node
        bumped = signed(8, n8, fee * 110 // 100 * 1125 // 1000, tip * 110 // 100 * 1125 // 1000)
        assert w3.eth.send_raw_transaction(bumped.raw_transaction) == bumped.hash
        assert p.forwarded["eth_sendRawTransaction"] == 3
        assert len(p.rejected) == 4
        assert p.pool[(dev_account(8).address, n8)]["hash"] == tx_hash(bumped)

        rpc(upstream, "evm_mine")
        assert upstream.eth.get_transaction_receipt(bumped.hash)["status"] == 1
        assert upstream.eth.get_transaction_receipt(b9.hash)["status"] == 1
        assert not known_upstream(upstream, tx_hash(first))

        # once the nonce is mined the proxy forgets it; the node answers for the stale nonce
        late = signed(8, n8, fee, tip, value=2)
        answer = rpc(w3, "eth_sendRawTransaction", raw_hex(late))
        assert "underpriced" not in json.dumps(answer) and "error" in answer
        assert (dev_account(8).address, n8) not in p.pool


def test_replacement_rule_lets_successive_nonces_through(node, upstream):
    with FaultProxy(node.url, enforce_geth_replacement=True) as p:
        w3 = client(p.url())
        n = upstream.eth.get_transaction_count(dev_account(9).address)
        a = signed(9, n, 30 * GWEI, 1 * GWEI)
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(a.raw_transaction), timeout=5)
        b = signed(9, n + 1, 30 * GWEI, 1 * GWEI)     # next nonce: no replacement involved
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(b.raw_transaction), timeout=5)
        assert not p.rejected
        assert upstream.eth.get_transaction_count(dev_account(9).address) == n + 2
