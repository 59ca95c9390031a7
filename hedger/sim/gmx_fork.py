"""GMX v2 on a fork of its real chain, the simulator acting as GMX's keeper there (unverified).

``hedger simulate --fork-url URL --protocol gmx-v2 --gmx-deployment arbitrum`` replays a scenario
through GMX's deployed contracts on an anvil fork. Nothing here has run against a real fork (no RPC
URL where it was written): every piece is tested on a local anvil with the GMX stand-in instead
(tests/test_gmx_fork.py), and the mode is labelled unverified.

How a fork lets the simulator be GMX's keeper (read in gmx-synthetics; file names below):

* An order executes when an ORDER_KEEPER calls ``OrderHandler.executeOrder(key, oracleParams)``
  (contracts/exchange/OrderHandler.sol, ``onlyOrderKeeper withOraclePrices``). The role holders are
  listed by ``RoleStore.getRoleMembers(roleKey, start, end)`` (contracts/role/RoleStore.sol, roles in
  contracts/role/Role.sol): anvil impersonates one (``anvil_impersonateAccount``, gas money from
  ``anvil_setBalance``), as GMX's own forked-env-example does (forked-env-example/scripts/helpers.ts).
* ``oracleParams`` is ``OracleUtils.SetPricesParams {tokens, providers, data}``
  (contracts/oracle/OracleUtils.sol). ``Oracle._validatePrices`` (contracts/oracle/Oracle.sol) takes
  each token's price from ``IOracleProvider(provider).getOraclePrice(token, data)`` after checking
  that the provider is enabled (``IS_ORACLE_PROVIDER_ENABLED``) and, outside atomic actions, that it
  is the token's configured provider (DataStore ``ORACLE_PROVIDER_FOR_TOKEN``).
* The configured providers on Arbitrum are Chainlink Data Streams (ChainlinkDataStreamProvider.sol:
  a report signed off-chain, checked by Chainlink's verifier) and GMX's signer set
  (GmOracleProvider.sol: signatures of GMX's oracle keepers). Neither can be forged on a fork, so
  "supplying prices as a real keeper does" is impossible as such.
* What a fork does allow, and what this module does: **point the tokens' oracle provider at GMX's
  deployed ChainlinkPriceFeedProvider** (ChainlinkPriceFeedProvider.sol, address in the SDK's book)
  by writing the DataStore as an impersonated CONTROLLER holder (DataStore setters are
  ``onlyController``; the key is written in both of GMX's forms, ``keccak(ORACLE_PROVIDER_FOR_TOKEN,
  token)`` and the newer ``keccak(ORACLE_PROVIDER_FOR_TOKEN, oracle, token)``, as GMX's own
  migration script does), and **make the Chainlink feeds it reads settable**: the provider reads
  ``latestRoundData`` of the feed under DataStore ``PRICE_FEED(token)`` and scales it by
  ``PRICE_FEED_MULTIPLIER(token)`` (ChainlinkPriceFeedUtils.sol), so each feed gets the project's
  settable ``PriceFeed`` etched over it (``hedger.sim.deploy.etch_feed``; decimals and answer
  kept). The simulator then publishes the scenario's price to those feeds and executes orders as
  the impersonated keeper with ``SetPricesParams`` naming that provider (data empty). GMX's own
  code computes everything else, and the hedger's ``HEDGER_ORACLE`` can be the same Chainlink feed,
  so the hedger's guards and GMX see one price. (GMX's forked-env-example etches a mock provider
  over the Data Streams provider instead; that replaces GMX code, this replaces only the feeds.)
* GMX's Chain library (contracts/chain/Chain.sol) asks Arbitrum's precompiles for the block number,
  block hashes (ArbSys at 0x64) and the transaction's L1 fee (ArbGasInfo at 0x6C) when the chain id
  is Arbitrum's. The pinned anvil has none, so :func:`install_arbitrum_precompiles` places
  ``contracts/ArbSysStandin.vy`` at both (block.number, blockhash(n), an L1 fee of 0).

The stand-in's RoleStore lists members as GMX's does, so role lookup, impersonation, DataStore
writes, feed etching and the precompiles are tested on it; ``executeOrder`` is encoded with GMX's
signature (the SDK ships no OrderHandler ABI), checked against the selector of GMX's keeper
transactions.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector
from web3 import Web3

from hedger.chain.abi import ABI_DIR, contract_artifact, load_abi
from hedger.chain.executor import TxSender
from hedger.core.errors import ConfigError
from hedger.core.secrets import redact_url, redact_urls
from hedger.protocols.gmx_v2 import interface as gi
from hedger.sim.deploy import deploy_contract, etch_feed
from hedger.sim.localchain import Anvil, start_anvil

ARBSYS = "0x0000000000000000000000000000000000000064"       # ArbSys precompile (Chain.sol: address(100))
ARBGASINFO = "0x000000000000000000000000000000000000006C"   # ArbGasInfo precompile (Chain.sol: address(108))
# Chain.sol uses the precompiles on these chain ids only (mainnet, and the testnets of its versions)
ARBITRUM_CHAIN_IDS = (42161, 421611, 421613, 421614)
# the market a fork simulates unless --gmx-market names another: ETH/USD [WETH-USDC] (the GM token,
# from the SDK's configs/markets.js, as in the README's runbook)
DEFAULT_MARKETS = {"arbitrum": "0x70d95587d40A2caf56bd97485aB3Eec10Bee6336"}
KEEPER_GAS = 15_000_000          # executeOrder hands most of its gas to _executeOrder (GasUtils.getExecutionGas)
GAS_MONEY = 10 * 10**18          # native balance an impersonated account is topped up to
FEED_DECIMALS = 8                # a feed deployed where a token has none (Chainlink USD feeds have 8)
FEED_HEARTBEAT = 30 * 24 * 3600  # PRICE_FEED_HEARTBEAT_DURATION written with such a feed
FLOAT_PRECISION = 10**30

# ---------------------------------------------------------------------- GMX's signatures the SDK lacks
# OrderHandler.executeOrder (contracts/exchange/OrderHandler.sol) with OracleUtils.SetPricesParams
# (contracts/oracle/OracleUtils.sol); RoleStore's member views (contracts/role/RoleStore.sol).
SET_PRICES_PARAMS: dict[str, Any] = {
    "name": "oracleParams", "type": "tuple", "internalType": "struct OracleUtils.SetPricesParams",
    "components": [{"name": "tokens", "type": "address[]", "internalType": "address[]"},
                   {"name": "providers", "type": "address[]", "internalType": "address[]"},
                   {"name": "data", "type": "bytes[]", "internalType": "bytes[]"}]}
ORDER_HANDLER_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "executeOrder", "stateMutability": "nonpayable", "outputs": [],
     "inputs": [{"name": "key", "type": "bytes32", "internalType": "bytes32"}, SET_PRICES_PARAMS]},
    {"type": "function", "name": "oracle", "stateMutability": "view", "inputs": [],
     "outputs": [{"name": "", "type": "address", "internalType": "contract Oracle"}]},
]
ROLE_STORE_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "hasRole", "stateMutability": "view",
     "inputs": [{"name": "account", "type": "address"}, {"name": "roleKey", "type": "bytes32"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"type": "function", "name": "getRoleMemberCount", "stateMutability": "view",
     "inputs": [{"name": "roleKey", "type": "bytes32"}], "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "getRoleMembers", "stateMutability": "view",
     "inputs": [{"name": "roleKey", "type": "bytes32"}, {"name": "start", "type": "uint256"},
                {"name": "end", "type": "uint256"}],
     "outputs": [{"name": "", "type": "address[]"}]},
]

# ---------------------------------------------------------------------- DataStore keys (contracts/data/Keys.sol)
PRICE_FEED = gi.hash_string("PRICE_FEED")
PRICE_FEED_MULTIPLIER = gi.hash_string("PRICE_FEED_MULTIPLIER")
PRICE_FEED_HEARTBEAT_DURATION = gi.hash_string("PRICE_FEED_HEARTBEAT_DURATION")
ORACLE_PROVIDER_FOR_TOKEN = gi.hash_string("ORACLE_PROVIDER_FOR_TOKEN")
IS_ORACLE_PROVIDER_ENABLED = gi.hash_string("IS_ORACLE_PROVIDER_ENABLED")


def _token_key(base: bytes, token: str) -> bytes:
    return gi.hash_data(["bytes32", "address"], [base, Web3.to_checksum_address(token)])


def price_feed_key(token: str) -> bytes:
    """Keys.priceFeedKey (also the SDK's configs/dataStore.js priceFeedKey)."""
    return _token_key(PRICE_FEED, token)


def price_feed_multiplier_key(token: str) -> bytes:
    return _token_key(PRICE_FEED_MULTIPLIER, token)


def price_feed_heartbeat_duration_key(token: str) -> bytes:
    return _token_key(PRICE_FEED_HEARTBEAT_DURATION, token)


def is_oracle_provider_enabled_key(provider: str) -> bytes:
    return _token_key(IS_ORACLE_PROVIDER_ENABLED, provider)


def oracle_provider_for_token_keys(oracle: str, token: str) -> tuple[bytes, bytes]:
    """Both forms of Keys.oracleProviderForTokenKey: (oracle, token), read by newer Oracle.sol
    versions, and (token), read by older ones. Both are written: which one the deployed Oracle
    reads depends on its version."""
    with_oracle = gi.hash_data(["bytes32", "address", "address"],
                               [ORACLE_PROVIDER_FOR_TOKEN, Web3.to_checksum_address(oracle),
                                Web3.to_checksum_address(token)])
    return with_oracle, _token_key(ORACLE_PROVIDER_FOR_TOKEN, token)


# ---------------------------------------------------------------------- the address book and the CLI


def address_book() -> dict[str, dict[str, Any]]:
    """Deployment name -> its row of abis/gmx-v2/addresses.json (from @gmx-io/sdk)."""
    book = json.loads((ABI_DIR / "gmx-v2" / "addresses.json").read_text())
    return {name: row for name, row in book.items() if name != "source"}


def known_deployments() -> tuple[str, ...]:
    return tuple(sorted(address_book()))


def validate_fork_args(*, fork_url: str | None, protocol: str | None, gmx_deployment: str | None) -> str | None:
    """Check ``simulate``'s fork flags for GMX; the deployment name (lower case) or None when not given.

    ``--gmx-deployment`` needs ``--fork-url`` (a fork of that chain) and ``--protocol gmx-v2``."""
    if gmx_deployment is None or not gmx_deployment.strip():
        return None
    name = gmx_deployment.strip().lower()
    known = known_deployments()
    if name not in known:
        raise ConfigError("--gmx-deployment", f"{gmx_deployment.strip()[:40]!r} is not a GMX v2 deployment",
                          f"use one of: {', '.join(known)}")
    if not fork_url:
        raise ConfigError("--gmx-deployment", "replays through GMX's deployed contracts, so it needs a fork "
                          "of their chain", f"add --fork-url URL (an RPC of {name}), or drop --gmx-deployment "
                          "to simulate on the GMX stand-in")
    if protocol != "gmx-v2":
        raise ConfigError("--gmx-deployment", f"is a GMX v2 setting, but the protocol is {protocol or 'the default'}",
                          "add --protocol gmx-v2, or drop --gmx-deployment")
    return name


def describe_fork(fork_url: str, deployment: str) -> str:
    """One line for the report: which GMX, forked from where (the URL redacted to scheme, host, port)."""
    return f"GMX v2 {deployment} on a fork of {redact_url(fork_url)} (unverified mode)"


# ---------------------------------------------------------------------- anvil


def _rpc(w3: Web3, method: str, *params: Any) -> Any:
    resp = w3.provider.make_request(method, list(params))    # type: ignore[arg-type]
    if "error" in resp:
        raise RuntimeError(f"{method}: {resp['error']}")
    return resp.get("result")


def install_arbitrum_precompiles(w3: Web3) -> str:
    """Place contracts/ArbSysStandin.vy's runtime code at ArbSys (0x64) and ArbGasInfo (0x6C)
    (anvil_setCode): what GMX's Chain.sol calls there on an Arbitrum chain id. Returns the code."""
    runtime = contract_artifact("ArbSysStandin")["runtime"]
    for address in (ARBSYS, ARBGASINFO):
        _rpc(w3, "anvil_setCode", address, runtime)
    return runtime


def impersonate(w3: Web3, account: str, gas_money: int = GAS_MONEY) -> str:
    """Let anvil send as ``account`` and make sure it can pay gas (balance topped up, never lowered)."""
    account = Web3.to_checksum_address(account)
    _rpc(w3, "anvil_impersonateAccount", account)
    if w3.eth.get_balance(account) < gas_money:
        _rpc(w3, "anvil_setBalance", account, hex(gas_money))
    return account


def send_as(w3: Web3, account: str, to: str, data: bytes | str, *, gas: int = 3_000_000,
            value: int = 0) -> dict[str, Any]:
    """A transaction from an impersonated ``account``; its receipt (raises if it reverted)."""
    payload = data if isinstance(data, str) else "0x" + data.hex()
    h = _rpc(w3, "eth_sendTransaction", {"from": Web3.to_checksum_address(account), "to": Web3.to_checksum_address(to),
                                          "data": payload, "gas": hex(gas), "value": hex(value)})
    receipt = dict(w3.eth.wait_for_transaction_receipt(h, timeout=120))
    if int(receipt["status"]) != 1:
        raise RuntimeError(f"transaction from {account} to {to} reverted (tx {h})")
    return receipt


def role_members(w3: Web3, role_store: str, role: bytes) -> list[str]:
    """Every holder of ``role`` (RoleStore.getRoleMemberCount, then getRoleMembers(role, 0, count))."""
    c = w3.eth.contract(address=Web3.to_checksum_address(role_store), abi=ROLE_STORE_ABI)
    count = c.functions.getRoleMemberCount(role).call()
    return [Web3.to_checksum_address(a) for a in c.functions.getRoleMembers(role, 0, count).call()] if count else []


def pick_holder(w3: Web3, role_store: str, role: bytes, role_name: str) -> str:
    """A holder of ``role`` to impersonate: an account without code if there is one (a keeper's or an
    operator's key), else the first member (a contract: anvil sends as it all the same)."""
    members = role_members(w3, role_store, role)
    if not members:
        raise RuntimeError(f"nobody holds GMX's {role_name} role in RoleStore {role_store} on this fork")
    return next((m for m in members if len(w3.eth.get_code(m)) == 0), members[0])


def start_fork(fork_url: str, deployment_name: str, *, timeout: float = 60.0, block: int | None = None) -> Anvil:
    """An anvil forking ``fork_url`` with the deployment's chain id (42161 for arbitrum), started
    directly: the simulator's ape-foundry fork network is Ethereum mainnet's (chain id 1). A failure
    is reported with the URL redacted to scheme, host and port."""
    row = address_book().get(deployment_name)
    if row is None:
        raise ConfigError("--gmx-deployment", f"{deployment_name!r} is not a GMX v2 deployment",
                          f"use one of: {', '.join(known_deployments())}")
    try:
        pin = [] if block is None else ["--fork-block-number", str(block)]     # every worker forks one state
        return start_anvil(chain_id=int(row["chainId"]), extra=["--fork-url", fork_url, *pin], timeout=timeout)
    except RuntimeError as err:
        raise RuntimeError(f"the fork of {redact_url(fork_url)} did not start: {redact_urls(str(err))}") from None


def pending_order_keys(w3: Web3, fork: "GmxFork", account: str) -> list[bytes]:
    """Keys of ``account``'s orders GMX holds (DataStore ACCOUNT_ORDER_LIST, as Reader.getAccountOrders
    reads it): what the simulator's keeper executes once the keeper delay has passed."""
    ds = _data_store(w3, fork)
    key = gi.account_order_list_key(account)
    count = ds.functions.getBytes32Count(key).call()
    return [bytes(k) for k in ds.functions.getBytes32ValuesAt(key, 0, count).call()] if count else []


# ---------------------------------------------------------------------- the fork


@dataclass(frozen=True)
class GmxFork:
    """GMX's contracts on a fork and the impersonated accounts acting on them (checksummed)."""

    deployment: str
    chain_id: int
    exchange_router: str
    reader: str
    data_store: str
    role_store: str
    order_handler: str
    oracle: str
    price_feed_provider: str
    order_keeper: str
    controller: str
    arbitrum_precompiles: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _view(w3: Web3, address: str, name: str, abi: list[dict[str, Any]] | None = None) -> str:
    entry = abi or [{"type": "function", "name": name, "stateMutability": "view", "inputs": [],
                     "outputs": [{"name": "", "type": "address"}]}]
    return Web3.to_checksum_address(w3.eth.contract(address=Web3.to_checksum_address(address),
                                                    abi=entry).get_function_by_name(name)().call())


def prepare_fork(w3: Web3, deployment_name: str, *, exchange_router: str | None = None,
                 price_feed_provider: str | None = None, reader: str | None = None) -> GmxFork:
    """Find GMX's contracts on a fork of ``deployment_name``'s chain, install the Arbitrum
    precompile stand-in when the chain id is Arbitrum's, and impersonate an ORDER_KEEPER and a
    CONTROLLER holder.

    Addresses come from the SDK's address book (abis/gmx-v2/addresses.json); the rest is read on
    chain as the adapter reads it: ExchangeRouter.dataStore()/roleStore()/orderHandler(), then
    OrderHandler.oracle(). ``exchange_router``/``price_feed_provider``/``reader`` override the book
    (tests point them at the stand-in)."""
    book = address_book()
    if deployment_name not in book:
        raise ConfigError("--gmx-deployment", f"{deployment_name!r} is not a GMX v2 deployment",
                          f"use one of: {', '.join(known_deployments())}")
    row = book[deployment_name]
    chain_id = int(w3.eth.chain_id)
    if chain_id != int(row["chainId"]):
        raise ConfigError("--fork-url", f"the fork is chain {chain_id}, GMX's {deployment_name} deployment is on "
                          f"chain {row['chainId']}", f"give an RPC URL of {deployment_name}")
    er = Web3.to_checksum_address(exchange_router or row["ExchangeRouter"])
    if len(w3.eth.get_code(er)) == 0:
        raise RuntimeError(f"no contract at GMX's ExchangeRouter {er} on this fork (fork block before the "
                           "deployment, or an SDK address book newer than the chain?)")
    arbitrum = chain_id in ARBITRUM_CHAIN_IDS
    if arbitrum:
        install_arbitrum_precompiles(w3)
    data_store = _view(w3, er, "dataStore")
    role_store = _view(w3, er, "roleStore")
    order_handler = _view(w3, er, "orderHandler")
    oracle = _view(w3, order_handler, "oracle", ORDER_HANDLER_ABI)
    keeper = impersonate(w3, pick_holder(w3, role_store, gi.ORDER_KEEPER, "ORDER_KEEPER"))
    controller = impersonate(w3, pick_holder(w3, role_store, gi.CONTROLLER, "CONTROLLER"))
    provider = price_feed_provider or row.get("ChainlinkPriceFeedProvider")
    if provider is None:
        raise RuntimeError(f"the SDK's address book has no ChainlinkPriceFeedProvider for {deployment_name}")
    return GmxFork(deployment=deployment_name, chain_id=chain_id, exchange_router=er,
                   reader=Web3.to_checksum_address(reader or row["Reader"]), data_store=data_store, role_store=role_store,
                   order_handler=order_handler, oracle=oracle, price_feed_provider=Web3.to_checksum_address(provider),
                   order_keeper=keeper, controller=controller, arbitrum_precompiles=arbitrum)


def _data_store(w3: Web3, fork: GmxFork) -> Any:
    return w3.eth.contract(address=fork.data_store, abi=load_abi("gmx-v2/DataStore"))


def _write(w3: Web3, fork: GmxFork, fn: str, key: bytes, value: Any) -> None:
    data = _data_store(w3, fork).get_function_by_name(fn)(key, value)._encode_transaction_data()
    send_as(w3, fork.controller, fork.data_store, data)


def use_price_feed_provider(w3: Web3, fork: GmxFork, tokens: Sequence[str]) -> None:
    """Make GMX's ChainlinkPriceFeedProvider the oracle provider of ``tokens`` (DataStore writes
    as the impersonated CONTROLLER holder): enabled, and named for each token in both key forms."""
    _write(w3, fork, "setBool", is_oracle_provider_enabled_key(fork.price_feed_provider), True)
    for token in tokens:
        for key in oracle_provider_for_token_keys(fork.oracle, token):
            _write(w3, fork, "setAddress", key, fork.price_feed_provider)


def settable_feeds(w3: Web3, fork: GmxFork, admin: TxSender, tokens: Sequence[str]) -> dict[str, str]:
    """Token -> the Chainlink feed GMX reads for it (DataStore PRICE_FEED), made settable by
    ``admin``: the existing feed etched over (its decimals and answer kept, so GMX's
    PRICE_FEED_MULTIPLIER still applies), or, for a token without one, a new 8-decimal feed written
    under PRICE_FEED with its multiplier (10^(60 - 8 - token decimals), ChainlinkPriceFeedUtils)
    and a long heartbeat."""
    ds = _data_store(w3, fork)
    erc20 = load_abi("ERC20")
    feeds: dict[str, str] = {}
    for token in tokens:
        token = Web3.to_checksum_address(token)
        feed = Web3.to_checksum_address(ds.functions.getAddress(price_feed_key(token)).call())
        if int(feed, 16) != 0 and len(w3.eth.get_code(feed)) > 0:
            etch_feed(admin, feed)
        else:
            decimals = w3.eth.contract(address=token, abi=erc20).functions.decimals().call()
            feed = deploy_contract(admin, "PriceFeed", FEED_DECIMALS, "gmx fork feed", 1)
            _write(w3, fork, "setAddress", price_feed_key(token), feed)
            _write(w3, fork, "setUint", price_feed_multiplier_key(token), 10 ** (60 - FEED_DECIMALS - decimals))
            _write(w3, fork, "setUint", price_feed_heartbeat_duration_key(token), FEED_HEARTBEAT)
        feeds[token] = feed
    return feeds


def gmx_price(w3: Web3, fork: GmxFork, token: str, answer: int) -> int:
    """What GMX's ChainlinkPriceFeedProvider makes of feed ``answer`` for ``token``: USD per smallest
    unit x 1e30 (answer x PRICE_FEED_MULTIPLIER / 1e30, ChainlinkPriceFeedUtils.getPriceFeedPrice)."""
    multiplier = _data_store(w3, fork).functions.getUint(price_feed_multiplier_key(token)).call()
    if multiplier == 0:
        raise RuntimeError(f"GMX has no PRICE_FEED_MULTIPLIER for {token}: its Chainlink price cannot be read")
    return answer * multiplier // FLOAT_PRECISION


def oracle_params(fork: GmxFork, tokens: Sequence[str]) -> tuple[list[str], list[str], list[bytes]]:
    """SetPricesParams naming the ChainlinkPriceFeedProvider for each token (its ``data`` is unused)."""
    tokens = list(dict.fromkeys(Web3.to_checksum_address(t) for t in tokens))    # once each, in order
    return tokens, [fork.price_feed_provider] * len(tokens), [b""] * len(tokens)


def _canonical(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        return "(" + ",".join(_canonical(c) for c in param["components"]) + ")" + param["type"][len("tuple"):]
    return str(param["type"])


def execute_order_signature() -> str:
    """executeOrder's canonical signature, built from ORDER_HANDLER_ABI."""
    entry = next(e for e in ORDER_HANDLER_ABI if e["name"] == "executeOrder")
    return f"executeOrder({','.join(_canonical(p) for p in entry['inputs'])})"


def encode_execute_order(key: bytes, params: tuple[Sequence[str], Sequence[str], Sequence[bytes]]) -> bytes:
    """Call data of OrderHandler.executeOrder(key, SetPricesParams(tokens, providers, data))."""
    tokens, providers, data = params
    if not (len(tokens) == len(providers) == len(data)):
        raise ValueError("SetPricesParams: tokens, providers and data must have one entry per token "
                         "(Oracle.sol reverts InvalidOracleSetPricesProvidersParam/DataParam)")
    entry = next(e for e in ORDER_HANDLER_ABI if e["name"] == "executeOrder")
    types = [_canonical(p) for p in entry["inputs"]]
    return function_signature_to_4byte_selector(execute_order_signature()) + encode(
        types, [key, ([Web3.to_checksum_address(t) for t in tokens], [Web3.to_checksum_address(p) for p in providers],
                      [bytes(d) for d in data])])


def execute_order(w3: Web3, fork: GmxFork, key: bytes, tokens: Sequence[str]) -> dict[str, Any]:
    """Execute order ``key`` as the impersonated ORDER_KEEPER, prices from the ChainlinkPriceFeedProvider
    (publish them to the feeds first). GMX catches most execution errors and cancels or freezes the
    order in a successful transaction: read its events (OrderExecuted/OrderCancelled/OrderFrozen)."""
    return send_as(w3, fork.order_keeper, fork.order_handler, encode_execute_order(key, oracle_params(fork, tokens)),
                   gas=KEEPER_GAS)


def market_tokens(w3: Web3, fork: GmxFork, market: str) -> list[str]:
    """The tokens an order in ``market`` needs prices for: index, long and short (Reader.getMarket,
    the SDK's ABI), once each, without the zero index of a swap-only market."""
    reader = w3.eth.contract(address=fork.reader, abi=load_abi("gmx-v2/Reader"))
    _, index, long_token, short_token = reader.functions.getMarket(fork.data_store, Web3.to_checksum_address(market)).call()
    return [Web3.to_checksum_address(t) for t in dict.fromkeys((index, long_token, short_token)) if int(t, 16) != 0]


# ---------------------------------------------------------------------- one object for the simulator


@dataclass
class ForkKeeper:
    """The simulator's hand on a GMX fork: publishes prices to the etched feeds and executes orders
    as GMX's keeper. Built by :func:`setup`; ``feeds[index token]`` is the Chainlink feed to give the
    hedger as ``HEDGER_ORACLE`` so that its guards read GMX's price."""

    w3: Web3
    fork: GmxFork
    admin: TxSender
    tokens: list[str]
    feeds: dict[str, str]

    def publish(self, token: str, answer: int) -> None:
        """A new round on ``token``'s feed, in the feed's own decimals, stamped with the block time."""
        feed = self.feeds[Web3.to_checksum_address(token)]
        c = self.w3.eth.contract(address=feed, abi=contract_artifact("PriceFeed")["abi"])
        self.admin.send(feed, c.functions.setAnswer(answer)._encode_transaction_data())

    def execute(self, key: bytes) -> dict[str, Any]:
        """Execute order ``key`` at the feeds' current answers (see :func:`execute_order`)."""
        return execute_order(self.w3, self.fork, key, self.tokens)


def setup(w3: Web3, deployment_name: str, admin: TxSender, market: str, *, tokens: Sequence[str] | None = None,
          exchange_router: str | None = None, price_feed_provider: str | None = None,
          reader: str | None = None) -> ForkKeeper:
    """Everything fork mode does before the first step: :func:`prepare_fork`, the market's tokens
    (Reader.getMarket unless ``tokens`` are given) priced through the ChainlinkPriceFeedProvider
    (:func:`use_price_feed_provider`), their feeds made settable by ``admin`` (:func:`settable_feeds`)."""
    fork = prepare_fork(w3, deployment_name, exchange_router=exchange_router, price_feed_provider=price_feed_provider,
                        reader=reader)
    priced = [Web3.to_checksum_address(t) for t in (tokens if tokens is not None else market_tokens(w3, fork, market))]
    use_price_feed_provider(w3, fork, priced)
    feeds = settable_feeds(w3, fork, admin, priced)
    return ForkKeeper(w3=w3, fork=fork, admin=admin, tokens=priced, feeds=feeds)
