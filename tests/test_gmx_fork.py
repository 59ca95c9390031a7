"""GMX v2 fork mode (hedger.sim.gmx_fork), every piece that needs no RPC URL: the Arbitrum
precompile stand-in at 0x64/0x6C, finding and impersonating GMX role holders, pointing tokens at
the ChainlinkPriceFeedProvider and making their Chainlink feeds settable (on a local anvil with
Arbitrum's chain id and the GMX stand-in), executeOrder's encoding against GMX's signature, and
the CLI's flag checks."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from eth_abi import decode
from web3 import Web3

from hedger.chain.abi import contract_artifact, load_abi
from hedger.chain.executor import KeySigner, TxSender
from hedger.core.errors import ConfigError
from hedger.core.secrets import Secret
from hedger.protocols.gmx_v2 import interface as gi
from hedger.sim import gmx_fork as gf
from hedger.sim.deploy import deploy_contract, transact
from hedger.sim.gmx_standin import GmxStandin, deploy_gmx_standin
from hedger.sim.localchain import Anvil, dev_account, start_anvil
from tests.conftest import web3_at

ADMIN, KEEPER, OTHER = 0, 2, 7
# an address with no key anywhere: only impersonation can send from it
OUTSIDE_KEEPER = "0x00000000000000000000000000000000DeaDBeef"
PROVIDER = "0x38B8dB61b724b51e42A88Cb8eC564CD685a0f53B"   # any address: the stand-in only stores it


def sender(w3: Web3, index: int) -> TxSender:
    return TxSender(w3, KeySigner(Secret(dev_account(index).key.hex())))


@pytest.fixture(scope="module")
def arb() -> Iterator[Anvil]:
    """A local anvil with Arbitrum's chain id: what a fork of Arbitrum looks like to GMX's Chain.sol."""
    node = start_anvil(chain_id=42161)
    yield node
    node.stop()


@pytest.fixture(scope="module")
def w3(arb: Anvil) -> Web3:
    return web3_at(arb)


@pytest.fixture(scope="module")
def standin(w3: Web3) -> GmxStandin:
    return deploy_gmx_standin(sender(w3, ADMIN), keepers=(dev_account(KEEPER).address,))


@pytest.fixture()
def s(w3: Web3, standin: GmxStandin) -> Iterator[GmxStandin]:
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    try:
        yield standin
    finally:
        w3.provider.make_request("evm_revert", [snap])


def roles(w3: Web3, s: GmxStandin) -> Any:
    return w3.eth.contract(address=s.role_store, abi=gf.ROLE_STORE_ABI)


def grant(w3: Web3, s: GmxStandin, account: str, role: bytes) -> None:
    transact(sender(w3, ADMIN), "GmxRoleStore", s.role_store, "grantRole", account, role)


def revoke(w3: Web3, s: GmxStandin, account: str, role: bytes) -> None:
    transact(sender(w3, ADMIN), "GmxRoleStore", s.role_store, "revokeRole", account, role)


def call(w3: Web3, to: str, signature: str, *args: Any, types: list[str] | None = None,
         block: int | str = "latest") -> bytes:
    from eth_abi import encode
    from eth_utils import function_signature_to_4byte_selector
    data = function_signature_to_4byte_selector(signature) + (encode(types or [], list(args)) if args else b"")
    return bytes(w3.eth.call({"to": to, "data": "0x" + data.hex()}, block))


# ---------------------------------------------------------------------- ArbSys / ArbGasInfo at 0x64 / 0x6C

def test_arbsys_standin_answers_block_number_hash_and_no_l1_fee(w3: Web3, s: GmxStandin) -> None:
    # before: nothing there (what the pinned anvil gives GMX on a fork of Arbitrum)
    assert len(w3.eth.get_code(gf.ARBSYS)) == 0
    assert call(w3, gf.ARBSYS, "arbBlockNumber()") == b""
    runtime = gf.install_arbitrum_precompiles(w3)
    for address in (gf.ARBSYS, gf.ARBGASINFO):
        assert Web3.to_hex(w3.eth.get_code(address)) == runtime
    w3.provider.make_request("evm_mine", [])
    w3.provider.make_request("evm_mine", [])
    n = w3.eth.block_number
    (number,) = decode(["uint256"], call(w3, gf.ARBSYS, "arbBlockNumber()", block=n))
    assert number == n
    (h,) = decode(["bytes32"], call(w3, gf.ARBSYS, "arbBlockHash(uint256)", n - 1, types=["uint256"], block=n))
    assert h == bytes(w3.eth.get_block(n - 1)["hash"])
    (fee,) = decode(["uint256"], call(w3, gf.ARBGASINFO, "getCurrentTxL1GasFees()", block=n))
    assert fee == 0
    # the current block's hash is not known yet: ArbSys reverts, so does the stand-in
    with pytest.raises(Exception):
        call(w3, gf.ARBSYS, "arbBlockHash(uint256)", n, types=["uint256"], block=n)


def test_arbsys_standin_has_the_functions_gmx_chain_sol_calls() -> None:
    # gmx-synthetics contracts/chain/ArbSys.sol and ArbGasInfo.sol (the interfaces Chain.sol uses)
    abi = contract_artifact("ArbSysStandin")["abi"]
    got = {e["name"]: ([i["type"] for i in e["inputs"]], [o["type"] for o in e["outputs"]], e["stateMutability"])
           for e in abi if e["type"] == "function"}
    assert got == {"arbBlockNumber": ([], ["uint256"], "view"),
                   "arbBlockHash": (["uint256"], ["bytes32"], "view"),
                   "getCurrentTxL1GasFees": ([], ["uint256"], "view")}


# ---------------------------------------------------------------------- role holders

def test_role_members_are_listed_as_gmx_lists_them(w3: Web3, s: GmxStandin) -> None:
    controllers = [s.deployer, s.exchange_router, s.order_handler, s.position_engine, s.accrual]
    assert gf.role_members(w3, s.role_store, gi.CONTROLLER) == [Web3.to_checksum_address(a) for a in controllers]
    assert gf.role_members(w3, s.role_store, gi.ORDER_KEEPER) == [dev_account(KEEPER).address]
    rs = roles(w3, s)
    assert rs.functions.getRoleMembers(gi.CONTROLLER, 1, 3).call() == [s.exchange_router, s.order_handler]
    assert rs.functions.getRoleMembers(gi.CONTROLLER, 3, 100).call() == [s.position_engine, s.accrual]  # end capped
    assert rs.functions.getRoleMembers(gi.CONTROLLER, 9, 12).call() == []
    assert rs.functions.getRoleMembers(gi.CONTROLLER, 3, 1).call() == []
    # removal moves the last member into the gap (OpenZeppelin EnumerableSet), granting twice lists once
    revoke(w3, s, s.exchange_router, gi.CONTROLLER)
    grant(w3, s, s.order_handler, gi.CONTROLLER)
    assert gf.role_members(w3, s.role_store, gi.CONTROLLER) == [s.deployer, s.accrual, s.order_handler,
                                                                 s.position_engine]
    assert not rs.functions.hasRole(s.exchange_router, gi.CONTROLLER).call()
    assert rs.functions.getRoleMemberCount(gi.hash_string("NOBODY")).call() == 0
    with pytest.raises(RuntimeError, match="nobody holds GMX's NOBODY"):
        gf.pick_holder(w3, s.role_store, gi.hash_string("NOBODY"), "NOBODY")


def test_prepare_fork_finds_gmx_contracts_and_impersonates_role_holders(w3: Web3, s: GmxStandin) -> None:
    # a keeper whose key nobody has, and only contracts holding CONTROLLER: impersonation or nothing
    revoke(w3, s, dev_account(KEEPER).address, gi.ORDER_KEEPER)
    grant(w3, s, OUTSIDE_KEEPER, gi.ORDER_KEEPER)
    revoke(w3, s, s.deployer, gi.CONTROLLER)
    fork = gf.prepare_fork(w3, "arbitrum", exchange_router=s.exchange_router, price_feed_provider=PROVIDER)
    assert (fork.data_store, fork.role_store, fork.order_handler) == (s.data_store, s.role_store, s.order_handler)
    assert fork.oracle == "0x" + "0" * 40            # the stand-in's OrderHandler has no Oracle
    assert fork.order_keeper == Web3.to_checksum_address(OUTSIDE_KEEPER)
    assert fork.controller == s.accrual               # the deployer's gap took the last member, a contract
    assert fork.arbitrum_precompiles and len(w3.eth.get_code(gf.ARBSYS)) > 0
    assert w3.eth.get_balance(fork.order_keeper) >= gf.GAS_MONEY
    # the impersonated CONTROLLER (a contract) writes GMX's DataStore: the provider for both tokens
    gf.use_price_feed_provider(w3, fork, [s.wnt, s.usdc])
    ds = w3.eth.contract(address=s.data_store, abi=load_abi("gmx-v2/DataStore"))
    assert ds.functions.getBool(gf.is_oracle_provider_enabled_key(PROVIDER)).call()
    for token in (s.wnt, s.usdc):
        for key in gf.oracle_provider_for_token_keys(fork.oracle, token):
            assert ds.functions.getAddress(key).call() == PROVIDER
    # the keeper's transaction goes from the impersonated keeper to the OrderHandler with GMX's call
    # data (the stand-in's keeper entry has another signature, so it reverts there)
    key = b"\x11" * 32
    with pytest.raises(RuntimeError, match="reverted"):
        gf.execute_order(w3, fork, key, [s.wnt, s.usdc, s.wnt])
    tx = w3.eth.get_block("latest", full_transactions=True)["transactions"][-1]
    assert (tx["from"], tx["to"]) == (fork.order_keeper, s.order_handler)
    assert bytes(tx["input"]) == gf.encode_execute_order(key, ([s.wnt, s.usdc], [PROVIDER] * 2, [b"", b""]))


def test_prepare_fork_refuses_a_fork_of_another_chain(w3: Web3, s: GmxStandin) -> None:
    with pytest.raises(ConfigError) as err:
        gf.prepare_fork(w3, "avalanche", exchange_router=s.exchange_router)
    assert err.value.variable == "--fork-url" and "43114" in str(err.value) and "42161" in str(err.value)
    with pytest.raises(RuntimeError, match="no contract at GMX's ExchangeRouter"):
        gf.prepare_fork(w3, "arbitrum")               # the address book's router is not on this chain


# ---------------------------------------------------------------------- Chainlink feeds GMX reads

def test_feeds_are_etched_or_configured_and_priced_as_gmx_reads_them(w3: Web3, s: GmxStandin) -> None:
    fork = gf.prepare_fork(w3, "arbitrum", exchange_router=s.exchange_router, price_feed_provider=PROVIDER)
    # WNT has "Chainlink's" feed (someone else's key), 8 decimals, and GMX's multiplier for it
    theirs = deploy_contract(sender(w3, OTHER), "PriceFeed", 8, "ETH / USD", 1)
    transact(sender(w3, OTHER), "PriceFeed", theirs, "setAnswer", 3_000 * 10**8)
    ds = w3.eth.contract(address=s.data_store, abi=load_abi("gmx-v2/DataStore"))
    for fn, key, value in (("setAddress", gf.price_feed_key(s.wnt), theirs),
                           ("setUint", gf.price_feed_multiplier_key(s.wnt), 10**34)):
        transact(sender(w3, ADMIN), "GmxDataStore", s.data_store, fn, key, value)
    feed_abi = load_abi("AggregatorV3Interface")
    with pytest.raises(Exception):                   # not ours to set before the etch
        transact(sender(w3, ADMIN), "PriceFeed", theirs, "setAnswer", 2_500 * 10**8)

    feeds = gf.settable_feeds(w3, fork, sender(w3, ADMIN), [s.wnt, s.usdc])
    assert feeds[s.wnt] == theirs                    # same address: whoever reads it sees our prices
    c = w3.eth.contract(address=theirs, abi=feed_abi)
    assert c.functions.decimals().call() == 8 and c.functions.latestRoundData().call()[1] == 3_000 * 10**8
    transact(sender(w3, ADMIN), "PriceFeed", theirs, "setAnswer", 2_500 * 10**8)
    _, answer, _, updated_at, _ = c.functions.latestRoundData().call()
    assert answer == 2_500 * 10**8 and updated_at == w3.eth.get_block("latest")["timestamp"]
    assert gf.gmx_price(w3, fork, s.wnt, answer) == 2_500 * 10**12          # USD per wei x 1e30

    # USDC had no feed: a new 8-decimal one under PRICE_FEED, multiplier 10^(60-8-6), long heartbeat
    usdc_feed = feeds[s.usdc]
    assert ds.functions.getAddress(gf.price_feed_key(s.usdc)).call() == usdc_feed
    assert ds.functions.getUint(gf.price_feed_multiplier_key(s.usdc)).call() == 10**46
    assert ds.functions.getUint(gf.price_feed_heartbeat_duration_key(s.usdc)).call() == gf.FEED_HEARTBEAT
    transact(sender(w3, ADMIN), "PriceFeed", usdc_feed, "setAnswer", 10**8)
    assert gf.gmx_price(w3, fork, s.usdc, 10**8) == 10**24                   # $1 per 1e-6 USDC x 1e30
    with pytest.raises(RuntimeError, match="no PRICE_FEED_MULTIPLIER"):
        gf.gmx_price(w3, fork, s.market, 10**8)


def test_setup_leaves_a_keeper_that_publishes_what_gmx_will_read(w3: Web3, s: GmxStandin) -> None:
    keeper = gf.setup(w3, "arbitrum", sender(w3, ADMIN), s.market, tokens=[s.wnt, s.usdc],
                      exchange_router=s.exchange_router, price_feed_provider=PROVIDER)
    assert keeper.tokens == [s.wnt, s.usdc] and set(keeper.feeds) == {s.wnt, s.usdc}
    keeper.publish(s.usdc.lower(), 99_990_000)
    feed = w3.eth.contract(address=keeper.feeds[s.usdc], abi=load_abi("AggregatorV3Interface"))
    answer = feed.functions.latestRoundData().call()[1]
    assert answer == 99_990_000 and gf.gmx_price(w3, keeper.fork, s.usdc, answer) == 9_999 * 10**20
    ds = w3.eth.contract(address=s.data_store, abi=load_abi("gmx-v2/DataStore"))
    assert ds.functions.getAddress(gf.oracle_provider_for_token_keys(keeper.fork.oracle, s.wnt)[0]).call() == PROVIDER


def test_setup_through_a_real_anvil_fork_leaves_the_forked_chain_untouched(arb: Anvil, w3: Web3,
                                                                           s: GmxStandin) -> None:
    """The same set-up on an anvil forking the chain that holds the stand-in (as fork mode forks
    Arbitrum): role holders, DataStore and feeds are the upstream's, read through the fork, and
    every write stays on the fork."""
    theirs = deploy_contract(sender(w3, OTHER), "PriceFeed", 8, "ETH / USD", 1)
    transact(sender(w3, OTHER), "PriceFeed", theirs, "setAnswer", 3_000 * 10**8)
    transact(sender(w3, ADMIN), "GmxDataStore", s.data_store, "setAddress", gf.price_feed_key(s.wnt), theirs)
    transact(sender(w3, ADMIN), "GmxDataStore", s.data_store, "setUint", gf.price_feed_multiplier_key(s.wnt), 10**34)
    fork_node = gf.start_fork(arb.url, "arbitrum")
    try:
        fw3 = web3_at(fork_node)
        keeper = gf.setup(fw3, "arbitrum", sender(fw3, ADMIN), s.market, tokens=[s.wnt],
                          exchange_router=s.exchange_router, price_feed_provider=PROVIDER)
        assert keeper.feeds[s.wnt] == theirs and keeper.fork.order_keeper == dev_account(KEEPER).address
        keeper.publish(s.wnt, 2_000 * 10**8)
        fc = fw3.eth.contract(address=theirs, abi=load_abi("AggregatorV3Interface"))
        assert gf.gmx_price(fw3, keeper.fork, s.wnt, fc.functions.latestRoundData().call()[1]) == 2_000 * 10**12
        assert len(fw3.eth.get_code(gf.ARBSYS)) > 0 and fw3.eth.chain_id == 42161
        # the order GMX holds for an account is what the simulator's keeper executes
        order = b"\x42" * 32
        data = w3.eth.contract(abi=load_abi("gmx-v2/DataStore")).encode_abi(
            "addBytes32", [gi.account_order_list_key(dev_account(1).address), order])
        gf.send_as(fw3, keeper.fork.controller, s.data_store, data)
        assert gf.pending_order_keys(fw3, keeper.fork, dev_account(1).address) == [order]
        assert gf.pending_order_keys(fw3, keeper.fork, dev_account(3).address) == []
    finally:
        fork_node.stop()
    # upstream: the feed still Chainlink's (its answer, its code), the DataStore unwritten, no ArbSys
    uc = w3.eth.contract(address=theirs, abi=load_abi("AggregatorV3Interface"))
    assert uc.functions.latestRoundData().call()[1] == 3_000 * 10**8
    ds = w3.eth.contract(address=s.data_store, abi=load_abi("gmx-v2/DataStore"))
    assert ds.functions.getAddress(gf.oracle_provider_for_token_keys("0x" + "0" * 40, s.wnt)[0]).call() == "0x" + "0" * 40
    assert len(w3.eth.get_code(gf.ARBSYS)) == 0


# ---------------------------------------------------------------------- executeOrder, no chain

def test_execute_order_is_encoded_with_gmx_signature() -> None:
    # 0x7ebc83f7 is the selector of GMX's keeper transactions to OrderHandler.executeOrder on Arbitrum
    assert gf.execute_order_signature() == "executeOrder(bytes32,(address[],address[],bytes[]))"
    key = bytes(range(32))
    weth, usdc = "0x82aF49447D8a07e3bd95BD0d56f35241523fBab1", "0xaf88d065e77c8cC2239327C5EDb3A432268e5831"
    data = gf.encode_execute_order(key, ([weth, usdc], [PROVIDER, PROVIDER], [b"", b"\x01"]))
    assert data[:4].hex() == "7ebc83f7"
    got_key, (tokens, providers, blobs) = decode(["bytes32", "(address[],address[],bytes[])"], data[4:])
    assert got_key == key
    assert [Web3.to_checksum_address(t) for t in tokens] == [weth, usdc]
    assert [Web3.to_checksum_address(p) for p in providers] == [PROVIDER, PROVIDER]
    assert list(blobs) == [b"", b"\x01"]
    with pytest.raises(ValueError, match="one entry per token"):
        gf.encode_execute_order(key, ([weth, usdc], [PROVIDER], [b"", b""]))


def test_oracle_params_name_the_provider_once_per_token() -> None:
    fork = gf.GmxFork(deployment="arbitrum", chain_id=42161, exchange_router="", reader="", data_store="",
                      role_store="", order_handler="", oracle="", price_feed_provider=PROVIDER, order_keeper="",
                      controller="", arbitrum_precompiles=True)
    weth = "0x82af49447d8a07e3bd95bd0d56f35241523fbab1"
    usdc = "0xaf88d065e77c8cc2239327c5edb3a432268e5831"
    tokens, providers, data = gf.oracle_params(fork, [weth, usdc, weth])
    assert tokens == [Web3.to_checksum_address(weth), Web3.to_checksum_address(usdc)]
    assert providers == [PROVIDER, PROVIDER] and data == [b"", b""]


def test_keys_follow_gmx_derivation() -> None:
    token = "0x82aF49447D8a07e3bd95BD0d56f35241523fBab1"
    oracle = "0x7F01614cA5198Ec979B1aAd1DAF0DE7e0a215BDF"
    k = Web3.keccak
    from eth_abi import encode
    assert gf.price_feed_key(token) == k(encode(["bytes32", "address"], [k(encode(["string"], ["PRICE_FEED"])), token]))
    new, old = gf.oracle_provider_for_token_keys(oracle, token)
    base = k(encode(["string"], ["ORACLE_PROVIDER_FOR_TOKEN"]))
    assert new == k(encode(["bytes32", "address", "address"], [base, oracle, token]))
    assert old == k(encode(["bytes32", "address"], [base, token]))


# ---------------------------------------------------------------------- the CLI's flags

def test_gmx_deployment_needs_a_fork_and_the_gmx_protocol() -> None:
    assert gf.validate_fork_args(fork_url=None, protocol=None, gmx_deployment=None) is None
    assert gf.validate_fork_args(fork_url="http://x:8545", protocol="gmx-v2", gmx_deployment=" Arbitrum ") == "arbitrum"
    with pytest.raises(ConfigError) as err:
        gf.validate_fork_args(fork_url=None, protocol="gmx-v2", gmx_deployment="arbitrum")
    assert err.value.variable == "--gmx-deployment" and "--fork-url" in err.value.fix
    with pytest.raises(ConfigError) as err:
        gf.validate_fork_args(fork_url="http://x:8545", protocol="reference", gmx_deployment="arbitrum")
    assert err.value.variable == "--gmx-deployment" and "--protocol gmx-v2" in err.value.fix
    with pytest.raises(ConfigError) as err:
        gf.validate_fork_args(fork_url="http://x:8545", protocol="gmx-v2", gmx_deployment="optimism")
    assert err.value.variable == "--gmx-deployment" and "arbitrum, avalanche" in err.value.fix


def test_a_fork_that_does_not_start_is_reported_without_the_url_secret() -> None:
    url = "http://127.0.0.1:9/v2/SECRETKEY123456"            # nothing listens on port 9
    with pytest.raises(RuntimeError) as err:
        gf.start_fork(url, "arbitrum", timeout=20)
    assert "SECRETKEY" not in str(err.value) and "http://127.0.0.1:9" in str(err.value)
    with pytest.raises(ConfigError):
        gf.start_fork(url, "optimism")


def test_fork_url_is_shown_redacted() -> None:
    url = "https://arb-mainnet.example.com/v2/SECRETKEY123456?token=abcdef"
    line = gf.describe_fork(url, "arbitrum")
    assert "SECRETKEY" not in line and "abcdef" not in line
    assert "https://arb-mainnet.example.com" in line and "arbitrum" in line and "unverified" in line


def test_simulate_in_fork_mode_runs_on_the_deployments_chain_with_gmx_read_by_the_hedger(
        arb: Anvil, s: GmxStandin, tmp_path: Any) -> None:
    """`hedger simulate --fork-url URL --protocol gmx-v2 --gmx-deployment arbitrum` as wired into
    the simulator: a SimChain forks the chain holding GMX (here the stand-in on Arbitrum's chain
    id, its addresses given instead of the SDK's), with Arbitrum's chain id and the ArbSys stand-in;
    the venue publishes the scenario's price on the feed GMX reads, and the hedger's keeper, with
    the venue's settings, reads GMX through it. (Orders cannot execute here: the stand-in's keeper
    entry is not GMX's executeOrder.)"""
    from hedger.sim.simulate import Job, Runner, SimChain, SimOptions, policies
    from hedger.core.types import PolicyParams
    from hedger.cycle.keeper import Keeper
    chain = SimChain(protocol="gmx-v2", order_mode="delayed", fork_url=arb.url, gmx_deployment="arbitrum",
                     gmx_market=s.market,
                     gmx_fork_options={"exchange_router": s.exchange_router, "price_feed_provider": PROVIDER,
                                       "reader": s.reader, "tokens": [s.wnt, s.usdc]}).start()
    try:
        assert chain.w3.eth.chain_id == 42161 and len(chain.w3.eth.get_code(gf.ARBSYS)) > 0
        v = chain.venue
        env = v.env(chain)
        assert (env["HEDGER_MARKET"], env["HEDGER_GMX_EXCHANGE_ROUTER"], env["HEDGER_GMX_READER"]) == \
            (s.market, s.exchange_router, s.reader)
        assert (v.spot, v.collateral) == (s.wnt, s.usdc) and v.expiry_s == 300
        v.publish(chain, 2_345 * 10**8)
        runner = Runner(chain, SimOptions(workdir=tmp_path))
        settings = runner.settings(Job("gbm", 1, policies(PolicyParams())["default"]), tmp_path / "j.sqlite")
        snap = Keeper.from_settings(settings, w3=chain.w3, signer=runner.signer).read()
        assert snap.oracle.price_e18 == 2_345 * 10**18 and snap.account.size == 0
    finally:
        chain.stop()
    assert chain._node is None and web3_at(arb).eth.get_code(gf.ARBSYS) == b""
