# pragma version ~=0.4.3
"""
@title GMX-v2-shaped Reader (stand-in, our own code)
@notice GMX's Reader views with exactly its return shapes (structs generated from
        abis/gmx-v2/Reader.json by scripts/gmx_standin_structs.py): getOrder, getAccountOrders,
        getPosition, getAccountPositions, getMarketInfo, getPositionInfo. Like GMX's, every view takes
        the DataStore; the stand-in finds its OrderHandler, position engine and pricing there
        (keys STANDIN_ORDER_HANDLER, STANDIN_POSITION_ENGINE, STANDIN_PRICING).
        getPositionInfo prices closing `sizeDeltaUsd` (or the whole position) at the given prices as
        gmx-synthetics contracts/reader/ReaderPositionUtils.sol does: this close's impact plus the
        proportional pending impact (executionPriceResult), the position fee, the base PnL of the
        closed share, and pnlAfterPriceImpactUsd = basePnlUsd + totalImpactUsd.
        Its fees include the borrowing and funding pending since the position's last update,
        accrued to now (GmxMarketAccrual's views), as GMX's Reader does; getMarketInfo gives the
        borrowing factor per second per side and the funding factor per second and paying side.
        Referral, ui and liquidation fees are zero on the stand-in.
"""

# --- generated structs (scripts/gmx_standin_structs.py) ---
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
struct OrderInfo:
    orderKey: bytes32
    order: OrderProps
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
struct PriceProps:
    min: uint256
    max: uint256
struct MarketPrices:
    indexTokenPrice: PriceProps
    longTokenPrice: PriceProps
    shortTokenPrice: PriceProps
struct MarketProps:
    marketToken: address
    indexToken: address
    longToken: address
    shortToken: address
struct CollateralType:
    longToken: uint256
    shortToken: uint256
struct PositionType:
    long: CollateralType
    short: CollateralType
struct BaseFundingValues:
    fundingFeeAmountPerSize: PositionType
    claimableFundingAmountPerSize: PositionType
struct GetNextFundingAmountPerSizeResult:
    longsPayShorts: bool
    fundingFactorPerSecond: uint256
    nextSavedFundingFactorPerSecond: int256
    fundingFeeAmountPerSizeDelta: PositionType
    claimableFundingAmountPerSizeDelta: PositionType
struct VirtualInventory:
    virtualPoolAmountForLongToken: uint256
    virtualPoolAmountForShortToken: uint256
    virtualInventoryForPositions: int256
struct MarketInfo:
    market: MarketProps
    borrowingFactorPerSecondForLongs: uint256
    borrowingFactorPerSecondForShorts: uint256
    baseFunding: BaseFundingValues
    nextFunding: GetNextFundingAmountPerSizeResult
    virtualInventory: VirtualInventory
    isDisabled: bool
struct PositionReferralFees:
    referralCode: bytes32
    affiliate: address
    trader: address
    totalRebateFactor: uint256
    affiliateRewardFactor: uint256
    adjustedAffiliateRewardFactor: uint256
    traderDiscountFactor: uint256
    totalRebateAmount: uint256
    traderDiscountAmount: uint256
    affiliateRewardAmount: uint256
struct PositionProFees:
    traderTier: uint256
    traderDiscountFactor: uint256
    traderDiscountAmount: uint256
struct PositionFundingFees:
    fundingFeeAmount: uint256
    claimableLongTokenAmount: uint256
    claimableShortTokenAmount: uint256
    latestFundingFeeAmountPerSize: uint256
    latestLongTokenClaimableFundingAmountPerSize: uint256
    latestShortTokenClaimableFundingAmountPerSize: uint256
struct PositionBorrowingFees:
    borrowingFeeUsd: uint256
    borrowingFeeAmount: uint256
    borrowingFeeReceiverFactor: uint256
    borrowingFeeAmountForFeeReceiver: uint256
struct PositionUiFees:
    uiFeeReceiver: address
    uiFeeReceiverFactor: uint256
    uiFeeAmount: uint256
struct PositionLiquidationFees:
    liquidationFeeUsd: uint256
    liquidationFeeAmount: uint256
    liquidationFeeReceiverFactor: uint256
    liquidationFeeAmountForFeeReceiver: uint256
struct PositionFees:
    referral: PositionReferralFees
    pro: PositionProFees
    funding: PositionFundingFees
    borrowing: PositionBorrowingFees
    ui: PositionUiFees
    liquidation: PositionLiquidationFees
    collateralTokenPrice: PriceProps
    positionFeeFactor: uint256
    protocolFeeAmount: uint256
    positionFeeReceiverFactor: uint256
    feeReceiverAmount: uint256
    feeAmountForPool: uint256
    positionFeeAmountForPool: uint256
    positionFeeAmount: uint256
    totalCostAmountExcludingFunding: uint256
    totalCostAmount: uint256
    totalDiscountAmount: uint256
struct ExecutionPriceResult:
    priceImpactUsd: int256
    executionPrice: uint256
    balanceWasImproved: bool
    proportionalPendingImpactUsd: int256
    totalImpactUsd: int256
    priceImpactDiffUsd: uint256
struct PositionInfo:
    positionKey: bytes32
    position: PositionProps
    fees: PositionFees
    executionPriceResult: ExecutionPriceResult
    basePnlUsd: int256
    uncappedBasePnlUsd: int256
    pnlAfterPriceImpactUsd: int256
# --- end generated structs ---

struct DecreasePricing:
    priceImpactUsd: int256
    proportionalPendingImpactAmount: int256
    proportionalPendingImpactUsd: int256
    totalImpactUsd: int256
    totalImpactAmount: int256
    priceImpactDiffUsd: uint256
    executionPrice: uint256
    balanceWasImproved: bool

interface IDataStore:
    def getUint(key: bytes32) -> uint256: view
    def getAddress(key: bytes32) -> address: view
    def getBytes32ValuesAt(setKey: bytes32, start: uint256, end: uint256) -> DynArray[bytes32, 1000]: view

interface IOrderHandler:
    def getOrder(key: bytes32) -> OrderProps: view
    def markets(market: address) -> MarketProps: view

interface IPositionEngine:
    def getPosition(key: bytes32) -> PositionProps: view

interface IPricing:
    def decreasePricing(market: address, sizeInUsd: uint256, sizeInTokens: uint256, pendingImpactAmount: int256,
                        isLong: bool, sizeDeltaUsd: uint256, priceMin: uint256, priceMax: uint256,
                        longOI: uint256, shortOI: uint256, impactPool: uint256) -> DecreasePricing: view

struct Prices:
    indexMin: uint256
    indexMax: uint256
    shortMin: uint256
    shortMax: uint256

interface IAccrual:
    def borrowingFactorPerSecond(market: address, longToken: address, shortToken: address, isLong: bool,
                                 pr: Prices) -> uint256: view
    def fundingFactorPerSecond(market: address, longToken: address, shortToken: address) -> (uint256, bool): view
    def nextCumulativeBorrowingFactor(market: address, longToken: address, shortToken: address, isLong: bool,
                                      pr: Prices) -> uint256: view
    def nextFundingPerSize(market: address, longToken: address, shortToken: address, collateralToken: address,
                           isLong: bool, pr: Prices) -> (uint256, uint256, uint256): view

FLOAT_PRECISION: constant(uint256) = 10**30
FUNDING_PRECISION: constant(uint256) = 10**45
MAX_LIST: constant(uint256) = 64
STANDIN_ACCRUAL_KEY: constant(bytes32) = 0x6d51ba6a8f794beef68540e82ee6b292d060e7e1444f34e5eeff42c22b80c917
FUNDING_FEE_AMOUNT_PER_SIZE_KEY: constant(bytes32) = 0x4c12833ffbe25653fd28535e4277f4c8ada589407177c25b4e4760ab736a64ba
CLAIMABLE_FUNDING_AMOUNT_PER_SIZE_KEY: constant(bytes32) = 0xeb7c85784645884cb4a464c83381b211da0a5822b2a986804aa3cba063c130cd
STANDIN_ORDER_HANDLER_KEY: constant(bytes32) = 0xb57eaf8c1b51b8ed6419438c30fc545b372f97f2dc6a5ab5d6f516d222289502  # keccak256(abi.encode("STANDIN_ORDER_HANDLER"))
STANDIN_POSITION_ENGINE_KEY: constant(bytes32) = 0x4a2102c38a5fe349952ea20458b4a1f8d9536aeb33312e77706cc5bf17dbb7d1  # keccak256(abi.encode("STANDIN_POSITION_ENGINE"))
STANDIN_PRICING_KEY: constant(bytes32) = 0x169cac3cc72acac6ed12826cef6b9d71920a4f3da0314006db0ad14ff636a56a  # keccak256(abi.encode("STANDIN_PRICING"))
POSITION_FEE_FACTOR_KEY: constant(bytes32) = 0x3999256650a6ebfea3dfbd4d56990f4d9048943a0e38ea6aabfc65122556c342
OPEN_INTEREST_KEY: constant(bytes32) = 0x4259c04608de5df0fa0e375507d66e8ffc81773c9f3dd501a181cbb349ae4fe0
POSITION_IMPACT_POOL_AMOUNT_KEY: constant(bytes32) = 0x8d05e344d016decb2483e1a2db6dfebdef3f67c47ac787f0ac505b4d45d3e16c
ACCOUNT_POSITION_LIST_KEY: constant(bytes32) = 0xa94015725b1182c6666b50aed1bb84d2b2cf9da39e6f5a5b19cd01f2f37738a1
ACCOUNT_ORDER_LIST_KEY: constant(bytes32) = 0xd008ab8798caa94b11c12ebc5bce5104c343552f5375d1bf3870b4b4a6e8d562


@view
@internal
def _handler(dataStore: address) -> IOrderHandler:
    return IOrderHandler(staticcall IDataStore(dataStore).getAddress(STANDIN_ORDER_HANDLER_KEY))


@view
@internal
def _engine(dataStore: address) -> IPositionEngine:
    return IPositionEngine(staticcall IDataStore(dataStore).getAddress(STANDIN_POSITION_ENGINE_KEY))


@view
@internal
def _page(dataStore: address, setKey: bytes32, start: uint256, end: uint256) -> DynArray[bytes32, MAX_LIST]:
    keys: DynArray[bytes32, 1000] = staticcall IDataStore(dataStore).getBytes32ValuesAt(setKey, start, end)
    assert len(keys) <= MAX_LIST, "Reader: at most 64 entries per call (use start/end pages)"
    out: DynArray[bytes32, MAX_LIST] = []
    for k: bytes32 in keys:
        out.append(k)
    return out


@view
@external
def getOrder(dataStore: address, key: bytes32) -> OrderProps:
    return staticcall self._handler(dataStore).getOrder(key)


@view
@external
def getAccountOrders(dataStore: address, account: address, start: uint256, end: uint256) -> DynArray[OrderInfo, MAX_LIST]:
    handler: IOrderHandler = self._handler(dataStore)
    out: DynArray[OrderInfo, MAX_LIST] = []
    keys: DynArray[bytes32, MAX_LIST] = self._page(dataStore, keccak256(abi_encode(ACCOUNT_ORDER_LIST_KEY, account)), start, end)
    for k: bytes32 in keys:
        out.append(OrderInfo(orderKey=k, order=staticcall handler.getOrder(k)))
    return out


@view
@external
def getPosition(dataStore: address, key: bytes32) -> PositionProps:
    return staticcall self._engine(dataStore).getPosition(key)


@view
@external
def getAccountPositions(dataStore: address, account: address, start: uint256, end: uint256) -> DynArray[PositionProps, MAX_LIST]:
    engine: IPositionEngine = self._engine(dataStore)
    out: DynArray[PositionProps, MAX_LIST] = []
    keys: DynArray[bytes32, MAX_LIST] = self._page(dataStore, keccak256(abi_encode(ACCOUNT_POSITION_LIST_KEY, account)), start, end)
    for k: bytes32 in keys:
        out.append(staticcall engine.getPosition(k))
    return out


@view
@internal
def _accrual(dataStore: address) -> IAccrual:
    return IAccrual(staticcall IDataStore(dataStore).getAddress(STANDIN_ACCRUAL_KEY))


@pure
@internal
def _prices(prices: MarketPrices) -> Prices:
    return Prices(indexMin=prices.indexTokenPrice.min, indexMax=prices.indexTokenPrice.max,
                  shortMin=prices.shortTokenPrice.min, shortMax=prices.shortTokenPrice.max)


@view
@external
def getMarketInfo(dataStore: address, prices: MarketPrices, marketKey: address) -> MarketInfo:
    """The market, its borrowing factor per second per side, and funding: the stored per-size
    values (baseFunding) and the current factor per second and paying side (nextFunding; the
    per-size deltas since the last update are left at zero on the stand-in)."""
    info: MarketInfo = empty(MarketInfo)
    m: MarketProps = staticcall self._handler(dataStore).markets(marketKey)
    info.market = m
    acc: IAccrual = self._accrual(dataStore)
    pr: Prices = self._prices(prices)
    info.borrowingFactorPerSecondForLongs = staticcall acc.borrowingFactorPerSecond(m.marketToken, m.longToken, m.shortToken, True, pr)
    info.borrowingFactorPerSecondForShorts = staticcall acc.borrowingFactorPerSecond(m.marketToken, m.longToken, m.shortToken, False, pr)
    info.nextFunding.fundingFactorPerSecond, info.nextFunding.longsPayShorts = staticcall acc.fundingFactorPerSecond(
        m.marketToken, m.longToken, m.shortToken)
    ds: IDataStore = IDataStore(dataStore)
    info.baseFunding.fundingFeeAmountPerSize.long.longToken = staticcall ds.getUint(keccak256(abi_encode(FUNDING_FEE_AMOUNT_PER_SIZE_KEY, m.marketToken, m.longToken, True)))
    info.baseFunding.fundingFeeAmountPerSize.long.shortToken = staticcall ds.getUint(keccak256(abi_encode(FUNDING_FEE_AMOUNT_PER_SIZE_KEY, m.marketToken, m.shortToken, True)))
    info.baseFunding.fundingFeeAmountPerSize.short.longToken = staticcall ds.getUint(keccak256(abi_encode(FUNDING_FEE_AMOUNT_PER_SIZE_KEY, m.marketToken, m.longToken, False)))
    info.baseFunding.fundingFeeAmountPerSize.short.shortToken = staticcall ds.getUint(keccak256(abi_encode(FUNDING_FEE_AMOUNT_PER_SIZE_KEY, m.marketToken, m.shortToken, False)))
    info.baseFunding.claimableFundingAmountPerSize.long.longToken = staticcall ds.getUint(keccak256(abi_encode(CLAIMABLE_FUNDING_AMOUNT_PER_SIZE_KEY, m.marketToken, m.longToken, True)))
    info.baseFunding.claimableFundingAmountPerSize.long.shortToken = staticcall ds.getUint(keccak256(abi_encode(CLAIMABLE_FUNDING_AMOUNT_PER_SIZE_KEY, m.marketToken, m.shortToken, True)))
    info.baseFunding.claimableFundingAmountPerSize.short.longToken = staticcall ds.getUint(keccak256(abi_encode(CLAIMABLE_FUNDING_AMOUNT_PER_SIZE_KEY, m.marketToken, m.longToken, False)))
    info.baseFunding.claimableFundingAmountPerSize.short.shortToken = staticcall ds.getUint(keccak256(abi_encode(CLAIMABLE_FUNDING_AMOUNT_PER_SIZE_KEY, m.marketToken, m.shortToken, False)))
    return info


@view
@internal
def _openInterest(dataStore: address, market: MarketProps, isLong: bool) -> uint256:
    ds: IDataStore = IDataStore(dataStore)
    oi: uint256 = staticcall ds.getUint(keccak256(abi_encode(OPEN_INTEREST_KEY, market.marketToken, market.longToken, isLong)))
    if market.shortToken != market.longToken:
        oi += staticcall ds.getUint(keccak256(abi_encode(OPEN_INTEREST_KEY, market.marketToken, market.shortToken, isLong)))
    return oi


@view
@external
def getPositionInfo(dataStore: address, referralStorage: address, positionKey: bytes32, prices: MarketPrices,
                    sizeDeltaUsd: uint256, uiFeeReceiver: address, usePositionSizeAsSizeDeltaUsd: bool) -> PositionInfo:
    info: PositionInfo = empty(PositionInfo)
    info.positionKey = positionKey
    info.position = staticcall self._engine(dataStore).getPosition(positionKey)
    pos: PositionProps = info.position
    if pos.numbers.sizeInUsd == 0:
        raw_revert(method_id("EmptyPosition()"))
    sizeDelta: uint256 = sizeDeltaUsd
    if usePositionSizeAsSizeDeltaUsd:
        sizeDelta = pos.numbers.sizeInUsd
    if sizeDelta > pos.numbers.sizeInUsd:
        raw_revert(concat(method_id("InvalidDecreaseOrderSize(uint256,uint256)"),
                          abi_encode(sizeDelta, pos.numbers.sizeInUsd)))
    market: MarketProps = staticcall self._handler(dataStore).markets(pos.addresses.market)
    collateralPrice: PriceProps = prices.shortTokenPrice
    if pos.addresses.collateralToken == market.longToken:
        collateralPrice = prices.longTokenPrice
    r: DecreasePricing = staticcall IPricing(staticcall IDataStore(dataStore).getAddress(STANDIN_PRICING_KEY)).decreasePricing(
        market.marketToken, pos.numbers.sizeInUsd, pos.numbers.sizeInTokens, pos.numbers.pendingImpactAmount,
        pos.flags.isLong, sizeDelta, prices.indexTokenPrice.min, prices.indexTokenPrice.max,
        self._openInterest(dataStore, market, True), self._openInterest(dataStore, market, False),
        staticcall IDataStore(dataStore).getUint(keccak256(abi_encode(POSITION_IMPACT_POOL_AMOUNT_KEY, market.marketToken))))
    info.executionPriceResult = ExecutionPriceResult(
        priceImpactUsd=r.priceImpactUsd, executionPrice=r.executionPrice, balanceWasImproved=r.balanceWasImproved,
        proportionalPendingImpactUsd=r.proportionalPendingImpactUsd, totalImpactUsd=r.totalImpactUsd,
        priceImpactDiffUsd=r.priceImpactDiffUsd)
    feeFactor: uint256 = staticcall IDataStore(dataStore).getUint(
        keccak256(abi_encode(POSITION_FEE_FACTOR_KEY, market.marketToken, r.balanceWasImproved)))
    feeAmount: uint256 = sizeDelta * feeFactor // FLOAT_PRECISION // collateralPrice.min
    info.fees.collateralTokenPrice = collateralPrice
    info.fees.positionFeeFactor = feeFactor
    info.fees.positionFeeAmount = feeAmount
    info.fees.feeAmountForPool = feeAmount
    info.fees.positionFeeAmountForPool = feeAmount
    # pending borrowing and funding, accrued to now (PositionPricingUtils.getBorrowingFees / getFundingFees)
    acc: IAccrual = self._accrual(dataStore)
    pr: Prices = self._prices(prices)
    cum: uint256 = staticcall acc.nextCumulativeBorrowingFactor(market.marketToken, market.longToken, market.shortToken,
                                                                pos.flags.isLong, pr)
    if cum > pos.numbers.borrowingFactor:
        info.fees.borrowing.borrowingFeeUsd = pos.numbers.sizeInUsd * (cum - pos.numbers.borrowingFactor) // FLOAT_PRECISION
    info.fees.borrowing.borrowingFeeAmount = info.fees.borrowing.borrowingFeeUsd // collateralPrice.min
    f: PositionFundingFees = empty(PositionFundingFees)
    f.latestFundingFeeAmountPerSize, f.latestLongTokenClaimableFundingAmountPerSize, \
        f.latestShortTokenClaimableFundingAmountPerSize = staticcall acc.nextFundingPerSize(
            market.marketToken, market.longToken, market.shortToken, pos.addresses.collateralToken, pos.flags.isLong, pr)
    size: uint256 = pos.numbers.sizeInUsd
    if f.latestFundingFeeAmountPerSize > pos.numbers.fundingFeeAmountPerSize:
        f.fundingFeeAmount = (size * (f.latestFundingFeeAmountPerSize - pos.numbers.fundingFeeAmountPerSize)
                              + FUNDING_PRECISION - 1) // FUNDING_PRECISION
    if f.latestLongTokenClaimableFundingAmountPerSize > pos.numbers.longTokenClaimableFundingAmountPerSize:
        f.claimableLongTokenAmount = size * (f.latestLongTokenClaimableFundingAmountPerSize
                                             - pos.numbers.longTokenClaimableFundingAmountPerSize) // FUNDING_PRECISION
    if f.latestShortTokenClaimableFundingAmountPerSize > pos.numbers.shortTokenClaimableFundingAmountPerSize:
        f.claimableShortTokenAmount = size * (f.latestShortTokenClaimableFundingAmountPerSize
                                              - pos.numbers.shortTokenClaimableFundingAmountPerSize) // FUNDING_PRECISION
    info.fees.funding = f
    info.fees.totalCostAmountExcludingFunding = feeAmount + info.fees.borrowing.borrowingFeeAmount
    info.fees.totalCostAmount = info.fees.totalCostAmountExcludingFunding + f.fundingFeeAmount
    info.fees.ui.uiFeeReceiver = uiFeeReceiver
    info.fees.referral.trader = pos.addresses.account
    # base PnL of the closed share (PositionUtils.getPositionPnlUsd)
    if sizeDelta > 0:
        price: uint256 = prices.indexTokenPrice.max
        if pos.flags.isLong:
            price = prices.indexTokenPrice.min
        total: int256 = convert(pos.numbers.sizeInUsd, int256) - convert(pos.numbers.sizeInTokens * price, int256)
        if pos.flags.isLong:
            total = -total
        tokens: uint256 = pos.numbers.sizeInTokens
        if sizeDelta < pos.numbers.sizeInUsd:
            if pos.flags.isLong:
                tokens = (pos.numbers.sizeInTokens * sizeDelta + pos.numbers.sizeInUsd - 1) // pos.numbers.sizeInUsd
            else:
                tokens = pos.numbers.sizeInTokens * sizeDelta // pos.numbers.sizeInUsd
        magnitude: int256 = convert(convert(abs(total), uint256) * tokens // pos.numbers.sizeInTokens, int256)
        info.basePnlUsd = magnitude
        if total < 0:
            info.basePnlUsd = -magnitude
    info.uncappedBasePnlUsd = info.basePnlUsd
    info.pnlAfterPriceImpactUsd = info.basePnlUsd + r.totalImpactUsd
    return info
