# pragma version ~=0.4.3
# pragma optimize codesize
"""
@title GMX-v2-shaped OrderHandler (stand-in, our own code)
@notice Creates, stores and cancels orders as GMX v2 does (gmx-synthetics
        contracts/order/OrderUtils.sol, contracts/exchange/OrderHandler.sol,
        contracts/gas/GasUtils.sol semantics):
        - the collateral of an increase and the WNT execution fee are what reached the OrderVault
          since its last record (recordTransferIn); the whole WNT amount becomes the order's
          execution fee, which must be at least GMX's minimum
          ((ESTIMATED_GAS_FEE_BASE_AMOUNT_V2_1 + ESTIMATED_GAS_FEE_PER_ORACLE_PRICE x (3 + swaps)
          + the order type's gas limit x ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR) x tx.gasprice),
          else InsufficientExecutionFee(minExecutionFee, executionFee);
        - the key is keccak256(abi.encode(dataStore, ++NONCE)); the order is listed in the
          DataStore sets ORDER_LIST and keccak256(abi.encode(ACCOUNT_ORDER_LIST, account));
        - a market order may be cancelled by its owner once REQUEST_EXPIRATION_TIME has passed
          since it was created (RequestNotYetCancellable before); a cancelled order's collateral
          goes back to its cancellationReceiver (or account) and its execution fee, in native
          ETH, to its account;
        - OrderCreated / OrderCancelled are emitted through the EventEmitter with GMX's item names.
        - executeOrder: an ORDER_KEEPER executes an order in a later block than its creation with
          the prices it supplies (min/max of the index and the short token), no later than the
          order's request expiration (OracleTimestampsAreLargerThanRequestExpirationTime: the
          keeper's transaction reverts, the owner cancels); bad prices revert the keeper's
          transaction and leave the order pending; any other failure (acceptable price
          missed, insufficient collateral, ...) cancels the order inside the keeper's successful
          transaction with GMX's error as reasonBytes, refunding the collateral; the keeper is paid
          (EXECUTION_GAS_FEE_BASE_AMOUNT_V2_1 + EXECUTION_GAS_FEE_PER_ORACLE_PRICE x 3 + gas used x
          EXECUTION_GAS_FEE_MULTIPLIER_FACTOR) x tx.gasprice out of the execution fee, the rest is
          refunded in ETH to the account (ExecutionFeeRefund).
        The stand-in supports MarketIncrease (2) and MarketDecrease (4) orders without swaps; the
        position arithmetic is in GmxPositionEngine (which also holds the market's pool).
@dev    Orders are kept here rather than field by field in the DataStore (GMX's OrderStoreUtils);
        getOrder/orderAccount expose them to the Reader and the ExchangeRouter.
"""
from ethereum.ercs import IERC20

# --- EventLogData as GMX's EventUtils (contracts/event/EventUtils.sol): named items per type ---
struct AddressKeyValue:
    key: String[64]
    value: address
struct AddressArrayKeyValue:
    key: String[64]
    value: DynArray[address, 8]
struct AddressItems:
    items: DynArray[AddressKeyValue, 12]
    arrayItems: DynArray[AddressArrayKeyValue, 2]
struct UintKeyValue:
    key: String[64]
    value: uint256
struct UintArrayKeyValue:
    key: String[64]
    value: DynArray[uint256, 8]
struct UintItems:
    items: DynArray[UintKeyValue, 40]
    arrayItems: DynArray[UintArrayKeyValue, 2]
struct IntKeyValue:
    key: String[64]
    value: int256
struct IntArrayKeyValue:
    key: String[64]
    value: DynArray[int256, 8]
struct IntItems:
    items: DynArray[IntKeyValue, 16]
    arrayItems: DynArray[IntArrayKeyValue, 2]
struct BoolKeyValue:
    key: String[64]
    value: bool
struct BoolArrayKeyValue:
    key: String[64]
    value: DynArray[bool, 8]
struct BoolItems:
    items: DynArray[BoolKeyValue, 8]
    arrayItems: DynArray[BoolArrayKeyValue, 2]
struct Bytes32KeyValue:
    key: String[64]
    value: bytes32
struct Bytes32ArrayKeyValue:
    key: String[64]
    value: DynArray[bytes32, 8]
struct Bytes32Items:
    items: DynArray[Bytes32KeyValue, 8]
    arrayItems: DynArray[Bytes32ArrayKeyValue, 2]
struct BytesKeyValue:
    key: String[64]
    value: Bytes[256]
struct BytesArrayKeyValue:
    key: String[64]
    value: DynArray[Bytes[256], 2]
struct BytesItems:
    items: DynArray[BytesKeyValue, 2]
    arrayItems: DynArray[BytesArrayKeyValue, 1]
struct StringKeyValue:
    key: String[64]
    value: String[128]
struct StringArrayKeyValue:
    key: String[64]
    value: DynArray[String[128], 2]
struct StringItems:
    items: DynArray[StringKeyValue, 2]
    arrayItems: DynArray[StringArrayKeyValue, 1]
struct EventLogData:
    addressItems: AddressItems
    uintItems: UintItems
    intItems: IntItems
    boolItems: BoolItems
    bytes32Items: Bytes32Items
    bytesItems: BytesItems
    stringItems: StringItems
# --- end EventLogData ---

# --- order structs as GMX's IBaseOrderUtils.CreateOrderParams and Order.Props ---
struct CreateOrderParamsAddresses:
    receiver: address
    cancellationReceiver: address
    callbackContract: address
    uiFeeReceiver: address
    market: address
    initialCollateralToken: address
    swapPath: DynArray[address, 4]
struct CreateOrderParamsNumbers:
    sizeDeltaUsd: uint256
    initialCollateralDeltaAmount: uint256
    triggerPrice: uint256
    acceptablePrice: uint256
    executionFee: uint256
    callbackGasLimit: uint256
    minOutputAmount: uint256
    validFromTime: uint256
struct CreateOrderParams:
    addresses: CreateOrderParamsAddresses
    numbers: CreateOrderParamsNumbers
    orderType: uint8
    decreasePositionSwapType: uint8
    isLong: bool
    shouldUnwrapNativeToken: bool
    autoCancel: bool
    referralCode: bytes32
    dataList: DynArray[bytes32, 8]
struct OrderAddresses:
    account: address
    receiver: address
    cancellationReceiver: address
    callbackContract: address
    uiFeeReceiver: address
    market: address
    initialCollateralToken: address
    swapPath: DynArray[address, 4]
struct OrderNumbers:
    orderType: uint8
    decreasePositionSwapType: uint8
    sizeDeltaUsd: uint256
    initialCollateralDeltaAmount: uint256
    triggerPrice: uint256
    acceptablePrice: uint256
    executionFee: uint256
    callbackGasLimit: uint256
    minOutputAmount: uint256
    updatedAtTime: uint256
    validFromTime: uint256
    srcChainId: uint256
struct OrderFlags:
    isLong: bool
    shouldUnwrapNativeToken: bool
    isFrozen: bool
    autoCancel: bool
struct OrderProps:
    addresses: OrderAddresses
    numbers: OrderNumbers
    flags: OrderFlags
    _dataList: DynArray[bytes32, 8]
# --- end order structs ---

struct MarketProps:
    marketToken: address
    indexToken: address
    longToken: address
    shortToken: address

interface IRoleStore:
    def hasRole(account: address, roleKey: bytes32) -> bool: view

interface IDataStore:
    def getUint(key: bytes32) -> uint256: view
    def getAddress(key: bytes32) -> address: view
    def incrementUint(key: bytes32, val: uint256) -> uint256: nonpayable
    def addBytes32(setKey: bytes32, val: bytes32): nonpayable
    def removeBytes32(setKey: bytes32, val: bytes32): nonpayable

interface IOrderVault:
    def recordTransferIn(token: address) -> uint256: nonpayable
    def transferOut(token: address, receiver: address, amount: uint256): nonpayable
    def transferOutNativeToken(wnt: address, receiver: address, amount: uint256): nonpayable

struct ExecParams:
    orderKey: bytes32
    account: address
    receiver: address
    market: address
    collateralToken: address
    longToken: address
    shortToken: address
    isLong: bool
    orderType: uint256
    sizeDeltaUsd: uint256
    collateralDeltaAmount: uint256
    acceptablePrice: uint256
    indexPriceMin: uint256
    indexPriceMax: uint256
    collateralPriceMin: uint256
    collateralPriceMax: uint256
    shortTokenPriceMin: uint256
    shortTokenPriceMax: uint256

interface IPositionEngine:
    def increase(p: ExecParams): nonpayable
    def decrease(p: ExecParams): nonpayable

interface IEventEmitter:
    def emitEventLog1(eventName: String[64], topic1: bytes32, eventData: EventLogData): nonpayable
    def emitEventLog2(eventName: String[64], topic1: bytes32, topic2: bytes32, eventData: EventLogData): nonpayable
    def emitOrderCreated(key: bytes32, o: OrderProps): nonpayable

FLOAT_PRECISION: constant(uint256) = 10**30
CONTROLLER: constant(bytes32) = 0x97adf037b2472f4a6a9825eff7d2dd45e37f2dc308df2a260d6a72af4189a65b
ORDER_KEEPER: constant(bytes32) = 0x40a07f8f0fc57fcf18b093d96362a8e661eaac7b7e6edbf66f242111f83a6794
WNT_KEY: constant(bytes32) = 0xfe9362e2c30d3539df13ca6093740ddefd950bcc6aefb509209cacb12ba04f06
NONCE_KEY: constant(bytes32) = 0x61d7b15962e47499cf052e59076ed26d83442f0a746870faeec94287c0f3d55f
ORDER_LIST_KEY: constant(bytes32) = 0x86f7cfd5d8f8404e5145c91bebb8484657420159dabd0753d6a59f3de3f7b8c1
ACCOUNT_ORDER_LIST_KEY: constant(bytes32) = 0xd008ab8798caa94b11c12ebc5bce5104c343552f5375d1bf3870b4b4a6e8d562
INCREASE_ORDER_GAS_LIMIT_KEY: constant(bytes32) = 0x983e0a7f5307213e84497f2543331fe5e404db14ddf98f98dc956e0ee3ab6875
DECREASE_ORDER_GAS_LIMIT_KEY: constant(bytes32) = 0xfce7a3444b72c2d30987163c1f2e6c00cffa03bf0b6ca2f077e8db006b4cae8b
SINGLE_SWAP_GAS_LIMIT_KEY: constant(bytes32) = 0x3be28fb346f7abc4a956a16d3739c8c4bfcca9385988c64bf86cdd16638c1f81
ESTIMATED_GAS_FEE_BASE_AMOUNT_KEY: constant(bytes32) = 0x39288f227e5db9a793e9f4afb15aa22b77dbb7e410ffc973c816a19a6ed921cd
ESTIMATED_GAS_FEE_PER_ORACLE_PRICE_KEY: constant(bytes32) = 0xf95915378e4358fb5f51ae0fd75853a15a29a978eb14b73d5c5b7d69d3b9fccc
ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR_KEY: constant(bytes32) = 0xce135f2a886cf6d862269f215b1e64498fa09cb04f90b771b163399df2a82b81
EXECUTION_GAS_FEE_BASE_AMOUNT_KEY: constant(bytes32) = 0x3f6fa256a0f23dcedf39a71b69828f9f2798c96ed183ecac67a1f77a2a8053f4
EXECUTION_GAS_FEE_PER_ORACLE_PRICE_KEY: constant(bytes32) = 0x335c1af4f0f3344a478b67aff6e7d3dc526f6aafe3dbd1ba2198c772551210cb
EXECUTION_GAS_FEE_MULTIPLIER_FACTOR_KEY: constant(bytes32) = 0x65b1cbab23a5e24597a3d4e2966e0205be2ea573a0eab06be214d7e63488148f
REQUEST_EXPIRATION_TIME_KEY: constant(bytes32) = 0xf664ba0f4e5389df44705cd100171228b74c4f050a9f00bd873e95d25c49a273

MARKET_SWAP: constant(uint8) = 0
LIMIT_SWAP: constant(uint8) = 1
MARKET_INCREASE: constant(uint8) = 2
LIMIT_INCREASE: constant(uint8) = 3
MARKET_DECREASE: constant(uint8) = 4

roleStore: public(immutable(address))
dataStore: public(immutable(address))
eventEmitter: public(immutable(address))
orderVault: public(immutable(address))
oracle: public(immutable(address))
referralStorage: public(immutable(address))

positionEngine: public(address)
markets: public(HashMap[address, MarketProps])
_orders: HashMap[bytes32, OrderProps]
_createdBlock: HashMap[bytes32, uint256]


@deploy
def __init__(_roleStore: address, _dataStore: address, _eventEmitter: address, _orderVault: address,
             _oracle: address, _referralStorage: address):
    roleStore = _roleStore
    dataStore = _dataStore
    eventEmitter = _eventEmitter
    orderVault = _orderVault
    oracle = _oracle
    referralStorage = _referralStorage


@internal
@view
def _onlyRole(role: bytes32, name: String[32]):
    if not staticcall IRoleStore(roleStore).hasRole(msg.sender, role):
        raw_revert(concat(method_id("Unauthorized(address,string)"), abi_encode(msg.sender, name)))


@external
def setPositionEngine(engine: address):
    """Wire the position engine once (it is deployed after this handler); CONTROLLER only."""
    self._onlyRole(CONTROLLER, "CONTROLLER")
    assert self.positionEngine == empty(address), "positionEngine already set"
    self.positionEngine = engine


@external
def setMarket(marketToken: address, indexToken: address, longToken: address, shortToken: address):
    """Register a market (GMX: MarketFactory.createMarket); CONTROLLER only."""
    self._onlyRole(CONTROLLER, "CONTROLLER")
    self.markets[marketToken] = MarketProps(marketToken=marketToken, indexToken=indexToken,
                                            longToken=longToken, shortToken=shortToken)


# ------------------------------------------------------------------ views

@view
@external
def getOrder(key: bytes32) -> OrderProps:
    return self._orders[key]


@view
@external
def orderAccount(key: bytes32) -> address:
    return self._orders[key].addresses.account


@view
@external
def accountOrderListKey(account: address) -> bytes32:
    return keccak256(abi_encode(ACCOUNT_ORDER_LIST_KEY, account))


# ------------------------------------------------------------------ execution fee (GasUtils)

@view
@internal
def _minExecutionFee(orderType: uint8, decreaseSwapType: uint8, callbackGasLimit: uint256) -> uint256:
    swaps: uint256 = 0
    estimated: uint256 = 0
    if orderType == MARKET_INCREASE or orderType == LIMIT_INCREASE:
        estimated = staticcall IDataStore(dataStore).getUint(INCREASE_ORDER_GAS_LIMIT_KEY) + callbackGasLimit
    else:
        if decreaseSwapType != 0:
            swaps = 1
        estimated = staticcall IDataStore(dataStore).getUint(DECREASE_ORDER_GAS_LIMIT_KEY) \
            + staticcall IDataStore(dataStore).getUint(SINGLE_SWAP_GAS_LIMIT_KEY) * swaps + callbackGasLimit
    oracle_prices: uint256 = 3      # estimateOrderOraclePriceCount(swapsCount = 0): 3 + swapPath length
    gas_limit: uint256 = staticcall IDataStore(dataStore).getUint(ESTIMATED_GAS_FEE_BASE_AMOUNT_KEY) \
        + staticcall IDataStore(dataStore).getUint(ESTIMATED_GAS_FEE_PER_ORACLE_PRICE_KEY) * oracle_prices \
        + estimated * staticcall IDataStore(dataStore).getUint(ESTIMATED_GAS_FEE_MULTIPLIER_FACTOR_KEY) // FLOAT_PRECISION
    return gas_limit * tx.gasprice


# ------------------------------------------------------------------ events

@pure
@internal
def _topic(account: address) -> bytes32:
    return convert(convert(account, uint160), bytes32)


@internal
def _emitOrderCancelled(key: bytes32, account: address, reason: String[128], reasonBytes: Bytes[256]):
    d: EventLogData = empty(EventLogData)
    d.bytes32Items.items.append(Bytes32KeyValue(key="key", value=key))
    d.addressItems.items.append(AddressKeyValue(key="account", value=account))
    d.stringItems.items.append(StringKeyValue(key="reason", value=reason))
    d.bytesItems.items.append(BytesKeyValue(key="reasonBytes", value=reasonBytes))
    extcall IEventEmitter(eventEmitter).emitEventLog2("OrderCancelled", key, self._topic(account), d)


@internal
def _emitExecutionFeeRefund(receiver: address, amount: uint256):
    d: EventLogData = empty(EventLogData)
    d.addressItems.items.append(AddressKeyValue(key="receiver", value=receiver))
    d.uintItems.items.append(UintKeyValue(key="refundFeeAmount", value=amount))
    extcall IEventEmitter(eventEmitter).emitEventLog1("ExecutionFeeRefund", self._topic(receiver), d)


# ------------------------------------------------------------------ create / cancel

@external
def createOrder(account: address, params: CreateOrderParams) -> bytes32:
    """Called by the ExchangeRouter (CONTROLLER) for `account`; returns the order key."""
    self._onlyRole(CONTROLLER, "CONTROLLER")
    if account == empty(address):
        raw_revert(method_id("EmptyAccount()"))
    if params.orderType != MARKET_INCREASE and params.orderType != MARKET_DECREASE:
        raw_revert(concat(method_id("OrderTypeCannotBeCreated(uint256)"),
                          abi_encode(convert(params.orderType, uint256))))
    assert len(params.addresses.swapPath) == 0, "stand-in: swapPath must be empty"
    if params.addresses.receiver == empty(address):
        raw_revert(method_id("EmptyReceiver()"))
    market: MarketProps = self.markets[params.addresses.market]
    if market.marketToken == empty(address):
        raw_revert(method_id("EmptyMarket()"))
    token: address = params.addresses.initialCollateralToken
    if token != market.longToken and token != market.shortToken:
        raw_revert(concat(method_id("InvalidCollateralTokenForMarket(address,address)"),
                          abi_encode(market.marketToken, token)))

    wnt: address = staticcall IDataStore(dataStore).getAddress(WNT_KEY)
    fee: uint256 = params.numbers.executionFee
    collateral: uint256 = params.numbers.initialCollateralDeltaAmount
    fee_recorded: bool = False
    if params.orderType == MARKET_INCREASE:
        collateral = extcall IOrderVault(orderVault).recordTransferIn(token)
        if token == wnt:
            # WNT collateral and fee arrive together: the fee is taken out of it
            if collateral < fee:
                raw_revert(concat(method_id("InsufficientWntAmountForExecutionFee(uint256,uint256)"),
                                  abi_encode(collateral, fee)))
            collateral -= fee
            fee_recorded = True
    if not fee_recorded:
        wnt_amount: uint256 = extcall IOrderVault(orderVault).recordTransferIn(wnt)
        if wnt_amount < fee:
            raw_revert(concat(method_id("InsufficientWntAmountForExecutionFee(uint256,uint256)"),
                              abi_encode(wnt_amount, fee)))
        fee = wnt_amount
    if params.numbers.sizeDeltaUsd == 0 and collateral == 0:
        raw_revert(method_id("EmptyOrder()"))
    min_fee: uint256 = self._minExecutionFee(params.orderType, params.decreasePositionSwapType,
                                             params.numbers.callbackGasLimit)
    if fee < min_fee:
        raw_revert(concat(method_id("InsufficientExecutionFee(uint256,uint256)"), abi_encode(min_fee, fee)))

    nonce: uint256 = extcall IDataStore(dataStore).incrementUint(NONCE_KEY, 1)
    key: bytes32 = keccak256(abi_encode(dataStore, nonce))
    o: OrderProps = OrderProps(
        addresses=OrderAddresses(
            account=account, receiver=params.addresses.receiver,
            cancellationReceiver=params.addresses.cancellationReceiver,
            callbackContract=params.addresses.callbackContract, uiFeeReceiver=params.addresses.uiFeeReceiver,
            market=params.addresses.market, initialCollateralToken=token, swapPath=params.addresses.swapPath),
        numbers=OrderNumbers(
            orderType=params.orderType, decreasePositionSwapType=params.decreasePositionSwapType,
            sizeDeltaUsd=params.numbers.sizeDeltaUsd, initialCollateralDeltaAmount=collateral,
            triggerPrice=params.numbers.triggerPrice, acceptablePrice=params.numbers.acceptablePrice,
            executionFee=fee, callbackGasLimit=params.numbers.callbackGasLimit,
            minOutputAmount=params.numbers.minOutputAmount, updatedAtTime=block.timestamp,
            validFromTime=params.numbers.validFromTime, srcChainId=0),
        flags=OrderFlags(isLong=params.isLong, shouldUnwrapNativeToken=params.shouldUnwrapNativeToken,
                         isFrozen=False, autoCancel=params.autoCancel),
        _dataList=params.dataList)
    self._orders[key] = o
    self._createdBlock[key] = block.number
    extcall IDataStore(dataStore).addBytes32(ORDER_LIST_KEY, key)
    extcall IDataStore(dataStore).addBytes32(keccak256(abi_encode(ACCOUNT_ORDER_LIST_KEY, account)), key)
    extcall IEventEmitter(eventEmitter).emitOrderCreated(key, o)
    return key


@internal
def _removeOrder(key: bytes32, account: address):
    self._orders[key] = empty(OrderProps)
    self._createdBlock[key] = 0
    extcall IDataStore(dataStore).removeBytes32(ORDER_LIST_KEY, key)
    extcall IDataStore(dataStore).removeBytes32(keccak256(abi_encode(ACCOUNT_ORDER_LIST_KEY, account)), key)


@internal
def _cancel(key: bytes32, o: OrderProps, reason: String[128], reasonBytes: Bytes[256], keeper: address,
            keeperFee: uint256):
    """Remove the order, return an increase's collateral and the execution fee (less `keeperFee`
    paid to `keeper`), emit OrderCancelled."""
    self._removeOrder(key, o.addresses.account)
    if o.numbers.orderType == MARKET_INCREASE and o.numbers.initialCollateralDeltaAmount > 0:
        receiver: address = o.addresses.cancellationReceiver
        if receiver == empty(address):
            receiver = o.addresses.account
        extcall IOrderVault(orderVault).transferOut(o.addresses.initialCollateralToken, receiver,
                                                    o.numbers.initialCollateralDeltaAmount)
    self._emitOrderCancelled(key, o.addresses.account, reason, reasonBytes)
    wnt: address = staticcall IDataStore(dataStore).getAddress(WNT_KEY)
    fee_for_keeper: uint256 = min(keeperFee, o.numbers.executionFee)
    if fee_for_keeper > 0:
        extcall IOrderVault(orderVault).transferOutNativeToken(wnt, keeper, fee_for_keeper)
    refund: uint256 = o.numbers.executionFee - fee_for_keeper
    if refund > 0:
        extcall IOrderVault(orderVault).transferOutNativeToken(wnt, o.addresses.account, refund)
        self._emitExecutionFeeRefund(o.addresses.account, refund)


@external
def cancelOrder(key: bytes32):
    """The owner's cancellation, through the ExchangeRouter (which checked the owner): a market
    order only once REQUEST_EXPIRATION_TIME has passed since it was created."""
    self._onlyRole(CONTROLLER, "CONTROLLER")
    o: OrderProps = self._orders[key]
    if o.addresses.account == empty(address):
        raw_revert(method_id("EmptyOrder()"))
    expiration: uint256 = staticcall IDataStore(dataStore).getUint(REQUEST_EXPIRATION_TIME_KEY)
    age: uint256 = block.timestamp - o.numbers.updatedAtTime
    if age < expiration:
        raw_revert(concat(method_id("RequestNotYetCancellable(uint256,uint256,string)"),
                          abi_encode(age, expiration, "Order")))
    self._cancel(key, o, "USER_INITIATED_CANCEL", b"", empty(address), 0)


# ------------------------------------------------------------------ execution by the keeper

@external
def executeOrderInner(key: bytes32, indexPriceMin: uint256, indexPriceMax: uint256, shortTokenPriceMin: uint256,
                      shortTokenPriceMax: uint256):
    """The part of an execution that may fail and be rolled back as a whole (collateral moved
    to the pool, the position changed); only this contract calls it."""
    assert msg.sender == self, "executeOrderInner: internal"
    o: OrderProps = self._orders[key]
    market: MarketProps = self.markets[o.addresses.market]
    p: ExecParams = ExecParams(
        orderKey=key, account=o.addresses.account, receiver=o.addresses.receiver, market=o.addresses.market,
        collateralToken=o.addresses.initialCollateralToken, longToken=market.longToken, shortToken=market.shortToken,
        isLong=o.flags.isLong, orderType=convert(o.numbers.orderType, uint256), sizeDeltaUsd=o.numbers.sizeDeltaUsd,
        collateralDeltaAmount=o.numbers.initialCollateralDeltaAmount, acceptablePrice=o.numbers.acceptablePrice,
        indexPriceMin=indexPriceMin, indexPriceMax=indexPriceMax, collateralPriceMin=shortTokenPriceMin,
        collateralPriceMax=shortTokenPriceMax, shortTokenPriceMin=shortTokenPriceMin,
        shortTokenPriceMax=shortTokenPriceMax)
    if p.collateralToken == market.longToken:
        # the stand-in's long token is the index token
        p.collateralPriceMin = indexPriceMin
        p.collateralPriceMax = indexPriceMax
    if o.numbers.orderType == MARKET_INCREASE:
        extcall IOrderVault(orderVault).transferOut(p.collateralToken, self.positionEngine, p.collateralDeltaAmount)
        extcall IPositionEngine(self.positionEngine).increase(p)
    else:
        extcall IPositionEngine(self.positionEngine).decrease(p)


@view
@internal
def _keeperFee(startingGas: uint256) -> uint256:
    """GasUtils.payExecutionFee: the keeper's share of the fee for the gas its execution used."""
    ds: IDataStore = IDataStore(dataStore)
    used: uint256 = startingGas - msg.gas
    gas: uint256 = staticcall ds.getUint(EXECUTION_GAS_FEE_BASE_AMOUNT_KEY) \
        + staticcall ds.getUint(EXECUTION_GAS_FEE_PER_ORACLE_PRICE_KEY) * 3 \
        + used * staticcall ds.getUint(EXECUTION_GAS_FEE_MULTIPLIER_FACTOR_KEY) // FLOAT_PRECISION
    return gas * tx.gasprice


@external
def executeOrder(key: bytes32, indexPriceMin: uint256, indexPriceMax: uint256, shortTokenPriceMin: uint256,
                 shortTokenPriceMax: uint256):
    """The stand-in's keeper entry (GMX: OrderHandler.executeOrder with signed oracle prices): the
    index token's (= the long token's) and the short token's min/max prices, GMX's units."""
    startingGas: uint256 = msg.gas
    self._onlyRole(ORDER_KEEPER, "ORDER_KEEPER")
    o: OrderProps = self._orders[key]
    if o.addresses.account == empty(address):
        raw_revert(method_id("EmptyOrder()"))
    if block.number <= self._createdBlock[key]:
        raw_revert(concat(method_id("OracleTimestampsAreSmallerThanRequired(uint256,uint256)"),
                          abi_encode(block.timestamp, o.numbers.updatedAtTime)))
    expiration: uint256 = staticcall IDataStore(dataStore).getUint(REQUEST_EXPIRATION_TIME_KEY)
    if block.timestamp > o.numbers.updatedAtTime + expiration:
        # a market order's prices may not be later than its request expiration: the keeper's
        # transaction reverts and the owner cancels it (ExchangeRouter.cancelOrder)
        raw_revert(concat(method_id("OracleTimestampsAreLargerThanRequestExpirationTime(uint256,uint256,uint256)"),
                          abi_encode(block.timestamp, o.numbers.updatedAtTime, expiration)))
    if indexPriceMin == 0 or indexPriceMin > indexPriceMax or shortTokenPriceMin == 0 \
            or shortTokenPriceMin > shortTokenPriceMax:
        raw_revert(concat(method_id("InvalidOrderPrices(uint256,uint256,uint256,uint256)"),
                          abi_encode(indexPriceMin, indexPriceMax, empty(uint256), convert(o.numbers.orderType, uint256))))
    ok: bool = False
    reason: Bytes[256] = b""
    ok, reason = raw_call(
        self,
        abi_encode(key, indexPriceMin, indexPriceMax, shortTokenPriceMin, shortTokenPriceMax,
                   method_id=method_id("executeOrderInner(bytes32,uint256,uint256,uint256,uint256)")),
        max_outsize=256, revert_on_failure=False)
    if not ok:
        self._cancel(key, o, "", reason, msg.sender, self._keeperFee(startingGas))
        return
    self._removeOrder(key, o.addresses.account)
    d: EventLogData = empty(EventLogData)
    d.bytes32Items.items.append(Bytes32KeyValue(key="key", value=key))
    d.addressItems.items.append(AddressKeyValue(key="account", value=o.addresses.account))
    d.uintItems.items.append(UintKeyValue(key="secondaryOrderType", value=0))
    extcall IEventEmitter(eventEmitter).emitEventLog2("OrderExecuted", key, self._topic(o.addresses.account), d)
    wnt: address = staticcall IDataStore(dataStore).getAddress(WNT_KEY)
    keeperFee: uint256 = min(self._keeperFee(startingGas), o.numbers.executionFee)
    if keeperFee > 0:
        extcall IOrderVault(orderVault).transferOutNativeToken(wnt, msg.sender, keeperFee)
    refund: uint256 = o.numbers.executionFee - keeperFee
    if refund > 0:
        extcall IOrderVault(orderVault).transferOutNativeToken(wnt, o.addresses.account, refund)
        self._emitExecutionFeeRefund(o.addresses.account, refund)
