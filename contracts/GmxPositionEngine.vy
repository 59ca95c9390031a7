# pragma version ~=0.4.3
"""
@title GMX-v2-shaped position engine (stand-in, our own code)
@notice Applies executed increase/decrease orders to positions and holds the market's pool of
        collateral (GMX keeps it in the market token; here this contract is the pool). Called only by
        the OrderHandler (CONTROLLER) inside the keeper's transaction. Semantics of
        gmx-synthetics contracts/position/IncreasePositionUtils.sol, DecreasePositionUtils.sol,
        DecreasePositionCollateralUtils.sol, PositionUtils.sol:
        - increase: the price impact is stored on the position as pendingImpactAmount (index
          tokens), sizeInTokens grows by the size at the oracle price, the position fee
          (POSITION_FEE_FACTOR for whether the trade improved the long/short balance) is taken
          from the collateral; the execution price must be <= acceptablePrice for a long, >= for a
          short (OrderNotFulfillableAtAcceptablePrice);
        - decrease: PnL of the closed share (long at the min price, short at the max), this
          decrease's impact plus the proportional pending impact (negative total capped by
          MAX_POSITION_IMPACT_FACTOR, the excess recorded as priceImpactDiffUsd), the position fee;
          the withdrawn collateral and any profit go to the receiver; a full close pays out the
          rest; execution price >= acceptablePrice for a long, <= for a short;
        - open interest (OPEN_INTEREST, OPEN_INTEREST_IN_TOKENS) and POSITION_IMPACT_POOL_AMOUNT in
          the DataStore, positions listed in POSITION_LIST and ACCOUNT_POSITION_LIST;
        - PositionIncrease / PositionDecrease / PositionFeesCollected through the EventEmitter.
        - after each change the position must pass GMX's liquidation rule with MIN_COLLATERAL_FACTOR
          (GmxPricing.liquidationCheck); a LIQUIDATION_KEEPER closes (liquidatePosition) a position
          the rule fails with MIN_COLLATERAL_FACTOR_FOR_LIQUIDATION (orderType 7 in the events).
        - before each change the market's funding and borrowing are accrued and the position charged
          its borrowing and funding (GmxMarketAccrual); they are part of its costs, the liquidation
          check included.
        - auto-deleveraging (GMX: AdlHandler.executeAdl, AdlUtils): an ADL_KEEPER reduces a profitable
          position by sizeDeltaUsd once IS_ADL_ENABLED(market, isLong) is set (GMX sets it in
          updateAdlState when the pool's PnL factor exceeds MAX_PNL_FACTOR_FOR_ADL; the stand-in takes
          the flag as set by its operator), as a MarketDecrease (orderType 4) paid to the account, at
          any price (acceptable price 0 for a long, max for a short); a losing position cannot be
          deleveraged (InvalidAdl: reducing it would not lower the pool's PnL).
        Not modelled: the trader PnL cap, swaps, referral discounts, the liquidation fee.
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

# --- Position.Props as GMX's (contracts/position/Position.sol) ---
struct PositionAddresses:
    account: address
    market: address
    collateralToken: address
struct PositionNumbers:
    sizeInUsd: uint256
    sizeInTokens: uint256
    collateralAmount: uint256
    pendingImpactAmount: int256
    borrowingFactor: uint256
    fundingFeeAmountPerSize: uint256
    longTokenClaimableFundingAmountPerSize: uint256
    shortTokenClaimableFundingAmountPerSize: uint256
    increasedAtTime: uint256
    decreasedAtTime: uint256
struct PositionFlags:
    isLong: bool
struct PositionProps:
    addresses: PositionAddresses
    numbers: PositionNumbers
    flags: PositionFlags
# --- end Position.Props ---

struct IncreasePricing:
    priceImpactUsd: int256
    priceImpactAmount: int256
    sizeDeltaInTokens: uint256
    executionPrice: uint256
    balanceWasImproved: bool

struct DecreasePricing:
    priceImpactUsd: int256
    proportionalPendingImpactAmount: int256
    proportionalPendingImpactUsd: int256
    totalImpactUsd: int256
    totalImpactAmount: int256
    priceImpactDiffUsd: uint256
    executionPrice: uint256
    balanceWasImproved: bool

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

struct Prices:
    indexMin: uint256
    indexMax: uint256
    shortMin: uint256
    shortMax: uint256

struct Settlement:
    borrowingFeeUsd: uint256
    borrowingFeeAmount: uint256
    fundingFeeAmount: uint256
    claimableLongTokenAmount: uint256
    claimableShortTokenAmount: uint256
    cumulativeBorrowingFactor: uint256
    fundingFeeAmountPerSize: uint256
    longTokenClaimableFundingAmountPerSize: uint256
    shortTokenClaimableFundingAmountPerSize: uint256

interface IAccrual:
    def accrue(market: address, longToken: address, shortToken: address, pr: Prices): nonpayable
    def settle(account: address, market: address, collateralToken: address, longToken: address, shortToken: address,
               isLong: bool, sizeInUsd: uint256, borrowingFactor: uint256, fundingFeeAmountPerSize: uint256,
               longClaimablePerSize: uint256, shortClaimablePerSize: uint256,
               collateralPriceMin: uint256) -> Settlement: nonpayable

interface IRoleStore:
    def hasRole(account: address, roleKey: bytes32) -> bool: view

interface IDataStore:
    def getUint(key: bytes32) -> uint256: view
    def incrementUint(key: bytes32, val: uint256) -> uint256: nonpayable
    def decrementUint(key: bytes32, val: uint256) -> uint256: nonpayable
    def applyBoundedDeltaToUint(key: bytes32, val: int256) -> uint256: nonpayable
    def addBytes32(setKey: bytes32, val: bytes32): nonpayable
    def removeBytes32(setKey: bytes32, val: bytes32): nonpayable
    def getBool(key: bytes32) -> bool: view

interface IPricing:
    def increasePricing(market: address, sizeDeltaUsd: uint256, isLong: bool, priceMin: uint256, priceMax: uint256,
                        longOI: uint256, shortOI: uint256, impactPool: uint256) -> IncreasePricing: view
    def decreasePricing(market: address, sizeInUsd: uint256, sizeInTokens: uint256, pendingImpactAmount: int256,
                        isLong: bool, sizeDeltaUsd: uint256, priceMin: uint256, priceMax: uint256,
                        longOI: uint256, shortOI: uint256, impactPool: uint256) -> DecreasePricing: view

interface IPricingCheck:
    def liquidationCheck(market: address, isLong: bool, sizeInUsd: uint256, sizeInTokens: uint256,
                         collateralAmount: uint256, pendingImpactAmount: int256, indexPriceMin: uint256,
                         indexPriceMax: uint256, collateralPriceMin: uint256, longOI: uint256, shortOI: uint256,
                         minCollateralFactor: uint256, otherCostAmount: uint256) -> (bool, uint256, int256, uint256): view

interface IEventEmitter:
    def emitEventLog1(eventName: String[64], topic1: bytes32, eventData: EventLogData): nonpayable

FLOAT_PRECISION: constant(uint256) = 10**30
CONTROLLER: constant(bytes32) = 0x97adf037b2472f4a6a9825eff7d2dd45e37f2dc308df2a260d6a72af4189a65b
LIQUIDATION_KEEPER: constant(bytes32) = 0x556c788ffc0574ec93966d808c170833d96489c9c58f5bcb3dadf711ba28720e
LIQUIDATION: constant(uint256) = 7
MARKET_DECREASE: constant(uint256) = 4
ADL_KEEPER: constant(bytes32) = 0xb37d64edaeaf5e634c13682dbd813f5a12fec9eb4f74433a089e7a3c3289af91
IS_ADL_ENABLED_KEY: constant(bytes32) = 0x42d606829004e41fa153cb60d91f53d9fd69270a28d3d5a7ebbc9475a66bb4b8
CLAIMABLE_COLLATERAL_AMOUNT_KEY: constant(bytes32) = 0x95b0f9aac7537ff0053f80e854f6a799bd4d922442234dd163aff199d65ffb48
CLAIMABLE_COLLATERAL_TIME_DIVISOR_KEY: constant(bytes32) = 0xd6f0cefee45c8294f4bd4fab381296d615e6db63979e0313550832965a54410b
POSITION_FEE_FACTOR_KEY: constant(bytes32) = 0x3999256650a6ebfea3dfbd4d56990f4d9048943a0e38ea6aabfc65122556c342
OPEN_INTEREST_KEY: constant(bytes32) = 0x4259c04608de5df0fa0e375507d66e8ffc81773c9f3dd501a181cbb349ae4fe0
OPEN_INTEREST_IN_TOKENS_KEY: constant(bytes32) = 0xc577a5cb08b8e2126f9b9796b8c85ef9d1b5047a5ff670fc18802878f0bfd2f8
POSITION_IMPACT_POOL_AMOUNT_KEY: constant(bytes32) = 0x8d05e344d016decb2483e1a2db6dfebdef3f67c47ac787f0ac505b4d45d3e16c
MIN_COLLATERAL_USD_KEY: constant(bytes32) = 0x6497f0f2c47edc68f06ede1c06d3475f939eb1a8341362460277bcd8ee7419f4
MIN_COLLATERAL_FACTOR_KEY: constant(bytes32) = 0x9fc265ee9783e670a7a731141f58b59bca5a260ba3eb3f893412fb613dc559f7
MIN_COLLATERAL_FACTOR_FOR_LIQUIDATION_KEY: constant(bytes32) = 0xc1c82b94002bf5bd86480807e32ee86f3d83d38b2853b1e48546acc11884eebd
POSITION_LIST_KEY: constant(bytes32) = 0x3fe95e2be5587b71e685e297dc351a27f09a363e7d84b38bb75158a8f06590ac
ACCOUNT_POSITION_LIST_KEY: constant(bytes32) = 0xa94015725b1182c6666b50aed1bb84d2b2cf9da39e6f5a5b19cd01f2f37738a1

roleStore: public(immutable(address))
dataStore: public(immutable(address))
eventEmitter: public(immutable(address))
pricing: public(immutable(address))
accrual: public(immutable(address))

_positions: HashMap[bytes32, PositionProps]


@deploy
def __init__(_roleStore: address, _dataStore: address, _eventEmitter: address, _pricing: address, _accrual: address):
    roleStore = _roleStore
    dataStore = _dataStore
    eventEmitter = _eventEmitter
    pricing = _pricing
    accrual = _accrual


@internal
@view
def _onlyController():
    if not staticcall IRoleStore(roleStore).hasRole(msg.sender, CONTROLLER):
        raw_revert(concat(method_id("Unauthorized(address,string)"), abi_encode(msg.sender, "CONTROLLER")))


@view
@external
def getPosition(key: bytes32) -> PositionProps:
    return self._positions[key]


@pure
@internal
def _positionKey(account: address, market: address, collateralToken: address, isLong: bool) -> bytes32:
    return keccak256(abi_encode(account, market, collateralToken, isLong))


@view
@internal
def _openInterest(market: address, longToken: address, shortToken: address, isLong: bool) -> uint256:
    ds: IDataStore = IDataStore(dataStore)
    oi: uint256 = staticcall ds.getUint(keccak256(abi_encode(OPEN_INTEREST_KEY, market, longToken, isLong)))
    if shortToken != longToken:
        oi += staticcall ds.getUint(keccak256(abi_encode(OPEN_INTEREST_KEY, market, shortToken, isLong)))
    return oi


@pure
@internal
def _topic(account: address) -> bytes32:
    return convert(convert(account, uint160), bytes32)


@pure
@internal
def _ceilDiv(a: uint256, b: uint256) -> uint256:
    return (a + b - 1) // b


@internal
def _emitPosition(name: String[64], p: ExecParams, pk: bytes32, pos: PositionProps, executionPrice: uint256,
                  sizeDeltaInTokens: uint256, collateralDelta: int256, priceImpactUsd: int256,
                  priceImpactAmount: int256, pnl: int256, pendingUsd: int256, diffUsd: uint256):
    d: EventLogData = empty(EventLogData)
    d.addressItems.items.append(AddressKeyValue(key="account", value=p.account))
    d.addressItems.items.append(AddressKeyValue(key="market", value=p.market))
    d.addressItems.items.append(AddressKeyValue(key="collateralToken", value=p.collateralToken))
    d.uintItems.items.append(UintKeyValue(key="sizeInUsd", value=pos.numbers.sizeInUsd))
    d.uintItems.items.append(UintKeyValue(key="sizeInTokens", value=pos.numbers.sizeInTokens))
    d.uintItems.items.append(UintKeyValue(key="collateralAmount", value=pos.numbers.collateralAmount))
    d.uintItems.items.append(UintKeyValue(key="borrowingFactor", value=pos.numbers.borrowingFactor))
    d.uintItems.items.append(UintKeyValue(key="fundingFeeAmountPerSize", value=pos.numbers.fundingFeeAmountPerSize))
    d.uintItems.items.append(UintKeyValue(key="executionPrice", value=executionPrice))
    d.uintItems.items.append(UintKeyValue(key="indexTokenPrice.max", value=p.indexPriceMax))
    d.uintItems.items.append(UintKeyValue(key="indexTokenPrice.min", value=p.indexPriceMin))
    d.uintItems.items.append(UintKeyValue(key="collateralTokenPrice.max", value=p.collateralPriceMax))
    d.uintItems.items.append(UintKeyValue(key="collateralTokenPrice.min", value=p.collateralPriceMin))
    d.uintItems.items.append(UintKeyValue(key="sizeDeltaUsd", value=p.sizeDeltaUsd))
    d.uintItems.items.append(UintKeyValue(key="sizeDeltaInTokens", value=sizeDeltaInTokens))
    d.uintItems.items.append(UintKeyValue(key="orderType", value=p.orderType))
    d.intItems.items.append(IntKeyValue(key="pendingImpactAmount", value=pos.numbers.pendingImpactAmount))
    d.intItems.items.append(IntKeyValue(key="priceImpactUsd", value=priceImpactUsd))
    if name == "PositionIncrease":
        d.uintItems.items.append(UintKeyValue(key="increasedAtTime", value=pos.numbers.increasedAtTime))
        d.intItems.items.append(IntKeyValue(key="collateralDeltaAmount", value=collateralDelta))
        d.intItems.items.append(IntKeyValue(key="priceImpactAmount", value=priceImpactAmount))
    else:
        d.uintItems.items.append(UintKeyValue(key="decreasedAtTime", value=pos.numbers.decreasedAtTime))
        d.uintItems.items.append(UintKeyValue(key="collateralDeltaAmount", value=convert(collateralDelta, uint256)))
        d.uintItems.items.append(UintKeyValue(key="values.priceImpactDiffUsd", value=diffUsd))
        d.intItems.items.append(IntKeyValue(key="totalImpactUsd", value=priceImpactAmount))
        d.intItems.items.append(IntKeyValue(key="proportionalPendingImpactUsd", value=pendingUsd))
        d.intItems.items.append(IntKeyValue(key="basePnlUsd", value=pnl))
        d.intItems.items.append(IntKeyValue(key="uncappedBasePnlUsd", value=pnl))
    d.boolItems.items.append(BoolKeyValue(key="isLong", value=p.isLong))
    d.bytes32Items.items.append(Bytes32KeyValue(key="orderKey", value=p.orderKey))
    d.bytes32Items.items.append(Bytes32KeyValue(key="positionKey", value=pk))
    extcall IEventEmitter(eventEmitter).emitEventLog1(name, self._topic(p.account), d)


@internal
def _emitFees(p: ExecParams, pk: bytes32, feeFactor: uint256, feeAmount: uint256, isIncrease: bool, st: Settlement):
    d: EventLogData = empty(EventLogData)
    d.addressItems.items.append(AddressKeyValue(key="market", value=p.market))
    d.addressItems.items.append(AddressKeyValue(key="collateralToken", value=p.collateralToken))
    d.addressItems.items.append(AddressKeyValue(key="trader", value=p.account))
    d.uintItems.items.append(UintKeyValue(key="collateralTokenPrice.min", value=p.collateralPriceMin))
    d.uintItems.items.append(UintKeyValue(key="collateralTokenPrice.max", value=p.collateralPriceMax))
    d.uintItems.items.append(UintKeyValue(key="tradeSizeUsd", value=p.sizeDeltaUsd))
    d.uintItems.items.append(UintKeyValue(key="fundingFeeAmount", value=st.fundingFeeAmount))
    d.uintItems.items.append(UintKeyValue(key="claimableLongTokenAmount", value=st.claimableLongTokenAmount))
    d.uintItems.items.append(UintKeyValue(key="claimableShortTokenAmount", value=st.claimableShortTokenAmount))
    d.uintItems.items.append(UintKeyValue(key="latestFundingFeeAmountPerSize", value=st.fundingFeeAmountPerSize))
    d.uintItems.items.append(UintKeyValue(key="borrowingFeeUsd", value=st.borrowingFeeUsd))
    d.uintItems.items.append(UintKeyValue(key="borrowingFeeAmount", value=st.borrowingFeeAmount))
    d.uintItems.items.append(UintKeyValue(key="positionFeeFactor", value=feeFactor))
    d.uintItems.items.append(UintKeyValue(key="positionFeeAmount", value=feeAmount))
    d.uintItems.items.append(UintKeyValue(key="totalCostAmountExcludingFunding", value=feeAmount + st.borrowingFeeAmount))
    d.uintItems.items.append(UintKeyValue(key="totalCostAmount", value=feeAmount + st.borrowingFeeAmount + st.fundingFeeAmount))
    d.boolItems.items.append(BoolKeyValue(key="isIncrease", value=isIncrease))
    d.bytes32Items.items.append(Bytes32KeyValue(key="orderKey", value=p.orderKey))
    d.bytes32Items.items.append(Bytes32KeyValue(key="positionKey", value=pk))
    extcall IEventEmitter(eventEmitter).emitEventLog1("PositionFeesCollected", self._topic(p.market), d)


@internal
def _settle(pos: PositionProps, p: ExecParams) -> (PositionProps, uint256, Settlement):
    """Accrue the market, then charge the position its borrowing and funding since its last update
    (received funding becomes claimable); returns it updated, its cost in collateral, the details."""
    extcall IAccrual(accrual).accrue(p.market, p.longToken, p.shortToken,
                                     Prices(indexMin=p.indexPriceMin, indexMax=p.indexPriceMax,
                                            shortMin=p.shortTokenPriceMin, shortMax=p.shortTokenPriceMax))
    st: Settlement = extcall IAccrual(accrual).settle(
        p.account, p.market, p.collateralToken, p.longToken, p.shortToken, p.isLong, pos.numbers.sizeInUsd,
        pos.numbers.borrowingFactor, pos.numbers.fundingFeeAmountPerSize,
        pos.numbers.longTokenClaimableFundingAmountPerSize, pos.numbers.shortTokenClaimableFundingAmountPerSize,
        p.collateralPriceMin)
    q: PositionProps = pos
    q.numbers.borrowingFactor = st.cumulativeBorrowingFactor
    q.numbers.fundingFeeAmountPerSize = st.fundingFeeAmountPerSize
    q.numbers.longTokenClaimableFundingAmountPerSize = st.longTokenClaimableFundingAmountPerSize
    q.numbers.shortTokenClaimableFundingAmountPerSize = st.shortTokenClaimableFundingAmountPerSize
    return q, st.borrowingFeeAmount + st.fundingFeeAmount, st


@external
def payOut(token: address, receiver: address, amount: uint256):
    """The pool pays a claim (claimFundingFees through the ExchangeRouter); CONTROLLER only."""
    self._onlyController()
    assert extcall IERC20(token).transfer(receiver, amount, default_return_value=True), "pool: transfer failed"


@view
@internal
def _feeFactor(market: address, improved: bool) -> uint256:
    return staticcall IDataStore(dataStore).getUint(keccak256(abi_encode(POSITION_FEE_FACTOR_KEY, market, improved)))


@view
@internal
def _check(pos: PositionProps, p: ExecParams, factorKey: bytes32, otherCost: uint256) -> (bool, uint256, int256, uint256):
    return staticcall IPricingCheck(pricing).liquidationCheck(
        p.market, p.isLong, pos.numbers.sizeInUsd, pos.numbers.sizeInTokens, pos.numbers.collateralAmount,
        pos.numbers.pendingImpactAmount, p.indexPriceMin, p.indexPriceMax, p.collateralPriceMin,
        self._openInterest(p.market, p.longToken, p.shortToken, True),
        self._openInterest(p.market, p.longToken, p.shortToken, False),
        staticcall IDataStore(dataStore).getUint(keccak256(abi_encode(factorKey, p.market))), otherCost)


@pure
@internal
def _reason(code: uint256) -> String[32]:
    if code == 1:
        return "min collateral"
    if code == 2:
        return "< 0"
    return "min collateral for leverage"


@view
@internal
def _validatePosition(pos: PositionProps, p: ExecParams):
    """After a change the position must not be liquidatable with MIN_COLLATERAL_FACTOR
    (PositionUtils.validatePosition): LiquidatablePosition(reason, remaining, min USD, for leverage)."""
    if pos.numbers.sizeInTokens == 0:
        raw_revert(method_id("EmptySizeDeltaInTokens()"))
    bad: bool = False
    code: uint256 = 0
    remaining: int256 = 0
    forLeverage: uint256 = 0
    bad, code, remaining, forLeverage = self._check(pos, p, MIN_COLLATERAL_FACTOR_KEY, 0)
    if bad:
        raw_revert(concat(method_id("LiquidatablePosition(string,int256,int256,int256)"),
                          abi_encode(self._reason(code), remaining,
                                     convert(staticcall IDataStore(dataStore).getUint(MIN_COLLATERAL_USD_KEY), int256),
                                     convert(forLeverage, int256))))


@internal
def _updateOpenInterest(p: ExecParams, usd: int256, tokens: int256):
    ds: IDataStore = IDataStore(dataStore)
    extcall ds.applyBoundedDeltaToUint(keccak256(abi_encode(OPEN_INTEREST_KEY, p.market, p.collateralToken, p.isLong)), usd)
    extcall ds.applyBoundedDeltaToUint(
        keccak256(abi_encode(OPEN_INTEREST_IN_TOKENS_KEY, p.market, p.collateralToken, p.isLong)), tokens)


@external
def increase(p: ExecParams):
    self._onlyController()
    pk: bytes32 = self._positionKey(p.account, p.market, p.collateralToken, p.isLong)
    pos: PositionProps = self._positions[pk]
    if pos.addresses.account == empty(address):
        pos.addresses = PositionAddresses(account=p.account, market=p.market, collateralToken=p.collateralToken)
        pos.flags.isLong = p.isLong
        extcall IDataStore(dataStore).addBytes32(POSITION_LIST_KEY, pk)
        extcall IDataStore(dataStore).addBytes32(keccak256(abi_encode(ACCOUNT_POSITION_LIST_KEY, p.account)), pk)
    cost: uint256 = 0
    st: Settlement = empty(Settlement)
    pos, cost, st = self._settle(pos, p)
    r: IncreasePricing = empty(IncreasePricing)
    if p.sizeDeltaUsd > 0:
        r = staticcall IPricing(pricing).increasePricing(
            p.market, p.sizeDeltaUsd, p.isLong, p.indexPriceMin, p.indexPriceMax,
            self._openInterest(p.market, p.longToken, p.shortToken, True),
            self._openInterest(p.market, p.longToken, p.shortToken, False),
            staticcall IDataStore(dataStore).getUint(keccak256(abi_encode(POSITION_IMPACT_POOL_AMOUNT_KEY, p.market))))
        if (p.isLong and r.executionPrice > p.acceptablePrice) or (not p.isLong and r.executionPrice < p.acceptablePrice):
            raw_revert(concat(method_id("OrderNotFulfillableAtAcceptablePrice(uint256,uint256)"),
                              abi_encode(r.executionPrice, p.acceptablePrice)))
    else:
        r.executionPrice = p.indexPriceMin
        if p.isLong:
            r.executionPrice = p.indexPriceMax
    feeFactor: uint256 = self._feeFactor(p.market, r.balanceWasImproved)
    feeAmount: uint256 = p.sizeDeltaUsd * feeFactor // FLOAT_PRECISION // p.collateralPriceMin
    collateralDelta: int256 = convert(p.collateralDeltaAmount, int256) - convert(feeAmount + cost, int256)
    if collateralDelta < 0 and convert(pos.numbers.collateralAmount, int256) + collateralDelta < 0:
        raw_revert(concat(method_id("InsufficientCollateralAmount(uint256,int256)"),
                          abi_encode(pos.numbers.collateralAmount, collateralDelta)))
    pos.numbers.collateralAmount = convert(convert(pos.numbers.collateralAmount, int256) + collateralDelta, uint256)
    pos.numbers.sizeInUsd += p.sizeDeltaUsd
    pos.numbers.sizeInTokens += r.sizeDeltaInTokens
    pos.numbers.pendingImpactAmount += r.priceImpactAmount
    pos.numbers.increasedAtTime = block.timestamp
    self._positions[pk] = pos
    self._updateOpenInterest(p, convert(p.sizeDeltaUsd, int256), convert(r.sizeDeltaInTokens, int256))
    if pos.numbers.sizeInUsd > 0:
        self._validatePosition(pos, p)
    self._emitPosition("PositionIncrease", p, pk, pos, r.executionPrice, r.sizeDeltaInTokens, collateralDelta,
                       r.priceImpactUsd, r.priceImpactAmount, 0, 0, 0)
    self._emitFees(p, pk, feeFactor, feeAmount, True, st)


@external
def decrease(p: ExecParams):
    self._onlyController()
    pk: bytes32 = self._positionKey(p.account, p.market, p.collateralToken, p.isLong)
    pos: PositionProps = self._positions[pk]
    if pos.numbers.sizeInUsd == 0:
        raw_revert(method_id("EmptyPosition()"))
    cost: uint256 = 0
    st: Settlement = empty(Settlement)
    pos, cost, st = self._settle(pos, p)
    self._decrease(p, False, pk, pos, cost, st)


@external
def liquidatePosition(p: ExecParams):
    """A LIQUIDATION_KEEPER closes a position that GMX's rule, with
    MIN_COLLATERAL_FACTOR_FOR_LIQUIDATION, says is liquidatable (GMX: LiquidationHandler); else
    PositionShouldNotBeLiquidated. Whatever collateral remains after the costs goes to the account;
    a shortfall is the pool's."""
    if not staticcall IRoleStore(roleStore).hasRole(msg.sender, LIQUIDATION_KEEPER):
        raw_revert(concat(method_id("Unauthorized(address,string)"), abi_encode(msg.sender, "LIQUIDATION_KEEPER")))
    pk: bytes32 = self._positionKey(p.account, p.market, p.collateralToken, p.isLong)
    pos: PositionProps = self._positions[pk]
    if pos.numbers.sizeInUsd == 0:
        raw_revert(method_id("EmptyPosition()"))
    bad: bool = False
    code: uint256 = 0
    remaining: int256 = 0
    forLeverage: uint256 = 0
    cost: uint256 = 0
    st: Settlement = empty(Settlement)
    pos, cost, st = self._settle(pos, p)
    bad, code, remaining, forLeverage = self._check(pos, p, MIN_COLLATERAL_FACTOR_FOR_LIQUIDATION_KEY, cost)
    if not bad:
        raw_revert(concat(method_id("PositionShouldNotBeLiquidated(string,int256,int256,int256)"),
                          abi_encode("", remaining,
                                     convert(staticcall IDataStore(dataStore).getUint(MIN_COLLATERAL_USD_KEY), int256),
                                     convert(forLeverage, int256))))
    q: ExecParams = p
    q.receiver = p.account
    q.orderType = LIQUIDATION
    q.sizeDeltaUsd = pos.numbers.sizeInUsd
    q.collateralDeltaAmount = 0
    self._decrease(q, True, pk, pos, cost, st)


@external
def executeAdl(p: ExecParams):
    """An ADL_KEEPER reduces ``p.account``'s position by ``p.sizeDeltaUsd`` (GMX: AdlHandler.executeAdl):
    only while IS_ADL_ENABLED(market, isLong), only a profitable position (else InvalidAdl)."""
    if not staticcall IRoleStore(roleStore).hasRole(msg.sender, ADL_KEEPER):
        raw_revert(concat(method_id("Unauthorized(address,string)"), abi_encode(msg.sender, "ADL_KEEPER")))
    if not staticcall IDataStore(dataStore).getBool(keccak256(abi_encode(IS_ADL_ENABLED_KEY, p.market, p.isLong))):
        raw_revert(method_id("AdlNotEnabled()"))
    pk: bytes32 = self._positionKey(p.account, p.market, p.collateralToken, p.isLong)
    pos: PositionProps = self._positions[pk]
    if pos.numbers.sizeInUsd == 0:
        raw_revert(method_id("EmptyPosition()"))
    if p.sizeDeltaUsd == 0 or p.sizeDeltaUsd > pos.numbers.sizeInUsd:
        raw_revert(concat(method_id("InvalidSizeDeltaForAdl(uint256,uint256)"),
                          abi_encode(p.sizeDeltaUsd, pos.numbers.sizeInUsd)))
    price: uint256 = p.indexPriceMax
    if p.isLong:
        price = p.indexPriceMin
    value: uint256 = pos.numbers.sizeInTokens * price
    profitable: bool = value > pos.numbers.sizeInUsd
    if not p.isLong:
        profitable = value < pos.numbers.sizeInUsd
    if not profitable:
        raw_revert(method_id("InvalidAdl()"))
    cost: uint256 = 0
    st: Settlement = empty(Settlement)
    pos, cost, st = self._settle(pos, p)
    q: ExecParams = p
    q.receiver = p.account
    q.orderType = MARKET_DECREASE
    q.collateralDeltaAmount = 0
    q.acceptablePrice = max_value(uint256)
    if p.isLong:
        q.acceptablePrice = 0
    q.orderKey = keccak256(abi_encode(p.account, pk, block.timestamp, "ADL"))
    self._decrease(q, False, pk, pos, cost, st)


@internal
def _decrease(p: ExecParams, isLiquidation: bool, pk: bytes32, pos: PositionProps, cost: uint256, st: Settlement):
    if p.sizeDeltaUsd > pos.numbers.sizeInUsd:
        raw_revert(concat(method_id("InvalidDecreaseOrderSize(uint256,uint256)"),
                          abi_encode(p.sizeDeltaUsd, pos.numbers.sizeInUsd)))
    if p.collateralDeltaAmount > pos.numbers.collateralAmount:
        raw_revert(concat(method_id("InsufficientCollateralAmount(uint256,int256)"),
                          abi_encode(pos.numbers.collateralAmount, -convert(p.collateralDeltaAmount, int256))))
    poolKey: bytes32 = keccak256(abi_encode(POSITION_IMPACT_POOL_AMOUNT_KEY, p.market))
    r: DecreasePricing = staticcall IPricing(pricing).decreasePricing(
        p.market, pos.numbers.sizeInUsd, pos.numbers.sizeInTokens, pos.numbers.pendingImpactAmount, p.isLong,
        p.sizeDeltaUsd, p.indexPriceMin, p.indexPriceMax,
        self._openInterest(p.market, p.longToken, p.shortToken, True),
        self._openInterest(p.market, p.longToken, p.shortToken, False),
        staticcall IDataStore(dataStore).getUint(poolKey))
    if p.sizeDeltaUsd > 0 and not isLiquidation:
        if (p.isLong and r.executionPrice < p.acceptablePrice) or (not p.isLong and r.executionPrice > p.acceptablePrice):
            raw_revert(concat(method_id("OrderNotFulfillableAtAcceptablePrice(uint256,uint256)"),
                              abi_encode(r.executionPrice, p.acceptablePrice)))
    # PnL of the closed share (PositionUtils.getPositionPnlUsd; long valued at min, short at max)
    pnl: int256 = 0
    tokensClosed: uint256 = 0
    if p.sizeDeltaUsd > 0:
        price: uint256 = p.indexPriceMax
        if p.isLong:
            price = p.indexPriceMin
        value: int256 = convert(pos.numbers.sizeInTokens * price, int256)
        total: int256 = convert(pos.numbers.sizeInUsd, int256) - value
        if p.isLong:
            total = -total
        if p.sizeDeltaUsd == pos.numbers.sizeInUsd:
            tokensClosed = pos.numbers.sizeInTokens
        elif p.isLong:
            tokensClosed = self._ceilDiv(pos.numbers.sizeInTokens * p.sizeDeltaUsd, pos.numbers.sizeInUsd)
        else:
            tokensClosed = pos.numbers.sizeInTokens * p.sizeDeltaUsd // pos.numbers.sizeInUsd
        magnitude: int256 = convert(convert(abs(total), uint256) * tokensClosed // pos.numbers.sizeInTokens, int256)
        pnl = magnitude
        if total < 0:
            pnl = -magnitude
    feeFactor: uint256 = self._feeFactor(p.market, r.balanceWasImproved)
    feeAmount: uint256 = p.sizeDeltaUsd * feeFactor // FLOAT_PRECISION // p.collateralPriceMin
    # collateral (DecreasePositionCollateralUtils.processCollateral, without swaps)
    remaining: int256 = convert(pos.numbers.collateralAmount - p.collateralDeltaAmount, int256)
    output: uint256 = p.collateralDeltaAmount
    if pnl > 0:
        output += convert(pnl, uint256) // p.collateralPriceMax
    else:
        remaining -= convert(self._ceilDiv(convert(-pnl, uint256), p.collateralPriceMin), int256)
    if r.totalImpactUsd > 0:
        output += convert(r.totalImpactUsd, uint256) // p.collateralPriceMax
    else:
        remaining -= convert(self._ceilDiv(convert(-r.totalImpactUsd, uint256), p.collateralPriceMin), int256)
    remaining -= convert(feeAmount + cost, int256)
    if r.priceImpactDiffUsd > 0:
        # negative impact beyond the cap: taken now, claimable later (claimCollateral, by time key)
        diffAmount: uint256 = r.priceImpactDiffUsd // p.collateralPriceMin
        remaining -= convert(diffAmount, int256)
        divisor: uint256 = max(staticcall IDataStore(dataStore).getUint(CLAIMABLE_COLLATERAL_TIME_DIVISOR_KEY), 1)
        extcall IDataStore(dataStore).incrementUint(keccak256(abi_encode(
            CLAIMABLE_COLLATERAL_AMOUNT_KEY, p.market, p.collateralToken, block.timestamp // divisor, p.account)), diffAmount)
    if remaining < 0 and isLiquidation:
        remaining = 0       # the pool absorbs what the collateral cannot pay
    if remaining < 0:
        raw_revert(concat(method_id("InsufficientFundsToPayForCosts(uint256,string)"),
                          abi_encode(convert(-remaining, uint256) * p.collateralPriceMin, "collateral")))
    extcall IDataStore(dataStore).applyBoundedDeltaToUint(poolKey, -r.totalImpactAmount)
    pos.numbers.sizeInUsd -= p.sizeDeltaUsd
    pos.numbers.sizeInTokens -= tokensClosed
    pos.numbers.pendingImpactAmount -= r.proportionalPendingImpactAmount
    pos.numbers.collateralAmount = convert(remaining, uint256)
    pos.numbers.decreasedAtTime = block.timestamp
    self._updateOpenInterest(p, -convert(p.sizeDeltaUsd, int256), -convert(tokensClosed, int256))
    if pos.numbers.sizeInUsd == 0:
        output += pos.numbers.collateralAmount
        pos.numbers.collateralAmount = 0
        self._positions[pk] = empty(PositionProps)
        extcall IDataStore(dataStore).removeBytes32(POSITION_LIST_KEY, pk)
        extcall IDataStore(dataStore).removeBytes32(keccak256(abi_encode(ACCOUNT_POSITION_LIST_KEY, p.account)), pk)
    else:
        self._positions[pk] = pos
        self._validatePosition(pos, p)
    if output > 0:
        assert extcall IERC20(p.collateralToken).transfer(p.receiver, output, default_return_value=True), "pool: transfer failed"
    self._emitPosition("PositionDecrease", p, pk, pos, r.executionPrice, tokensClosed,
                       convert(p.collateralDeltaAmount, int256), r.priceImpactUsd, r.totalImpactUsd, pnl,
                       r.proportionalPendingImpactUsd, r.priceImpactDiffUsd)
    self._emitFees(p, pk, feeFactor, feeAmount, False, st)
