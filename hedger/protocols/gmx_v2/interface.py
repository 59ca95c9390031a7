"""What the GMX v2 adapter uses of GMX's contracts, in one place: the functions it calls, the
events and event-item keys it reads, and GMX's DataStore key derivation.

The stand-in in ``contracts/Gmx*.vy`` is tested against this list (``tests/test_gmx_standin.py``:
each function has the same full ABI entry as GMX's, from ``abis/gmx-v2/``; each event is emitted
with these item names), so the adapter can import the list and rely on it for both the stand-in
and the real contracts.

Keys follow gmx-synthetics ``contracts/data/Keys.sol`` (client mirror in the pinned SDK:
``node_modules/@gmx-io/sdk/build/cjs/src/configs/dataStore.js``): a global key is
``keccak256(abi.encode("NAME"))``; a parameterised key is ``keccak256(abi.encode(NAME_KEY, ...))``.
"""

from __future__ import annotations

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

# --------------------------------------------------------------------------- functions the adapter calls
# contract (file under abis/gmx-v2/) -> function names. Every one must match GMX's ABI entry exactly.
ADAPTER_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "ExchangeRouter": ("multicall", "sendWnt", "sendTokens", "createOrder", "cancelOrder",
                       "claimFundingFees", "claimCollateral",
                       "dataStore", "router", "orderHandler", "eventEmitter", "roleStore"),
    # not containsBytes32/setters: Vyper reserves `value`, GMX's name of their second input
    "DataStore": ("getUint", "getInt", "getAddress", "getBool", "getBytes32Count", "getBytes32ValuesAt"),
    "Reader": ("getPositionInfo", "getAccountPositions", "getAccountOrders", "getMarketInfo", "getOrder",
               "getPosition"),
    "EventEmitter": ("roleStore",),
    "Router": ("roleStore",),
}

# Views with no ABI in the SDK 1.4.0 (see scripts/gmx_abis.py): GMX's signatures, name -> (inputs, outputs).
EXTRA_VIEWS: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "OrderHandler": {"orderVault": ((), ("address",)), "oracle": ((), ("address",)),
                     "referralStorage": ((), ("address",))},
    "RoleStore": {"hasRole": (("address", "bytes32"), ("bool",))},
}

# --------------------------------------------------------------------------- events the adapter reads
# GMX emits every protocol event as EventEmitter.EventLog1/EventLog2 (eventName, topics, EventLogData
# with named items per type). Event name -> item keys the adapter reads, by item type. Names follow
# gmx-synthetics contracts/order/OrderEventUtils.sol and contracts/position/PositionEventUtils.sol
# (note the literal key "values.priceImpactDiffUsd"); the SDK ships no event item names. The pending-
# impact items of the v2.2 line ("pendingImpactAmount", "proportionalPendingImpactUsd",
# "totalImpactUsd") are named after the Reader's fields and are not verified against a deployed
# contract: read them with a fallback.
ADAPTER_EVENTS: dict[str, dict[str, tuple[str, ...]]] = {
    "OrderCreated": {"bytes32Items": ("key",), "addressItems": ("account", "market", "initialCollateralToken"),
                     "uintItems": ("orderType", "sizeDeltaUsd", "initialCollateralDeltaAmount",
                                   "acceptablePrice", "executionFee", "updatedAtTime"),
                     "boolItems": ("isLong",)},
    "OrderExecuted": {"bytes32Items": ("key",), "addressItems": ("account",), "uintItems": ("secondaryOrderType",)},
    "OrderCancelled": {"bytes32Items": ("key",), "addressItems": ("account",), "stringItems": ("reason",),
                       "bytesItems": ("reasonBytes",)},
    "ExecutionFeeRefund": {"addressItems": ("receiver",), "uintItems": ("refundFeeAmount",)},
    "PositionIncrease": {"bytes32Items": ("orderKey", "positionKey"),
                         "addressItems": ("account", "market", "collateralToken"),
                         "uintItems": ("sizeInUsd", "sizeInTokens", "collateralAmount", "executionPrice",
                                       "sizeDeltaUsd", "sizeDeltaInTokens", "orderType"),
                         "intItems": ("collateralDeltaAmount", "priceImpactUsd", "priceImpactAmount"),
                         "boolItems": ("isLong",)},
    "PositionDecrease": {"bytes32Items": ("orderKey", "positionKey"),
                         "addressItems": ("account", "market", "collateralToken"),
                         "uintItems": ("sizeInUsd", "sizeInTokens", "collateralAmount", "executionPrice",
                                       "sizeDeltaUsd", "sizeDeltaInTokens", "collateralDeltaAmount",
                                       "values.priceImpactDiffUsd", "orderType"),
                         "intItems": ("priceImpactUsd", "basePnlUsd", "uncappedBasePnlUsd",
                                      "proportionalPendingImpactUsd"),
                         "boolItems": ("isLong",)},
    "PositionFeesCollected": {"bytes32Items": ("orderKey", "positionKey"),
                              "addressItems": ("market", "collateralToken"),
                              "uintItems": ("positionFeeAmount", "borrowingFeeAmount", "fundingFeeAmount",
                                            "totalCostAmount", "collateralTokenPrice.min")},
}

# --------------------------------------------------------------------------- order types (Order.OrderType)
MARKET_SWAP, LIMIT_SWAP, MARKET_INCREASE, LIMIT_INCREASE, MARKET_DECREASE, LIMIT_DECREASE = 0, 1, 2, 3, 4, 5
STOP_LOSS_DECREASE, LIQUIDATION = 6, 7

# --------------------------------------------------------------------------- key derivation (Keys.sol)


def hash_data(types: list[str], values: list[object]) -> bytes:
    """keccak256(abi.encode(values...)) (SDK utils/hash.js hashData)."""
    return keccak(encode(types, values))


def hash_string(name: str) -> bytes:
    """keccak256(abi.encode(name)): GMX's global keys and role keys (SDK hashString)."""
    return hash_data(["string"], [name])


def _key_with(name: str, types: list[str], values: list[object]) -> bytes:
    return hash_data(["bytes32", *types], [hash_string(name), *values])


# roles (gmx-synthetics contracts/role/Role.sol)
CONTROLLER = hash_string("CONTROLLER")
ORDER_KEEPER = hash_string("ORDER_KEEPER")
ROUTER_PLUGIN = hash_string("ROUTER_PLUGIN")
ROLE_ADMIN = hash_string("ROLE_ADMIN")
LIQUIDATION_KEEPER = hash_string("LIQUIDATION_KEEPER")

# global keys
WNT = hash_string("WNT")
NONCE = hash_string("NONCE")
ORDER_LIST = hash_string("ORDER_LIST")
POSITION_LIST = hash_string("POSITION_LIST")
REQUEST_EXPIRATION_TIME = hash_string("REQUEST_EXPIRATION_TIME")
MIN_COLLATERAL_USD = hash_string("MIN_COLLATERAL_USD")
INCREASE_ORDER_GAS_LIMIT = hash_string("INCREASE_ORDER_GAS_LIMIT")
DECREASE_ORDER_GAS_LIMIT = hash_string("DECREASE_ORDER_GAS_LIMIT")
SINGLE_SWAP_GAS_LIMIT = hash_string("SINGLE_SWAP_GAS_LIMIT")
ESTIMATED_GAS_FEE_BASE_AMOUNT = hash_string("ESTIMATED_GAS_FEE_BASE_AMOUNT_V2_1")
ESTIMATED_GAS_FEE_PER_ORACLE_PRICE = hash_string("ESTIMATED_GAS_FEE_PER_ORACLE_PRICE")
ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR = hash_string("ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR")
EXECUTION_GAS_FEE_BASE_AMOUNT = hash_string("EXECUTION_GAS_FEE_BASE_AMOUNT_V2_1")
EXECUTION_GAS_FEE_PER_ORACLE_PRICE = hash_string("EXECUTION_GAS_FEE_PER_ORACLE_PRICE")
EXECUTION_GAS_FEE_MULTIPLIER_FACTOR = hash_string("EXECUTION_GAS_FEE_MULTIPLIER_FACTOR")


def account_order_list_key(account: str) -> bytes:
    return _key_with("ACCOUNT_ORDER_LIST", ["address"], [to_checksum_address(account)])


def account_position_list_key(account: str) -> bytes:
    return _key_with("ACCOUNT_POSITION_LIST", ["address"], [to_checksum_address(account)])


def order_key(data_store: str, nonce: int) -> bytes:
    """NonceUtils.getKey: keccak256(abi.encode(dataStore, nonce))."""
    return hash_data(["address", "uint256"], [to_checksum_address(data_store), nonce])


def position_key(account: str, market: str, collateral_token: str, is_long: bool) -> bytes:
    """Position.getPositionKey: keccak256(abi.encode(account, market, collateralToken, isLong))."""
    return hash_data(["address", "address", "address", "bool"],
                     [to_checksum_address(account), to_checksum_address(market),
                      to_checksum_address(collateral_token), is_long])


def position_fee_factor_key(market: str, balance_was_improved: bool) -> bytes:
    return _key_with("POSITION_FEE_FACTOR", ["address", "bool"], [to_checksum_address(market), balance_was_improved])


def position_impact_factor_key(market: str, is_positive: bool) -> bytes:
    return _key_with("POSITION_IMPACT_FACTOR", ["address", "bool"], [to_checksum_address(market), is_positive])


def position_impact_exponent_factor_key(market: str, is_positive: bool) -> bytes:
    return _key_with("POSITION_IMPACT_EXPONENT_FACTOR", ["address", "bool"], [to_checksum_address(market), is_positive])


def max_position_impact_factor_key(market: str, is_positive: bool) -> bytes:
    return _key_with("MAX_POSITION_IMPACT_FACTOR", ["address", "bool"], [to_checksum_address(market), is_positive])


def max_position_impact_factor_for_liquidations_key(market: str) -> bytes:
    return _key_with("MAX_POSITION_IMPACT_FACTOR_FOR_LIQUIDATIONS", ["address"], [to_checksum_address(market)])


def position_impact_pool_amount_key(market: str) -> bytes:
    return _key_with("POSITION_IMPACT_POOL_AMOUNT", ["address"], [to_checksum_address(market)])


def min_collateral_factor_key(market: str) -> bytes:
    return _key_with("MIN_COLLATERAL_FACTOR", ["address"], [to_checksum_address(market)])


def min_collateral_factor_for_liquidation_key(market: str) -> bytes:
    return _key_with("MIN_COLLATERAL_FACTOR_FOR_LIQUIDATION", ["address"], [to_checksum_address(market)])


def open_interest_key(market: str, collateral_token: str, is_long: bool) -> bytes:
    return _key_with("OPEN_INTEREST", ["address", "address", "bool"],
                     [to_checksum_address(market), to_checksum_address(collateral_token), is_long])


def open_interest_in_tokens_key(market: str, collateral_token: str, is_long: bool) -> bytes:
    return _key_with("OPEN_INTEREST_IN_TOKENS", ["address", "address", "bool"],
                     [to_checksum_address(market), to_checksum_address(collateral_token), is_long])


def borrowing_factor_key(market: str, is_long: bool) -> bytes:
    return _key_with("BORROWING_FACTOR", ["address", "bool"], [to_checksum_address(market), is_long])


def cumulative_borrowing_factor_key(market: str, is_long: bool) -> bytes:
    return _key_with("CUMULATIVE_BORROWING_FACTOR", ["address", "bool"], [to_checksum_address(market), is_long])


def borrowing_exponent_factor_key(market: str, is_long: bool) -> bytes:
    return _key_with("BORROWING_EXPONENT_FACTOR", ["address", "bool"], [to_checksum_address(market), is_long])


def cumulative_borrowing_factor_updated_at_key(market: str, is_long: bool) -> bytes:
    return _key_with("CUMULATIVE_BORROWING_FACTOR_UPDATED_AT", ["address", "bool"], [to_checksum_address(market), is_long])


def pool_amount_key(market: str, token: str) -> bytes:
    return _key_with("POOL_AMOUNT", ["address", "address"], [to_checksum_address(market), to_checksum_address(token)])


def funding_exponent_factor_key(market: str) -> bytes:
    return _key_with("FUNDING_EXPONENT_FACTOR", ["address"], [to_checksum_address(market)])


def funding_updated_at_key(market: str) -> bytes:
    return _key_with("FUNDING_UPDATED_AT", ["address"], [to_checksum_address(market)])


def funding_fee_amount_per_size_key(market: str, collateral_token: str, is_long: bool) -> bytes:
    return _key_with("FUNDING_FEE_AMOUNT_PER_SIZE", ["address", "address", "bool"],
                     [to_checksum_address(market), to_checksum_address(collateral_token), is_long])


def claimable_funding_amount_per_size_key(market: str, collateral_token: str, is_long: bool) -> bytes:
    return _key_with("CLAIMABLE_FUNDING_AMOUNT_PER_SIZE", ["address", "address", "bool"],
                     [to_checksum_address(market), to_checksum_address(collateral_token), is_long])


def claimable_collateral_amount_key(market: str, token: str, time_key: int, account: str) -> bytes:
    return _key_with("CLAIMABLE_COLLATERAL_AMOUNT", ["address", "address", "uint256", "address"],
                     [to_checksum_address(market), to_checksum_address(token), time_key, to_checksum_address(account)])


CLAIMABLE_COLLATERAL_TIME_DIVISOR = hash_string("CLAIMABLE_COLLATERAL_TIME_DIVISOR")


def funding_factor_key(market: str) -> bytes:
    return _key_with("FUNDING_FACTOR", ["address"], [to_checksum_address(market)])


def claimable_funding_amount_key(market: str, token: str, account: str) -> bytes:
    return _key_with("CLAIMABLE_FUNDING_AMOUNT", ["address", "address", "address"],
                     [to_checksum_address(market), to_checksum_address(token), to_checksum_address(account)])


def ui_fee_factor_key(account: str) -> bytes:
    return _key_with("UI_FEE_FACTOR", ["address"], [to_checksum_address(account)])


def min_execution_fee(*, order_type: int, gas_price: int, increase_gas_limit: int, decrease_gas_limit: int,
                      base_amount: int, per_oracle_price: int, multiplier_factor: int, callback_gas_limit: int = 0,
                      swaps: int = 0, single_swap_gas_limit: int = 0, decrease_swap: bool = False) -> int:
    """GMX's minimum execution fee for an order (gmx-synthetics contracts/gas/GasUtils.sol
    estimateExecute{Increase,Decrease}OrderGasLimit + adjustGasLimitForEstimate; SDK
    utils/fees/executionFee.js): (base + per oracle price x (3 + swaps) + the order type's gas
    limit x multiplier / 1e30) x gas price, in native-token wei."""
    if order_type in (MARKET_INCREASE, LIMIT_INCREASE):
        estimated = increase_gas_limit + single_swap_gas_limit * swaps + callback_gas_limit
    elif order_type in (MARKET_DECREASE, LIMIT_DECREASE, STOP_LOSS_DECREASE):
        estimated = decrease_gas_limit + single_swap_gas_limit * (swaps + (1 if decrease_swap else 0)) + callback_gas_limit
    else:
        raise ValueError(f"order_type: {order_type} is not an increase or decrease order (2-6)")
    gas_limit = base_amount + per_oracle_price * (3 + swaps) + estimated * multiplier_factor // 10**30
    return gas_limit * gas_price


ITEM_TYPES = ("addressItems", "uintItems", "intItems", "boolItems", "bytes32Items", "bytesItems", "stringItems")


def event_items(event_data: object) -> dict[str, dict[str, object]]:
    """An EventLog1/EventLog2 ``eventData`` as decoded from GMX's EventEmitter ABI -> {item type:
    {key: value}}, array items under the same type (``swapPath``, ``dataList``). Accepts the
    decoder's mapping form (component names) or plain tuples in ABI order."""
    out: dict[str, dict[str, object]] = {}
    for i, kind in enumerate(ITEM_TYPES):
        group = event_data[kind] if isinstance(event_data, dict) or hasattr(event_data, "keys") else event_data[i]  # type: ignore[index]
        items = group["items"] if hasattr(group, "keys") else group[0]
        arrays = group["arrayItems"] if hasattr(group, "keys") else group[1]
        found: dict[str, object] = {}
        for kv in (*items, *arrays):
            key, value = (kv["key"], kv["value"]) if hasattr(kv, "keys") else (kv[0], kv[1])
            found[str(key)] = list(value) if isinstance(value, (list, tuple)) else value
        out[kind] = found
    return out
