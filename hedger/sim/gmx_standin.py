"""Deploy the GMX-v2-shaped stand-in (``contracts/Gmx*.vy``) on a local chain and wire it as GMX
wires its contracts: a RoleStore, a DataStore holding the configuration under GMX's keys, an
EventEmitter, a Router that only the ExchangeRouter may pull approved tokens through, an OrderVault,
an OrderHandler (with its keeper entry ``executeOrder``), the position engine that holds the
market's pool and applies fills, the pricing (impact, execution prices) and the ExchangeRouter, plus the wrapped native token (WNT, also the market's index
and long token) and a USDC-like collateral token, as GMX's ETH/USD [WETH-USDC] market.

GMX publishes no bytecode, so the hedger's GMX adapter is tested on this stand-in; its functions
and events are checked against GMX's own ABIs (``tests/test_gmx_standin.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from web3 import Web3

from hedger.chain.abi import contract_artifact
from hedger.protocols.gmx_v2 import interface as gi
from hedger.sim.deploy import deploy_contract, transact
from hedger.chain.executor import TxSender

FLOAT = 10**30          # GMX's 30-decimal factors and USD


@dataclass(frozen=True)
class GmxParams:
    """DataStore configuration of the stand-in (30-decimal factors, USD with 30 decimals, gas in
    gas units, seconds). Defaults are of the order of GMX's Arbitrum ETH/USD market."""

    request_expiration_time: int = 300
    increase_order_gas_limit: int = 3_000_000
    decrease_order_gas_limit: int = 3_000_000
    single_swap_gas_limit: int = 1_000_000
    estimated_gas_fee_base_amount: int = 600_000
    estimated_gas_fee_per_oracle_price: int = 40_000
    estimated_gas_fee_multiplier_factor: int = FLOAT          # 1.0
    execution_gas_fee_base_amount: int = 600_000
    execution_gas_fee_per_oracle_price: int = 40_000
    execution_gas_fee_multiplier_factor: int = FLOAT
    position_fee_factor_improved: int = 4 * FLOAT // 10_000    # 0.04% when the trade improves balance
    position_fee_factor_not_improved: int = 6 * FLOAT // 10_000  # 0.06% otherwise
    min_collateral_usd: int = 1 * FLOAT                         # $1
    min_collateral_factor: int = 5 * FLOAT // 1000              # 0.5% (max leverage 200x)
    min_collateral_factor_for_liquidation: int = 5 * FLOAT // 1000
    position_impact_factor_positive: int = 5 * FLOAT // 10**11      # 5e-11 x imbalance^2 (USD)
    position_impact_factor_negative: int = 1 * FLOAT // 10**10      # 1e-10
    position_impact_exponent_factor: int = 2 * FLOAT                # both sides
    max_position_impact_factor_positive: int = 5 * FLOAT // 1000    # 0.5% of the size delta
    max_position_impact_factor_negative: int = 5 * FLOAT // 1000
    max_position_impact_factor_for_liquidations: int = 1 * FLOAT // 100
    position_impact_pool_amount: int = 10 * 10**18                  # index tokens (WETH) paying positive impact
    pool_liquidity_usdc: int = 10_000_000                           # whole USDC in the pool (pays profits)
    pool_amount_long_token: int = 3_000 * 10**18                    # POOL_AMOUNT of WETH (borrowing's pool USD)
    borrowing_factor: int = 6 * FLOAT // 10**8                      # x reserved / pool, per second, both sides
    borrowing_exponent_factor: int = FLOAT
    funding_factor: int = 2 * FLOAT // 10**8                        # x |imbalance| / total OI, per second
    funding_exponent_factor: int = FLOAT
    claimable_collateral_time_divisor: int = 3600


@dataclass(frozen=True)
class GmxStandin:
    """Addresses of a deployed stand-in (all checksummed)."""

    exchange_router: str
    router: str
    data_store: str
    role_store: str
    event_emitter: str
    order_handler: str
    order_vault: str
    position_engine: str
    pricing: str
    reader: str
    accrual: str
    referral_storage: str
    wnt: str
    usdc: str
    market: str
    deployer: str
    chain_id: int
    keepers: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def set_uint(sender: TxSender, data_store: str, key: bytes, value: int) -> None:
    transact(sender, "GmxDataStore", data_store, "setUint", key, value)


def configure(sender: TxSender, s: GmxStandin, params: GmxParams) -> None:
    """Write ``params`` into the DataStore under GMX's keys (the deployer holds CONTROLLER)."""
    m = s.market
    values: list[tuple[bytes, int]] = [
        (gi.REQUEST_EXPIRATION_TIME, params.request_expiration_time),
        (gi.INCREASE_ORDER_GAS_LIMIT, params.increase_order_gas_limit),
        (gi.DECREASE_ORDER_GAS_LIMIT, params.decrease_order_gas_limit),
        (gi.SINGLE_SWAP_GAS_LIMIT, params.single_swap_gas_limit),
        (gi.ESTIMATED_GAS_FEE_BASE_AMOUNT, params.estimated_gas_fee_base_amount),
        (gi.ESTIMATED_GAS_FEE_PER_ORACLE_PRICE, params.estimated_gas_fee_per_oracle_price),
        (gi.ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR, params.estimated_gas_fee_multiplier_factor),
        (gi.EXECUTION_GAS_FEE_BASE_AMOUNT, params.execution_gas_fee_base_amount),
        (gi.EXECUTION_GAS_FEE_PER_ORACLE_PRICE, params.execution_gas_fee_per_oracle_price),
        (gi.EXECUTION_GAS_FEE_MULTIPLIER_FACTOR, params.execution_gas_fee_multiplier_factor),
        (gi.position_fee_factor_key(m, True), params.position_fee_factor_improved),
        (gi.position_fee_factor_key(m, False), params.position_fee_factor_not_improved),
        (gi.MIN_COLLATERAL_USD, params.min_collateral_usd),
        (gi.min_collateral_factor_key(m), params.min_collateral_factor),
        (gi.min_collateral_factor_for_liquidation_key(m), params.min_collateral_factor_for_liquidation),
        (gi.position_impact_factor_key(m, True), params.position_impact_factor_positive),
        (gi.position_impact_factor_key(m, False), params.position_impact_factor_negative),
        (gi.position_impact_exponent_factor_key(m, True), params.position_impact_exponent_factor),
        (gi.position_impact_exponent_factor_key(m, False), params.position_impact_exponent_factor),
        (gi.max_position_impact_factor_key(m, True), params.max_position_impact_factor_positive),
        (gi.max_position_impact_factor_key(m, False), params.max_position_impact_factor_negative),
        (gi.max_position_impact_factor_for_liquidations_key(m), params.max_position_impact_factor_for_liquidations),
        (gi.position_impact_pool_amount_key(m), params.position_impact_pool_amount),
        (gi.pool_amount_key(m, s.wnt), params.pool_amount_long_token),
        (gi.pool_amount_key(m, s.usdc), params.pool_liquidity_usdc * 10**6),
        (gi.borrowing_factor_key(m, True), params.borrowing_factor),
        (gi.borrowing_factor_key(m, False), params.borrowing_factor),
        (gi.borrowing_exponent_factor_key(m, True), params.borrowing_exponent_factor),
        (gi.borrowing_exponent_factor_key(m, False), params.borrowing_exponent_factor),
        (gi.funding_factor_key(m), params.funding_factor),
        (gi.funding_exponent_factor_key(m), params.funding_exponent_factor),
        (gi.CLAIMABLE_COLLATERAL_TIME_DIVISOR, params.claimable_collateral_time_divisor),
    ]
    for key, value in values:
        set_uint(sender, s.data_store, key, value)


def deploy_gmx_standin(sender: TxSender, *, params: GmxParams | None = None, usdc: str | None = None,
                       keepers: tuple[str, ...] = ()) -> GmxStandin:
    """Deploy and wire the stand-in; ``keepers`` get GMX's ORDER_KEEPER and LIQUIDATION_KEEPER roles. With ``usdc`` given,
    that token is the market's short (collateral) token instead of a new 6-decimal reference USDC."""
    params = params or GmxParams()
    deployer = sender.signer.address
    role_store = deploy_contract(sender, "GmxRoleStore")
    data_store = deploy_contract(sender, "GmxDataStore", role_store)
    event_emitter = deploy_contract(sender, "GmxEventEmitter", role_store)
    router = deploy_contract(sender, "GmxRouter", role_store)
    order_vault = deploy_contract(sender, "GmxOrderVault", role_store)
    referral_storage = deploy_contract(sender, "GmxReferralStorage")
    wnt = deploy_contract(sender, "GmxWrappedNative")
    own_usdc = usdc is None
    if usdc is None:
        usdc = deploy_contract(sender, "ReferenceToken", "USD Coin (reference)", "USDC", 6)
    market = deploy_contract(sender, "ReferenceToken", "GMX Market ETH/USD (stand-in)", "GM", 18)
    order_handler = deploy_contract(sender, "GmxOrderHandler", role_store, data_store, event_emitter, order_vault,
                                    "0x" + "00" * 20, referral_storage)
    pricing = deploy_contract(sender, "GmxPricing", data_store)
    accrual = deploy_contract(sender, "GmxMarketAccrual", role_store, data_store, pricing)
    position_engine = deploy_contract(sender, "GmxPositionEngine", role_store, data_store, event_emitter, pricing,
                                      accrual)
    reader = deploy_contract(sender, "GmxReader")
    exchange_router = deploy_contract(sender, "GmxExchangeRouter", router, role_store, data_store, event_emitter,
                                      order_handler)

    def grant(account: str, role: bytes) -> None:
        transact(sender, "GmxRoleStore", role_store, "grantRole", account, role)

    grant(deployer, gi.CONTROLLER)              # the stand-in's configuration keeper
    grant(exchange_router, gi.CONTROLLER)
    grant(exchange_router, gi.ROUTER_PLUGIN)
    grant(order_handler, gi.CONTROLLER)
    grant(position_engine, gi.CONTROLLER)
    grant(accrual, gi.CONTROLLER)
    for keeper in keepers:
        grant(keeper, gi.ORDER_KEEPER)
        grant(keeper, gi.LIQUIDATION_KEEPER)
        grant(keeper, gi.hash_string("ADL_KEEPER"))
    transact(sender, "GmxDataStore", data_store, "setAddress", gi.WNT, wnt)
    transact(sender, "GmxOrderHandler", order_handler, "setMarket", market, wnt, wnt, usdc)
    transact(sender, "GmxOrderHandler", order_handler, "setPositionEngine", position_engine)
    # where the stand-in's Reader finds the contracts GMX would read through the DataStore itself
    for name, address in (("STANDIN_ORDER_HANDLER", order_handler), ("STANDIN_POSITION_ENGINE", position_engine),
                          ("STANDIN_PRICING", pricing), ("STANDIN_ACCRUAL", accrual)):
        transact(sender, "GmxDataStore", data_store, "setAddress", gi.hash_string(name), address)
    s = GmxStandin(exchange_router=exchange_router, router=router, data_store=data_store, role_store=role_store,
                   event_emitter=event_emitter, order_handler=order_handler, order_vault=order_vault,
                   position_engine=position_engine, pricing=pricing, reader=reader, accrual=accrual,
                   referral_storage=referral_storage, wnt=wnt, usdc=Web3.to_checksum_address(usdc), market=market,
                   deployer=deployer, chain_id=sender.chain_id, keepers=tuple(keepers))
    configure(sender, s, params)
    if own_usdc and params.pool_liquidity_usdc > 0:
        transact(sender, "ReferenceToken", s.usdc, "mint", position_engine, params.pool_liquidity_usdc * 10**6)
    return s


def execute_order(keeper: TxSender, s: GmxStandin, key: bytes, index_price: int, *, spread: int = 0,
                  short_token_price: int = 10**24) -> dict[str, Any]:
    """The local keeper: execute order ``key`` at ``index_price`` (GMX units: USD per smallest unit
    x 1e30, e.g. 3000 * 10**12 for ETH at $3,000) with min/max ``index_price`` -/+ ``spread``, the
    short token (USDC) at ``short_token_price``. The keeper's transaction succeeds also when the
    order is cancelled (acceptable price missed)."""
    c = keeper.w3.eth.contract(address=s.order_handler, abi=contract_artifact("GmxOrderHandler")["abi"])
    data = c.functions.executeOrder(key, index_price - spread, index_price + spread, short_token_price,
                                    short_token_price)._encode_transaction_data()
    return keeper.send(s.order_handler, data)



def liquidate_position(keeper: TxSender, s: GmxStandin, account: str, is_long: bool, index_price: int, *,
                       spread: int = 0, collateral_price: int = 10**24) -> dict[str, Any]:
    """The local liquidation keeper: close ``account``'s position in the stand-in's market (USDC
    collateral) if GMX's rule says it is liquidatable at ``index_price`` (else the call reverts
    with PositionShouldNotBeLiquidated)."""
    c = keeper.w3.eth.contract(address=s.position_engine, abi=contract_artifact("GmxPositionEngine")["abi"])
    zero = b"\x00" * 32
    params = (zero, Web3.to_checksum_address(account), Web3.to_checksum_address(account), s.market, s.usdc, s.wnt,
              s.usdc, is_long, gi.LIQUIDATION, 0, 0, 0, index_price - spread, index_price + spread,
              collateral_price, collateral_price, collateral_price, collateral_price)
    return keeper.send(s.position_engine, c.functions.liquidatePosition(params)._encode_transaction_data())


def execute_adl(keeper: TxSender, s: GmxStandin, account: str, is_long: bool, size_delta_usd: int, index_price: int, *,
                collateral_price: int = 10**24) -> dict[str, Any]:
    """The local ADL keeper (GMX: AdlHandler.executeAdl): reduce ``account``'s profitable position by
    ``size_delta_usd`` (USD x 1e30) at ``index_price`` once IS_ADL_ENABLED(market, is_long) is set
    (:func:`enable_adl`)."""
    c = keeper.w3.eth.contract(address=s.position_engine, abi=contract_artifact("GmxPositionEngine")["abi"])
    zero = b"\x00" * 32
    params = (zero, Web3.to_checksum_address(account), Web3.to_checksum_address(account), s.market, s.usdc, s.wnt,
              s.usdc, is_long, gi.MARKET_DECREASE, size_delta_usd, 0, 0, index_price, index_price,
              collateral_price, collateral_price, collateral_price, collateral_price)
    return keeper.send(s.position_engine, c.functions.executeAdl(params)._encode_transaction_data())


def enable_adl(sender: TxSender, s: GmxStandin, is_long: bool, enabled: bool = True) -> None:
    """IS_ADL_ENABLED(market, is_long): what GMX's updateAdlState sets when the pool's PnL factor
    exceeds MAX_PNL_FACTOR_FOR_ADL (the stand-in takes it from its operator)."""
    key = gi.hash_data(["bytes32", "address", "bool"], [gi.hash_string("IS_ADL_ENABLED"), s.market, is_long])
    transact(sender, "GmxDataStore", s.data_store, "setBool", key, enabled)


def fund(sender: TxSender, s: GmxStandin, to: str, usdc_amount: int) -> None:
    """Mint ``usdc_amount`` (native units) of the stand-in's USDC to ``to`` (the deployer owns it).
    Execution fees are paid in the chain's native token, which anvil's dev accounts already hold."""
    transact(sender, "ReferenceToken", s.usdc, "mint", Web3.to_checksum_address(to), usdc_amount)
