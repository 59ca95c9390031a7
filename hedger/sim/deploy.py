"""Deploy the reference protocol: collateral and spot tokens, price and sequencer feeds, the market.

``hedger deploy`` and ``ape run deploy`` call :func:`deploy_reference`. With
``oracle``/``collateral`` given it reuses those contracts (a real Chainlink
feed, real USDC on a fork) instead of deploying its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from web3 import Web3

from hedger.chain.abi import contract_artifact, load_abi
from hedger.chain.reader import CANONICAL_MULTICALL3
from hedger.chain.executor import TxSender
from hedger.core.types import UNIT

USD = UNIT


@dataclass(frozen=True)
class MarketParams:
    """Reference market parameters. Defaults follow Synthetix PerpsV2 ETH on Optimism
    (``../shared/MARKET-PARAMETERS.md``), with launch-time order delays and 50x max leverage."""

    maxOracleAge: int = 3600
    skewScale: int = 1_000_000 * UNIT
    maxFundingVelocity: int = 9 * UNIT
    takerFee: int = 6 * UNIT // 10_000          # 0.06%
    makerFee: int = 2 * UNIT // 10_000          # 0.02%
    maxLeverage: int = 50 * UNIT
    liquidationBufferRatio: int = 75 * UNIT // 10_000   # 0.75%
    liquidationFeeRatio: int = 2 * UNIT // 10_000       # 0.02%
    liquidationPremiumMultiplier: int = 15625 * UNIT // 10_000  # 1.5625
    minKeeperFee: int = 4 * USD
    maxKeeperFee: int = 100 * USD
    minInitialMargin: int = 40 * USD
    orderKeeperFee: int = 2 * USD
    minOrderDelay: int = 15
    maxOrderDelay: int = 120

    def as_tuple(self) -> tuple[int, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class Deployment:
    market: str
    oracle: str
    collateral: str
    spot: str
    sequencer_feed: str
    deployer: str
    chain_id: int
    multicall: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def deploy_contract(sender: TxSender, name: str, *args: Any) -> str:
    art = contract_artifact(name)
    factory = sender.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    data = factory.constructor(*args).data_in_transaction
    receipt = sender.send(None, data)
    return Web3.to_checksum_address(receipt["contractAddress"])


def transact(sender: TxSender, name: str, address: str, fn: str, *args: Any) -> dict[str, Any]:
    """Send one call to a reference contract (deployment and demo set-up only)."""
    c = sender.w3.eth.contract(address=Web3.to_checksum_address(address), abi=contract_artifact(name)["abi"])
    data = c.get_function_by_name(fn)(*args)._encode_transaction_data()
    return sender.send(address, data)




def multicall_address(sender: TxSender) -> str:
    """The canonical Multicall3 where the chain has it (a fork of a real chain), else a
    compatible one deployed here (a bare local chain)."""
    if sender.w3.eth.get_code(CANONICAL_MULTICALL3) not in (b"", None):
        return CANONICAL_MULTICALL3
    return deploy_contract(sender, "Multicall3")


@dataclass(frozen=True)
class MarketDeployment:
    """A further market beside a reference deployment: its own spot token and feed, shared collateral."""

    market: str
    oracle: str
    spot: str
    collateral: str
    spot_decimals: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def deploy_market(sender: TxSender, collateral: str, *, name: str, symbol: str, decimals: int,
                  initial_price: int, params: MarketParams | None = None, feed_decimals: int = 8,
                  seed_liquidity: int = 0) -> MarketDeployment:
    """Deploy one more market on an existing collateral token (e.g. a BTC market beside the ETH one):
    a spot token with ``decimals``, a price feed answering ``initial_price`` (in ``feed_decimals``),
    and the market. ``seed_liquidity`` (native collateral units) is minted to the market, which
    needs ``sender`` to own the collateral token."""
    params = params or MarketParams()
    spot = deploy_contract(sender, "ReferenceToken", f"{name} (reference)", symbol, decimals)
    oracle = deploy_contract(sender, "PriceFeed", feed_decimals, f"{symbol} / USD", 1)
    transact(sender, "PriceFeed", oracle, "setAnswer", initial_price)
    collateral = Web3.to_checksum_address(collateral)
    market = deploy_contract(sender, "PerpMarket", collateral, oracle, params.as_tuple())
    if seed_liquidity > 0:
        transact(sender, "ReferenceToken", collateral, "mint", market, seed_liquidity)
    return MarketDeployment(market=market, oracle=oracle, spot=spot, collateral=collateral, spot_decimals=decimals)


def deploy_reference(sender: TxSender, *, oracle: str | None = None, collateral: str | None = None,
                     params: MarketParams | None = None, initial_price: int = 3000 * 10**8,
                     feed_decimals: int = 8, seed_liquidity_usd: int = 10_000_000) -> Deployment:
    """Deploy the reference protocol and return its addresses."""
    params = params or MarketParams()
    own_collateral = collateral is None
    if collateral is None:
        collateral = deploy_contract(sender, "ReferenceToken", "USD Coin (reference)", "USDC", 6)
    spot = deploy_contract(sender, "ReferenceToken", "Wrapped Ether (reference)", "WETH", 18)
    if oracle is None:
        oracle = deploy_contract(sender, "PriceFeed", feed_decimals, "ETH / USD", 1)
        transact(sender, "PriceFeed", oracle, "setAnswer", initial_price)
    sequencer = deploy_contract(sender, "PriceFeed", 0, "L2 Sequencer Uptime Status Feed", 1)
    transact(sender, "PriceFeed", sequencer, "setAnswer", 0)
    market = deploy_contract(sender, "PerpMarket", Web3.to_checksum_address(collateral),
                             Web3.to_checksum_address(oracle), params.as_tuple())
    if own_collateral and seed_liquidity_usd > 0:
        # The market pays traders' profits from its balance, as a real market's
        # liquidity pool (Synthetix's debt pool, GMX's GM pool) does.
        transact(sender, "ReferenceToken", collateral, "mint", market, seed_liquidity_usd * 10**6)
    multicall = multicall_address(sender)
    return Deployment(multicall=multicall, market=market, oracle=Web3.to_checksum_address(oracle),
                      collateral=Web3.to_checksum_address(collateral), spot=spot, sequencer_feed=sequencer,
                      deployer=sender.signer.address, chain_id=sender.chain_id)


# ------------------------------------------------------------------ test tokens for a local walkthrough

FUND_SPOT = 10 * UNIT               # 10 WETH (18 decimals)
FUND_COLLATERAL_USD = 50_000        # 50,000 USDC (in whole tokens; scaled by the token's decimals)


def _mintable(sender: TxSender, address: str) -> str | None:
    """None when ``sender`` can mint on ``address`` (our reference token, deployed by this signer),
    else why not."""
    c = sender.w3.eth.contract(address=Web3.to_checksum_address(address), abi=contract_artifact("ReferenceToken")["abi"])
    try:
        minter = Web3.to_checksum_address(c.functions.minter().call())
    except Exception:
        return "not a reference token (it has no minter())"
    if minter != sender.signer.address:
        return f"its minter is {minter}, not the signer {sender.signer.address}"
    return None


def check_reuse(sender: TxSender, oracle: str | None, collateral: str | None,
                names: tuple[str, str] = ("--oracle", "--collateral")) -> tuple[str | None, str | None]:
    """Validate ``--oracle`` and ``--collateral`` (an existing feed and token to reuse) before anything
    is deployed: an address, with code, answering a Chainlink feed's views (decimals, latestRoundData)
    and an ERC20's (decimals, balanceOf). A ConfigError naming the flag (``names``: how the caller's
    user set them) otherwise. Checksummed addresses."""
    from hedger.chain.abi import AGGREGATOR_V3, ERC20, load_abi
    from hedger.config import _address
    from hedger.core.errors import ConfigError
    w3 = sender.w3
    out: list[str | None] = []
    for flag, addr, abi, views, what in (
            (names[0], oracle, AGGREGATOR_V3, (("decimals",), ("latestRoundData",)), "a Chainlink price feed"),
            (names[1], collateral, ERC20, (("decimals",), ("balanceOf", sender.signer.address)), "an ERC20")):
        if addr is None:
            out.append(None)
            continue
        a = _address(flag, addr) or ""
        if w3.eth.get_code(a) in (b"", None):
            raise ConfigError(flag, f"no contract at {a} on chain {sender.chain_id}",
                              f"give the address of {what} on this chain, or drop {flag} to deploy a test one")
        c = w3.eth.contract(address=a, abi=load_abi(abi))
        try:
            for fn, *args in views:
                c.get_function_by_name(fn)(*args).call()
        except Exception as err:
            raise ConfigError(flag, f"{a} does not answer as {what} ({fn}: {type(err).__name__})",
                              f"give the address of {what} on this chain, or drop {flag} to deploy a test "
                              "one") from None
        out.append(a)
    return out[0], out[1]


def check_fund(sender: TxSender, to: str, tokens: dict[str, str]) -> str:
    """Validate ``--fund ADDRESS`` and that every token in ``tokens`` (label -> address) is ours to
    mint, before anything is sent: a ConfigError naming each token that is not. The address
    (checksummed)."""
    from hedger.config import _address
    from hedger.core.errors import ConfigError
    address = _address("--fund", to) or ""
    foreign = {label: why for label, addr in tokens.items() if (why := _mintable(sender, addr)) is not None}
    if foreign:
        named = "; ".join(f"{label} {Web3.to_checksum_address(tokens[label])}: {why}" for label, why in foreign.items())
        raise ConfigError("--fund", f"cannot mint tokens this signer does not own ({named})",
                          "fund the account with those tokens another way, or deploy without --collateral so "
                          "the reference tokens (mintable by the deployer) are used")
    return address


def fund(sender: TxSender, d: Deployment, to: str) -> dict[str, int]:
    """Mint test WETH and USDC of deployment ``d`` to ``to`` (refused, naming them, on tokens the
    signer does not own). Returns what was minted, in native units, by symbol."""
    to = check_fund(sender, to, {"spot token (WETH)": d.spot, "collateral (USDC)": d.collateral})
    usdc = sender.w3.eth.contract(address=d.collateral, abi=contract_artifact("ReferenceToken")["abi"])
    decimals = int(usdc.functions.decimals().call())
    amounts = {"WETH": FUND_SPOT, "USDC": FUND_COLLATERAL_USD * 10**decimals}
    transact(sender, "ReferenceToken", d.spot, "mint", to, amounts["WETH"])
    transact(sender, "ReferenceToken", d.collateral, "mint", to, amounts["USDC"])
    return amounts


def etch_feed(admin: TxSender, feed: str, *, slots: int = 16) -> str:
    """Put a settable ``PriceFeed`` at ``feed`` on an anvil chain (``anvil_setCode``, as Foundry's
    ``etch``), keeping its decimals, description and latest answer, so that whatever reads that
    address moves with a simulation's prices; ``admin`` owns it (publishes with ``setAnswer``).
    Used for the reference feed of a fork and for GMX's Chainlink feeds (hedger.sim.gmx_fork)."""
    w3 = admin.w3
    feed = Web3.to_checksum_address(feed)
    c = w3.eth.contract(address=feed, abi=load_abi("AggregatorV3Interface"))
    decimals = c.functions.decimals().call()
    answer = c.functions.latestRoundData().call()[1]
    try:
        description = c.functions.description().call()[:64]
    except Exception:
        description = "etched feed"
    fresh = deploy_contract(admin, "PriceFeed", decimals, description, 1)

    def rpc(method: str, *params: Any) -> None:
        resp = w3.provider.make_request(method, list(params))    # type: ignore[arg-type]
        if "error" in resp:
            raise RuntimeError(f"{method}: {resp['error']}")

    rpc("anvil_setCode", feed, Web3.to_hex(w3.eth.get_code(fresh)))
    for slot in range(slots):   # owner, decimals, description (3), version, phase, rounds: below 16
        value = w3.eth.get_storage_at(fresh, slot)
        rpc("anvil_setStorageAt", feed, hex(slot), "0x" + bytes(value).hex().rjust(64, "0"))
    transact(admin, "PriceFeed", feed, "setAnswer", answer)
    return feed
