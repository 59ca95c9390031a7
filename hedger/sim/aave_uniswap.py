"""The real Aave v3 and Uniswap v3 on a local chain, deployed from their npm artifacts.

:func:`deploy_aave_uniswap` builds a small market from the publishers' own compiled contracts
(``@aave/core-v3``, ``@uniswap/v3-core``, ``@uniswap/v3-periphery``, ``@uniswap/swap-router-contracts``
for SwapRouter02, ``@chainlink/contracts``;
facts in ``../shared/AAVE-UNISWAP.md``):

* WETH (Aave's ``WETH9Mocked``, 18 decimals, also the periphery's WETH9) and USDC (Aave's
  ``MintableERC20``, 6 decimals), both mintable by anyone;
* a Chainlink ``MockV3Aggregator`` for each (8 decimals, USD);
* Aave v3 wired in Aave's own order, with the WETH and USDC reserves configured with Aave v3's
  live parameters (:data:`WETH_RESERVE`, :data:`USDC_RESERVE`), and liquidity supplied to both;
* the Uniswap v3 factory, a WETH/USDC pool (fee 500) initialised at the feeds' price with room
  for a 30-minute TWAP, the NonfungiblePositionManager and the SwapRouter, and a deep full-range
  position.

The deployer (one account) owns everything: it is Aave's ACL admin and pool admin, the supplier
of the reserves' liquidity and the owner of the pool's liquidity position. The WETH/USDC order
in the pool (which token is ``token0``) is chosen by ``asset_is_token0``: the two tokens are
deployed at the deployer's next two nonces, in the order that gives the wanted address order.

Helpers move the market: :func:`set_prices` publishes both feeds, :func:`arbitrage_pool` swaps the
pool to the feeds' price from a trader account, :func:`swap_exact_input` swaps through the
SwapRouter (8-field struct, deadline from the latest block), :func:`twap_tick` reads the pool's
mean tick. Amounts are integers in native units; prices are feed answers (USD, 8 decimals).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from web3 import Web3
from web3.logs import DISCARD

from hedger.chain.executor import KeySigner, TxSender

from hedger.core.secrets import Secret
from hedger.sim.localchain import dev_account
from hedger.sim.npm_artifacts import ArtifactDeployer, NpmArtifact, create_address, load_artifact

AAVE = "@aave/core-v3"
UNISWAP_CORE = "@uniswap/v3-core"
UNISWAP_PERIPHERY = "@uniswap/v3-periphery"
UNISWAP_ROUTER02 = "@uniswap/swap-router-contracts"
CHAINLINK = "@chainlink/contracts"

_PATHS: dict[str, tuple[str, str]] = {
    # Aave v3 (protocol v3.0.x)
    "PoolAddressesProvider": (AAVE, "protocol/configuration/PoolAddressesProvider.sol/PoolAddressesProvider"),
    "ACLManager": (AAVE, "protocol/configuration/ACLManager.sol/ACLManager"),
    "BorrowLogic": (AAVE, "protocol/libraries/logic/BorrowLogic.sol/BorrowLogic"),
    "BridgeLogic": (AAVE, "protocol/libraries/logic/BridgeLogic.sol/BridgeLogic"),
    "EModeLogic": (AAVE, "protocol/libraries/logic/EModeLogic.sol/EModeLogic"),
    "FlashLoanLogic": (AAVE, "protocol/libraries/logic/FlashLoanLogic.sol/FlashLoanLogic"),
    "LiquidationLogic": (AAVE, "protocol/libraries/logic/LiquidationLogic.sol/LiquidationLogic"),
    "PoolLogic": (AAVE, "protocol/libraries/logic/PoolLogic.sol/PoolLogic"),
    "SupplyLogic": (AAVE, "protocol/libraries/logic/SupplyLogic.sol/SupplyLogic"),
    "ConfiguratorLogic": (AAVE, "protocol/libraries/logic/ConfiguratorLogic.sol/ConfiguratorLogic"),
    "Pool": (AAVE, "protocol/pool/Pool.sol/Pool"),
    "PoolConfigurator": (AAVE, "protocol/pool/PoolConfigurator.sol/PoolConfigurator"),
    "DefaultReserveInterestRateStrategy": (
        AAVE, "protocol/pool/DefaultReserveInterestRateStrategy.sol/DefaultReserveInterestRateStrategy"),
    "AaveOracle": (AAVE, "misc/AaveOracle.sol/AaveOracle"),
    "AaveProtocolDataProvider": (AAVE, "misc/AaveProtocolDataProvider.sol/AaveProtocolDataProvider"),
    "AToken": (AAVE, "protocol/tokenization/AToken.sol/AToken"),
    "StableDebtToken": (AAVE, "protocol/tokenization/StableDebtToken.sol/StableDebtToken"),
    "VariableDebtToken": (AAVE, "protocol/tokenization/VariableDebtToken.sol/VariableDebtToken"),
    "MintableERC20": (AAVE, "mocks/tokens/MintableERC20.sol/MintableERC20"),
    "WETH9Mocked": (AAVE, "mocks/tokens/WETH9Mocked.sol/WETH9Mocked"),
    # Uniswap v3
    "UniswapV3Factory": (UNISWAP_CORE, "UniswapV3Factory.sol/UniswapV3Factory"),
    "UniswapV3Pool": (UNISWAP_CORE, "UniswapV3Pool.sol/UniswapV3Pool"),
    "NonfungiblePositionManager": (UNISWAP_PERIPHERY, "NonfungiblePositionManager.sol/NonfungiblePositionManager"),
    "SwapRouter": (UNISWAP_PERIPHERY, "SwapRouter.sol/SwapRouter"),
    "SwapRouter02": (UNISWAP_ROUTER02, "SwapRouter02.sol/SwapRouter02"),
    # Chainlink
    "MockV3Aggregator": (CHAINLINK, "abi/v0.6/MockV3Aggregator"),
}

# The libraries Pool links, in deployment order (FlashLoanLogic links BorrowLogic itself).
POOL_LIBRARIES = ("BorrowLogic", "BridgeLogic", "EModeLogic", "LiquidationLogic", "PoolLogic", "SupplyLogic",
                  "FlashLoanLogic")


def artifact(name: str) -> NpmArtifact:
    """The npm artifact of one contract of this market, by contract name."""
    try:
        package, path = _PATHS[name]
    except KeyError:
        raise ValueError(f"no artifact named {name!r}; known: {', '.join(sorted(_PATHS))}") from None
    return load_artifact(package, path)


def contract(w3: Web3, name: str, address: str) -> Any:
    """A web3 contract at ``address`` with the ABI of artifact ``name``."""
    return w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact(name).abi)


WETH_UNIT = 10**18
USDC_UNIT = 10**6
FEED_DECIMALS = 8
RAY = 10**27
PERCENT_RAY = RAY // 100
MIN_TICK, MAX_TICK = -887272, 887272
TICK_SPACING = {500: 10, 3000: 60, 10000: 200}     # the fee tiers v3-core 1.0.1's factory enables
DEADLINE_SECONDS = 600
# Aave's treasury receives the reserve factor and the liquidation protocol fee as aTokens: an
# address nobody signs for, so the deployer's own balances stay those of a liquidity supplier.
AAVE_TREASURY = "0x0000000000000000000000000000000000007eA5"


@dataclass(frozen=True)
class ReserveParams:
    """One Aave reserve's risk and rate parameters (bps; rates in ray)."""

    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int            # 10000 + bonus, as Aave stores it
    reserve_factor: int
    liquidation_protocol_fee: int
    optimal_usage_ratio: int
    base_variable_borrow_rate: int
    variable_rate_slope1: int
    variable_rate_slope2: int


# Aave v3 Ethereum/Arbitrum, 2024-25 (../shared/AAVE-UNISWAP.md)
WETH_RESERVE = ReserveParams(ltv=8050, liquidation_threshold=8300, liquidation_bonus=10500, reserve_factor=1500,
                             liquidation_protocol_fee=1000, optimal_usage_ratio=90 * PERCENT_RAY,
                             base_variable_borrow_rate=0, variable_rate_slope1=27 * PERCENT_RAY // 10,
                             variable_rate_slope2=80 * PERCENT_RAY)
USDC_RESERVE = ReserveParams(ltv=7700, liquidation_threshold=8000, liquidation_bonus=10450, reserve_factor=1000,
                             liquidation_protocol_fee=1000, optimal_usage_ratio=90 * PERCENT_RAY,
                             base_variable_borrow_rate=0, variable_rate_slope1=65 * PERCENT_RAY // 10,
                             variable_rate_slope2=60 * PERCENT_RAY)


@dataclass(frozen=True)
class AaveUniswapDeployment:
    """Addresses of a deployed Aave v3 + Uniswap v3 market, and what deploying it cost."""

    chain_id: int
    deployer: str
    weth: str
    usdc: str
    weth_feed: str
    usdc_feed: str
    # Aave v3
    addresses_provider: str
    acl_manager: str
    pool: str
    pool_configurator: str
    oracle: str
    data_provider: str
    a_weth: str
    variable_debt_weth: str
    a_usdc: str
    variable_debt_usdc: str
    treasury: str
    # Uniswap v3
    uniswap_factory: str
    uniswap_pool: str
    fee: int
    asset_is_token0: bool
    position_manager: str
    swap_router: str
    lp_token_id: int
    # the deployment itself
    transactions: int
    gas_used: int
    seconds: float
    swap_router02: str = ""    # Uniswap's SwapRouter02 (no deadline in its structs), beside the SwapRouter

    @property
    def token0(self) -> str:
        return self.weth if self.asset_is_token0 else self.usdc

    @property
    def token1(self) -> str:
        return self.usdc if self.asset_is_token0 else self.weth

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hedger_env(self) -> dict[str, str]:
        """The venue's settings for this market (issue 12's names), without RPC or key."""
        return {"HEDGER_MARKET": self.addresses_provider, "HEDGER_SPOT_TOKEN": self.weth,
                "HEDGER_COLLATERAL_TOKEN": self.usdc, "HEDGER_ORACLE": self.weth_feed,
                "HEDGER_SWAP_ROUTER": self.swap_router, "HEDGER_SWAP_FEE": str(self.fee),
                "HEDGER_SECOND_ORACLE": f"univ3:{self.uniswap_pool}"}


# ------------------------------------------------------------------ price <-> pool math (integers)

def sqrt_price_x96(answer: int, asset_is_token0: bool, *, asset_decimals: int = 18, collateral_decimals: int = 6,
                   feed_decimals: int = FEED_DECIMALS) -> int:
    """The pool's ``sqrtPriceX96`` (sqrt of token1 per token0 in raw units, Q64.96) at an asset
    price of ``answer`` collateral per asset (``feed_decimals``), rounded down."""
    if answer <= 0:
        raise ValueError(f"answer must be positive, got {answer}")
    num, den = answer * 10**collateral_decimals, 10**(feed_decimals + asset_decimals)
    if not asset_is_token0:
        num, den = den, num
    return math.isqrt((num << 192) // den)


def answer_from_sqrt_price(sqrt_price: int, asset_is_token0: bool, *, asset_decimals: int = 18,
                           collateral_decimals: int = 6, feed_decimals: int = FEED_DECIMALS) -> int:
    """The asset price (collateral per asset, ``feed_decimals``) at ``sqrtPriceX96``, rounded down."""
    if sqrt_price <= 0:
        raise ValueError(f"sqrt_price must be positive, got {sqrt_price}")
    sq, scale = sqrt_price * sqrt_price, 10**(feed_decimals + asset_decimals)
    if asset_is_token0:
        return sq * scale // ((1 << 192) * 10**collateral_decimals)
    return (1 << 192) * scale // (sq * 10**collateral_decimals)


def _latest_time(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


def _sender(w3: Web3, index: int) -> TxSender:
    return TxSender(w3, KeySigner(Secret(dev_account(index).key.hex())))


# ------------------------------------------------------------------ deployment

def deploy_aave_uniswap(w3: Web3, *, sender: TxSender | None = None, asset_is_token0: bool = False,
                        weth_price: int = 3000 * 10**FEED_DECIMALS, usdc_price: int = 10**FEED_DECIMALS,
                        fee: int = 500, pool_weth: int = 50_000 * WETH_UNIT,
                        aave_weth: int = 20_000 * WETH_UNIT, aave_usdc: int = 100_000_000 * USDC_UNIT,
                        observation_cardinality: int = 180, weth_params: ReserveParams = WETH_RESERVE,
                        usdc_params: ReserveParams = USDC_RESERVE, treasury: str = AAVE_TREASURY,
                        ) -> AaveUniswapDeployment:
    """Deploy and wire Aave v3 and Uniswap v3 from the npm artifacts; see the module docstring.

    ``sender`` signs everything (default: anvil's dev account 0). ``asset_is_token0`` picks the
    pool's token order (False, the default, is Ethereum mainnet's: USDC is token0).
    ``weth_price``/``usdc_price`` are the feeds' first answers (USD, 8 decimals); the pool starts
    at their ratio. ``pool_weth`` is the WETH in the full-range position (USDC to match);
    ``aave_weth``/``aave_usdc`` are supplied to Aave so both can be borrowed.
    ``observation_cardinality`` is the pool's observation buffer (180 covers 30 minutes of 10 s
    blocks)."""
    for name, value in (("weth_price", weth_price), ("usdc_price", usdc_price), ("pool_weth", pool_weth),
                        ("observation_cardinality", observation_cardinality)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name, value in (("aave_weth", aave_weth), ("aave_usdc", aave_usdc)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer (native units), got {value!r}")
    if fee not in TICK_SPACING:
        raise ValueError(f"fee must be a fee tier the factory enables ({', '.join(map(str, TICK_SPACING))}), "
                         f"got {fee!r}")
    if observation_cardinality > 65535:
        raise ValueError(f"observation_cardinality must be at most 65535, got {observation_cardinality}")

    started = time.monotonic()
    d = ArtifactDeployer(sender or _sender(w3, 0))
    me = d.address

    # Tokens at the deployer's next two nonces, in the order that gives the wanted token0.
    nonce = int(w3.eth.get_transaction_count(me, "pending"))
    first, second = create_address(me, nonce), create_address(me, nonce + 1)
    weth_first = (int(first, 16) < int(second, 16)) == asset_is_token0
    if weth_first:
        weth = d.deploy(artifact("WETH9Mocked"))
        usdc = d.deploy(artifact("MintableERC20"), "USD Coin", "USDC", 6)
    else:
        usdc = d.deploy(artifact("MintableERC20"), "USD Coin", "USDC", 6)
        weth = d.deploy(artifact("WETH9Mocked"))
    if (int(weth, 16) < int(usdc, 16)) != asset_is_token0:
        raise RuntimeError(f"token order: WETH {weth}, USDC {usdc} do not give asset_is_token0={asset_is_token0} "
                           "(another transaction from the deployer came between the two deployments?)")

    feed = artifact("MockV3Aggregator")
    weth_feed = d.deploy(feed, FEED_DECIMALS, weth_price)
    usdc_feed = d.deploy(feed, FEED_DECIMALS, usdc_price)

    # --- Aave v3, in Aave's own local-market order
    provider_art = artifact("PoolAddressesProvider")
    provider = d.deploy(provider_art, "Hedger local market", me)
    d.call(provider_art, provider, "setACLAdmin", me)                   # before ACLManager: it reads it
    acl_art = artifact("ACLManager")
    acl = d.deploy(acl_art, provider)
    d.call(provider_art, provider, "setACLManager", acl)
    for fn in ("addPoolAdmin", "addEmergencyAdmin", "addRiskAdmin", "addAssetListingAdmin"):
        d.call(acl_art, acl, fn, me)

    libs: dict[str, str] = {}
    for lib in POOL_LIBRARIES:
        libs[lib] = d.deploy(artifact(lib), libraries=libs)
    pool_art = artifact("Pool")
    pool_impl = d.deploy(pool_art, provider, libraries=libs)
    d.call(pool_art, pool_impl, "initialize", provider)                 # lock the implementation
    d.call(provider_art, provider, "setPoolImpl", pool_impl)            # creates + initialises the proxy
    pool = Web3.to_checksum_address(d.contract(provider_art, provider).functions.getPool().call())

    configurator_art = artifact("PoolConfigurator")
    configurator_logic = d.deploy(artifact("ConfiguratorLogic"))
    configurator_impl = d.deploy(configurator_art, libraries={"ConfiguratorLogic": configurator_logic})
    d.call(configurator_art, configurator_impl, "initialize", provider)
    d.call(provider_art, provider, "setPoolConfiguratorImpl", configurator_impl)
    configurator = Web3.to_checksum_address(d.contract(provider_art, provider).functions.getPoolConfigurator().call())

    oracle = d.deploy(artifact("AaveOracle"), provider, [weth, usdc], [weth_feed, usdc_feed],
                      "0x0000000000000000000000000000000000000000", "0x0000000000000000000000000000000000000000",
                      10**FEED_DECIMALS)
    d.call(provider_art, provider, "setPriceOracle", oracle)
    data_provider = d.deploy(artifact("AaveProtocolDataProvider"), provider)
    d.call(provider_art, provider, "setPoolDataProvider", data_provider)

    a_token_impl = d.deploy(artifact("AToken"), pool)
    stable_impl = d.deploy(artifact("StableDebtToken"), pool)
    variable_impl = d.deploy(artifact("VariableDebtToken"), pool)
    strategy_art = artifact("DefaultReserveInterestRateStrategy")

    def strategy(p: ReserveParams) -> str:
        # stable borrowing stays disabled; its parameters are Aave's template values
        return d.deploy(strategy_art, provider, p.optimal_usage_ratio, p.base_variable_borrow_rate,
                        p.variable_rate_slope1, p.variable_rate_slope2, 0, 0, 2 * PERCENT_RAY, 5 * PERCENT_RAY,
                        20 * PERCENT_RAY)

    reserves = [(weth, 18, "WETH", weth_params, strategy(weth_params)),
                (usdc, 6, "USDC", usdc_params, strategy(usdc_params))]
    treasury = Web3.to_checksum_address(treasury)
    zero = "0x0000000000000000000000000000000000000000"
    d.call(configurator_art, configurator, "initReserves", [
        (a_token_impl, stable_impl, variable_impl, decimals, rate, asset, treasury, zero,
         f"Aave Local {sym}", f"aLoc{sym}", f"Aave Local Variable Debt {sym}", f"variableDebtLoc{sym}",
         f"Aave Local Stable Debt {sym}", f"stableDebtLoc{sym}", b"")
        for asset, decimals, sym, _p, rate in reserves])
    for asset, _dec, _sym, p, _rate in reserves:
        d.call(configurator_art, configurator, "configureReserveAsCollateral", asset, p.ltv,
               p.liquidation_threshold, p.liquidation_bonus)
        d.call(configurator_art, configurator, "setReserveBorrowing", asset, True)
        d.call(configurator_art, configurator, "setReserveFactor", asset, p.reserve_factor)
        d.call(configurator_art, configurator, "setLiquidationProtocolFee", asset, p.liquidation_protocol_fee)
    dp = d.contract(artifact("AaveProtocolDataProvider"), data_provider)
    a_weth, _, variable_debt_weth = (Web3.to_checksum_address(a) for a in
                                     dp.functions.getReserveTokensAddresses(weth).call())
    a_usdc, _, variable_debt_usdc = (Web3.to_checksum_address(a) for a in
                                     dp.functions.getReserveTokensAddresses(usdc).call())

    # --- Uniswap v3
    factory = d.deploy(artifact("UniswapV3Factory"))
    npm_art = artifact("NonfungiblePositionManager")
    npm = d.deploy(npm_art, factory, weth, zero)                        # no token descriptor
    router = d.deploy(artifact("SwapRouter"), factory, weth)
    token0, token1 = (weth, usdc) if asset_is_token0 else (usdc, weth)
    answer = weth_price * 10**FEED_DECIMALS // usdc_price               # WETH in USDC, 8 decimals
    d.call(npm_art, npm, "createAndInitializePoolIfNecessary", token0, token1, fee,
           sqrt_price_x96(answer, asset_is_token0))
    upool = Web3.to_checksum_address(d.contract(artifact("UniswapV3Factory"), factory).functions
                                     .getPool(token0, token1, fee).call())
    d.call(artifact("UniswapV3Pool"), upool, "increaseObservationCardinalityNext", observation_cardinality)

    # a deep full-range position: pool_weth WETH and its value in USDC (1% spare; only what the
    # price asks for is taken)
    pool_usdc = pool_weth * answer * 101 // (100 * 10**FEED_DECIMALS * 10**12)
    erc20 = artifact("MintableERC20")
    d.call(artifact("WETH9Mocked"), weth, "mint", me, pool_weth + aave_weth)
    d.call(erc20, usdc, "mint", me, pool_usdc + aave_usdc)
    d.call(erc20, weth, "approve", npm, pool_weth)
    d.call(erc20, usdc, "approve", npm, pool_usdc)
    spacing = TICK_SPACING[fee]
    lower, upper = -(-MIN_TICK // spacing) * spacing, MAX_TICK // spacing * spacing
    amounts = (pool_weth, pool_usdc) if asset_is_token0 else (pool_usdc, pool_weth)
    receipt = d.call(npm_art, npm, "mint", (token0, token1, fee, lower, upper, amounts[0], amounts[1], 0, 0, me,
                                            _latest_time(w3) + DEADLINE_SECONDS))
    minted = d.contract(npm_art, npm).events.IncreaseLiquidity().process_receipt(receipt, errors=DISCARD)
    lp_token_id = int(minted[0]["args"]["tokenId"])

    # --- liquidity on Aave, so that both reserves can be borrowed
    pool_contract_art = artifact("Pool")
    for asset, amount in ((weth, aave_weth), (usdc, aave_usdc)):
        if amount:
            d.call(erc20, asset, "approve", pool, amount)
            d.call(pool_contract_art, pool, "supply", asset, amount, me, 0)

    # SwapRouter02 (swap-router-contracts), last so that the addresses above stay as they were; no
    # Uniswap v2 here: its factoryV2 is the zero address (the v3 swaps never use it)
    router02 = d.deploy(artifact("SwapRouter02"), zero, factory, npm, weth)

    return AaveUniswapDeployment(
        chain_id=int(w3.eth.chain_id), deployer=me, weth=weth, usdc=usdc, weth_feed=weth_feed, usdc_feed=usdc_feed,
        addresses_provider=provider, acl_manager=acl, pool=pool, pool_configurator=configurator, oracle=oracle,
        data_provider=data_provider, a_weth=a_weth, variable_debt_weth=variable_debt_weth, a_usdc=a_usdc,
        variable_debt_usdc=variable_debt_usdc, treasury=treasury, uniswap_factory=factory, uniswap_pool=upool,
        fee=fee, asset_is_token0=asset_is_token0, position_manager=npm, swap_router=router,
        lp_token_id=lp_token_id, transactions=d.transactions, gas_used=d.gas_used,
        seconds=time.monotonic() - started, swap_router02=router02)


# ------------------------------------------------------------------ moving the market

def set_prices(sender: TxSender, d: AaveUniswapDeployment, weth_answer: int, usdc_answer: int | None = None) -> None:
    """Publish a new round on the WETH feed (and the USDC feed when given), at the next block's
    time. Answers in USD with 8 decimals."""
    w = ArtifactDeployer(sender)
    feed = artifact("MockV3Aggregator")
    w.call(feed, d.weth_feed, "updateAnswer", int(weth_answer))
    if usdc_answer is not None:
        w.call(feed, d.usdc_feed, "updateAnswer", int(usdc_answer))


def feed_answer(w3: Web3, d: AaveUniswapDeployment) -> int:
    """WETH in USDC by the two feeds, 8 decimals (rounded down)."""
    feed = artifact("MockV3Aggregator").abi
    weth = int(w3.eth.contract(address=d.weth_feed, abi=feed).functions.latestAnswer().call())
    usdc = int(w3.eth.contract(address=d.usdc_feed, abi=feed).functions.latestAnswer().call())
    return weth * 10**FEED_DECIMALS // usdc


def pool_answer(w3: Web3, d: AaveUniswapDeployment, block: int | str = "latest") -> int:
    """WETH in USDC at the pool's current price (slot0), 8 decimals (rounded down)."""
    upool = w3.eth.contract(address=d.uniswap_pool, abi=artifact("UniswapV3Pool").abi)
    return answer_from_sqrt_price(int(upool.functions.slot0().call(block_identifier=block)[0]), d.asset_is_token0)


@dataclass(frozen=True)
class SwapResult:
    amount_in: int          # taken from the payer, native units of token_in
    amount_out: int         # received by the recipient, native units of token_out
    gas_used: int
    tx_hash: str


def swap_exact_input(sender: TxSender, d: AaveUniswapDeployment, token_in: str, amount_in: int, *,
                     amount_out_minimum: int = 0, sqrt_price_limit_x96: int = 0, recipient: str | None = None,
                     deadline_seconds: int = DEADLINE_SECONDS) -> SwapResult:
    """Swap ``amount_in`` of ``token_in`` (WETH or USDC) for the other through the v3-periphery
    SwapRouter's ``exactInputSingle`` (8-field struct; the deadline from the latest block's time).
    Approves the router for ``amount_in`` first. With a price limit the pool may take less than
    ``amount_in``: the result says what was taken."""
    w3 = sender.w3
    token_in = Web3.to_checksum_address(token_in)
    if token_in not in (d.weth, d.usdc):
        raise ValueError(f"token_in must be the WETH ({d.weth}) or USDC ({d.usdc}) of this deployment, got {token_in}")
    token_out = d.usdc if token_in == d.weth else d.weth
    payer = sender.signer.address
    recipient = Web3.to_checksum_address(recipient or payer)
    erc20 = artifact("MintableERC20")
    t_in = w3.eth.contract(address=token_in, abi=erc20.abi)
    t_out = w3.eth.contract(address=token_out, abi=erc20.abi)
    in_before = int(t_in.functions.balanceOf(payer).call())
    out_before = int(t_out.functions.balanceOf(recipient).call())
    w = ArtifactDeployer(sender)
    w.call(erc20, token_in, "approve", d.swap_router, amount_in)
    params = (token_in, token_out, d.fee, recipient, _latest_time(w3) + deadline_seconds, amount_in,
              amount_out_minimum, sqrt_price_limit_x96)
    receipt = w.call(artifact("SwapRouter"), d.swap_router, "exactInputSingle", params)
    if sqrt_price_limit_x96:
        w.call(erc20, token_in, "approve", d.swap_router, 0)            # no allowance left behind
    taken = in_before - int(t_in.functions.balanceOf(payer).call())
    received = int(t_out.functions.balanceOf(recipient).call()) - out_before
    return SwapResult(amount_in=taken, amount_out=received, gas_used=int(receipt["gasUsed"]),
                      tx_hash=Web3.to_hex(receipt["transactionHash"]))


def arbitrage_pool(trader: TxSender, d: AaveUniswapDeployment, answer: int | None = None, *,
                   max_swaps: int = 4) -> list[SwapResult]:
    """Swap the pool to WETH = ``answer`` USDC (8 decimals; default: the feeds' price) from
    ``trader``, who is minted what the swap takes. The swap stops at the target price (the
    router's price limit), so the pool lands on it to within one swap step's rounding. Returns
    the swaps made (none when the pool is already there)."""
    w3 = trader.w3
    target_answer = feed_answer(w3, d) if answer is None else int(answer)
    target = sqrt_price_x96(target_answer, d.asset_is_token0)
    upool = w3.eth.contract(address=d.uniswap_pool, abi=artifact("UniswapV3Pool").abi)
    w = ArtifactDeployer(trader)
    swaps: list[SwapResult] = []
    for _ in range(max_swaps):
        current = int(upool.functions.slot0().call()[0])
        if current == target:
            break
        liquidity = max(int(upool.functions.liquidity().call()), 1)
        if target > current:            # token1 gets dearer: pay token1 in
            token_in = d.token1
            need = liquidity * (target - current) >> 96
        else:                           # token0 gets dearer: pay token0 in
            token_in = d.token0
            need = (liquidity << 96) * (current - target) // (current * target)
        amount_in = 2 * need * 1_000_000 // (1_000_000 - d.fee) + 1     # fee and spare; the limit stops it
        mint_art = artifact("WETH9Mocked") if token_in == d.weth else artifact("MintableERC20")
        w.call(mint_art, token_in, "mint", trader.signer.address, amount_in)
        swaps.append(swap_exact_input(trader, d, token_in, amount_in, sqrt_price_limit_x96=target))
    return swaps


def twap_tick(w3: Web3, d: AaveUniswapDeployment, seconds: int, block: int | str = "latest") -> int:
    """The pool's mean tick over the last ``seconds`` (``observe``; rounded toward minus
    infinity, as Uniswap's OracleLibrary does). Reverts with "OLD" past the oldest observation."""
    upool = w3.eth.contract(address=d.uniswap_pool, abi=artifact("UniswapV3Pool").abi)
    cumulatives, _ = upool.functions.observe([seconds, 0]).call(block_identifier=block)
    return (int(cumulatives[1]) - int(cumulatives[0])) // seconds
