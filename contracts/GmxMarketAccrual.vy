# pragma version ~=0.4.3
"""
@title GMX-v2-shaped funding and borrowing accrual (stand-in, our own code)
@notice Keeps GMX's per-market accumulators in the DataStore, updated before every position change
        (gmx-synthetics contracts/market/MarketUtils.sol updateFundingState /
        updateCumulativeBorrowingFactor, contracts/pricing/PositionPricingUtils.sol fees):
        - borrowing: CUMULATIVE_BORROWING_FACTOR(market, isLong) grows by
          BORROWING_FACTOR x reservedUsd ^ BORROWING_EXPONENT_FACTOR / poolUsd per second
          (reserved: longs' open interest in tokens at the max index price, shorts' open interest;
          pool: POOL_AMOUNT of the side's token at its min price); a position pays
          size x (cumulative - its borrowingFactor);
        - funding: the larger side pays FUNDING_FACTOR x |long OI - short OI| ^ FUNDING_EXPONENT_FACTOR
          / total OI per second of its open interest; the USD is split over the payers' collateral
          tokens by their open interest and added per size (15 extra decimals) to
          FUNDING_FEE_AMOUNT_PER_SIZE of the payers (rounded up) and CLAIMABLE_FUNDING_AMOUNT_PER_SIZE
          of the receivers (rounded down); a position pays its funding from its collateral and its
          received funding becomes CLAIMABLE_FUNDING_AMOUNT(market, token, account), claimed through
          ExchangeRouter.claimFundingFees (it is never added to collateral, as on GMX).
        Left out: the borrowing usage kink (optimal usage factor), adaptive funding (funding
        increase/decrease factors) and the max funding factor cap.
@dev    The stand-in's markets have the index token as long token, so the long token is priced with
        the index price.
"""

interface IRoleStore:
    def hasRole(account: address, roleKey: bytes32) -> bool: view

interface IDataStore:
    def getUint(key: bytes32) -> uint256: view
    def setUint(key: bytes32, val: uint256) -> uint256: nonpayable
    def incrementUint(key: bytes32, val: uint256) -> uint256: nonpayable

interface IPricing:
    def applyExponentFactor(floatValue: uint256, exponentFactor: uint256) -> uint256: pure

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

FLOAT_PRECISION: constant(uint256) = 10**30
FUNDING_PRECISION: constant(uint256) = 10**45     # FLOAT_PRECISION x FLOAT_PRECISION_SQRT
FLOAT_PRECISION_SQRT: constant(uint256) = 10**15
CONTROLLER: constant(bytes32) = 0x97adf037b2472f4a6a9825eff7d2dd45e37f2dc308df2a260d6a72af4189a65b
BORROWING_FACTOR_KEY: constant(bytes32) = 0xa38d85dceca084ba5b76ea9a3020c5536fb5cf7455ef13366c4f4ad20d24b3c2
BORROWING_EXPONENT_FACTOR_KEY: constant(bytes32) = 0x44e07d838924516f5b9c562ffc22db10a563a3f687178102325f6c448f2fa35d
CUMULATIVE_BORROWING_FACTOR_KEY: constant(bytes32) = 0xdfcf1ff0bd7c33ac55f48912a5ab14e3f2f75247a2a36b0f34c4bf025cf7aca9
CUMULATIVE_BORROWING_FACTOR_UPDATED_AT_KEY: constant(bytes32) = 0x965350856896dd6e2b221d575c162996752999158c92401a2428740d55b419bf
POOL_AMOUNT_KEY: constant(bytes32) = 0x8d6d2afbc2bb1e17cb89b72f19b266a410f6ee8f890812b98b609d4bbf135960
FUNDING_FACTOR_KEY: constant(bytes32) = 0x8d25c5b55501c0bb1657a27730a272059c9a87bbf03ea76434f679bfef179e73
FUNDING_EXPONENT_FACTOR_KEY: constant(bytes32) = 0x769527e09152c8f6c2369c579559e9b754b40a814f8d7aca18ab79ffef6c3a02
FUNDING_UPDATED_AT_KEY: constant(bytes32) = 0xb5ddf508060c27de8692c76ee937ac1c56cb8c1fb7431f074d2a0eb00b863ee6
FUNDING_FEE_AMOUNT_PER_SIZE_KEY: constant(bytes32) = 0x4c12833ffbe25653fd28535e4277f4c8ada589407177c25b4e4760ab736a64ba
CLAIMABLE_FUNDING_AMOUNT_PER_SIZE_KEY: constant(bytes32) = 0xeb7c85784645884cb4a464c83381b211da0a5822b2a986804aa3cba063c130cd
CLAIMABLE_FUNDING_AMOUNT_KEY: constant(bytes32) = 0x06fc3f5466c175728538f97bb3af89978c1db23c9c7f107930c4bb1b84305a1d
OPEN_INTEREST_KEY: constant(bytes32) = 0x4259c04608de5df0fa0e375507d66e8ffc81773c9f3dd501a181cbb349ae4fe0
OPEN_INTEREST_IN_TOKENS_KEY: constant(bytes32) = 0xc577a5cb08b8e2126f9b9796b8c85ef9d1b5047a5ff670fc18802878f0bfd2f8

roleStore: public(immutable(address))
dataStore: public(immutable(address))
pricing: public(immutable(address))


@deploy
def __init__(_roleStore: address, _dataStore: address, _pricing: address):
    roleStore = _roleStore
    dataStore = _dataStore
    pricing = _pricing


@internal
@view
def _onlyController():
    if not staticcall IRoleStore(roleStore).hasRole(msg.sender, CONTROLLER):
        raw_revert(concat(method_id("Unauthorized(address,string)"), abi_encode(msg.sender, "CONTROLLER")))


@view
@internal
def _get(key: bytes32) -> uint256:
    return staticcall IDataStore(dataStore).getUint(key)


@view
@internal
def _oi(market: address, token: address, isLong: bool) -> uint256:
    return self._get(keccak256(abi_encode(OPEN_INTEREST_KEY, market, token, isLong)))


@view
@internal
def _borrowingPerSecond(market: address, longToken: address, shortToken: address, isLong: bool, pr: Prices) -> uint256:
    reserved: uint256 = 0
    pool: uint256 = 0
    if isLong:
        reserved = (self._get(keccak256(abi_encode(OPEN_INTEREST_IN_TOKENS_KEY, market, longToken, True)))
                    + self._get(keccak256(abi_encode(OPEN_INTEREST_IN_TOKENS_KEY, market, shortToken, True)))) * pr.indexMax
        pool = self._get(keccak256(abi_encode(POOL_AMOUNT_KEY, market, longToken))) * pr.indexMin
    else:
        reserved = self._oi(market, longToken, False) + self._oi(market, shortToken, False)
        pool = self._get(keccak256(abi_encode(POOL_AMOUNT_KEY, market, shortToken))) * pr.shortMin
    if pool == 0 or reserved == 0:
        return 0
    exponent: uint256 = self._get(keccak256(abi_encode(BORROWING_EXPONENT_FACTOR_KEY, market, isLong)))
    after: uint256 = staticcall IPricing(pricing).applyExponentFactor(reserved, exponent)
    return after * FLOAT_PRECISION // pool * self._get(keccak256(abi_encode(BORROWING_FACTOR_KEY, market, isLong))) // FLOAT_PRECISION


@view
@external
def borrowingFactorPerSecond(market: address, longToken: address, shortToken: address, isLong: bool,
                             pr: Prices) -> uint256:
    return self._borrowingPerSecond(market, longToken, shortToken, isLong, pr)


@view
@internal
def _fundingPerSecond(market: address, longToken: address, shortToken: address) -> (uint256, bool):
    longOI: uint256 = self._oi(market, longToken, True) + self._oi(market, shortToken, True)
    shortOI: uint256 = self._oi(market, longToken, False) + self._oi(market, shortToken, False)
    total: uint256 = longOI + shortOI
    diff: uint256 = 0
    if longOI > shortOI:
        diff = longOI - shortOI
    else:
        diff = shortOI - longOI
    if diff == 0 or total == 0:
        return 0, longOI > shortOI
    after: uint256 = staticcall IPricing(pricing).applyExponentFactor(
        diff, self._get(keccak256(abi_encode(FUNDING_EXPONENT_FACTOR_KEY, market))))
    return after * FLOAT_PRECISION // total * self._get(keccak256(abi_encode(FUNDING_FACTOR_KEY, market))) // FLOAT_PRECISION, longOI > shortOI


@view
@external
def fundingFactorPerSecond(market: address, longToken: address, shortToken: address) -> (uint256, bool):
    """(factor per second, longsPayShorts)."""
    return self._fundingPerSecond(market, longToken, shortToken)


@pure
@internal
def _perSizeDelta(fundingUsd: uint256, oi: uint256, price: uint256, roundUp: bool) -> uint256:
    """MarketUtils.getFundingAmountPerSizeDelta."""
    if fundingUsd == 0 or oi == 0:
        return 0
    # fundingUsd x 1e45 / oi without the product (GMX's Precision.mulDiv): above $115 of funding the
    # product passes 2**256. fundingUsd x 1e30 / oi first, then its remainder x 1e15 / oi: exact.
    wide: uint256 = fundingUsd * FLOAT_PRECISION
    head: uint256 = wide // oi * FLOAT_PRECISION_SQRT
    rest: uint256 = wide % oi * FLOAT_PRECISION_SQRT
    if roundUp:
        perSize: uint256 = head + (rest + oi - 1) // oi
        return (perSize + price - 1) // price
    return (head + rest // oi) // price


@internal
def _addPerSize(key: bytes32, delta: uint256):
    if delta > 0:
        extcall IDataStore(dataStore).incrementUint(key, delta)


struct FundingDeltas:
    feeLongToken: uint256
    feeShortToken: uint256
    claimLongToken: uint256
    claimShortToken: uint256
    longsPayShorts: bool


@view
@internal
def _fundingDeltas(market: address, longToken: address, shortToken: address, pr: Prices) -> FundingDeltas:
    """Per-size increments since FUNDING_UPDATED_AT (MarketUtils.getNextFundingAmountPerSize):
    the paying side's fee per size and the receiving side's claimable per size, per collateral token."""
    d: FundingDeltas = empty(FundingDeltas)
    at: uint256 = self._get(keccak256(abi_encode(FUNDING_UPDATED_AT_KEY, market)))
    if at == 0 or block.timestamp <= at:
        return d
    factor: uint256 = 0
    factor, d.longsPayShorts = self._fundingPerSecond(market, longToken, shortToken)
    payingLongColl: uint256 = self._oi(market, longToken, d.longsPayShorts)
    payingShortColl: uint256 = self._oi(market, shortToken, d.longsPayShorts)
    paying: uint256 = payingLongColl + payingShortColl
    receiving: uint256 = self._oi(market, longToken, not d.longsPayShorts) + self._oi(market, shortToken, not d.longsPayShorts)
    fundingUsd: uint256 = paying * ((block.timestamp - at) * factor) // FLOAT_PRECISION
    if fundingUsd == 0 or paying == 0:
        return d
    forLong: uint256 = fundingUsd * payingLongColl // paying
    forShort: uint256 = fundingUsd * payingShortColl // paying
    d.feeLongToken = self._perSizeDelta(forLong, payingLongColl, pr.indexMax, True)
    d.feeShortToken = self._perSizeDelta(forShort, payingShortColl, pr.shortMax, True)
    d.claimLongToken = self._perSizeDelta(forLong, receiving, pr.indexMax, False)
    d.claimShortToken = self._perSizeDelta(forShort, receiving, pr.shortMax, False)
    return d


@view
@internal
def _borrowingDelta(market: address, longToken: address, shortToken: address, isLong: bool, pr: Prices) -> uint256:
    at: uint256 = self._get(keccak256(abi_encode(CUMULATIVE_BORROWING_FACTOR_UPDATED_AT_KEY, market, isLong)))
    if at == 0 or block.timestamp <= at:
        return 0
    return self._borrowingPerSecond(market, longToken, shortToken, isLong, pr) * (block.timestamp - at)


@view
@external
def nextCumulativeBorrowingFactor(market: address, longToken: address, shortToken: address, isLong: bool,
                                  pr: Prices) -> uint256:
    """CUMULATIVE_BORROWING_FACTOR as it would be accrued now (MarketUtils.getNextCumulativeBorrowingFactor)."""
    return self._get(keccak256(abi_encode(CUMULATIVE_BORROWING_FACTOR_KEY, market, isLong))) \
        + self._borrowingDelta(market, longToken, shortToken, isLong, pr)


@view
@external
def nextFundingPerSize(market: address, longToken: address, shortToken: address, collateralToken: address,
                       isLong: bool, pr: Prices) -> (uint256, uint256, uint256):
    """(FUNDING_FEE_AMOUNT_PER_SIZE of the position's side and collateral, CLAIMABLE_FUNDING_AMOUNT_PER_SIZE
    of its side in the long token, in the short token) as they would be accrued now."""
    d: FundingDeltas = self._fundingDeltas(market, longToken, shortToken, pr)
    fee: uint256 = self._get(keccak256(abi_encode(FUNDING_FEE_AMOUNT_PER_SIZE_KEY, market, collateralToken, isLong)))
    if isLong == d.longsPayShorts:
        if collateralToken == longToken:
            fee += d.feeLongToken
        else:
            fee += d.feeShortToken
    claimLong: uint256 = self._get(keccak256(abi_encode(CLAIMABLE_FUNDING_AMOUNT_PER_SIZE_KEY, market, longToken, isLong)))
    claimShort: uint256 = self._get(keccak256(abi_encode(CLAIMABLE_FUNDING_AMOUNT_PER_SIZE_KEY, market, shortToken, isLong)))
    if isLong != d.longsPayShorts:
        claimLong += d.claimLongToken
        claimShort += d.claimShortToken
    return fee, claimLong, claimShort


@external
def accrue(market: address, longToken: address, shortToken: address, pr: Prices):
    """Bring both sides' borrowing and the funding accumulators up to now (before any change)."""
    self._onlyController()
    ds: IDataStore = IDataStore(dataStore)
    for isLong: bool in [True, False]:
        delta: uint256 = self._borrowingDelta(market, longToken, shortToken, isLong, pr)
        if delta > 0:
            extcall ds.incrementUint(keccak256(abi_encode(CUMULATIVE_BORROWING_FACTOR_KEY, market, isLong)), delta)
        extcall ds.setUint(keccak256(abi_encode(CUMULATIVE_BORROWING_FACTOR_UPDATED_AT_KEY, market, isLong)),
                           block.timestamp)
    d: FundingDeltas = self._fundingDeltas(market, longToken, shortToken, pr)
    self._addPerSize(keccak256(abi_encode(FUNDING_FEE_AMOUNT_PER_SIZE_KEY, market, longToken, d.longsPayShorts)),
                     d.feeLongToken)
    self._addPerSize(keccak256(abi_encode(FUNDING_FEE_AMOUNT_PER_SIZE_KEY, market, shortToken, d.longsPayShorts)),
                     d.feeShortToken)
    self._addPerSize(keccak256(abi_encode(CLAIMABLE_FUNDING_AMOUNT_PER_SIZE_KEY, market, longToken, not d.longsPayShorts)),
                     d.claimLongToken)
    self._addPerSize(keccak256(abi_encode(CLAIMABLE_FUNDING_AMOUNT_PER_SIZE_KEY, market, shortToken, not d.longsPayShorts)),
                     d.claimShortToken)
    extcall ds.setUint(keccak256(abi_encode(FUNDING_UPDATED_AT_KEY, market)), block.timestamp)


@pure
@internal
def _owed(latest: uint256, mine: uint256, size: uint256, roundUp: bool) -> uint256:
    """PositionPricingUtils.getFundingFeeAmount (latest >= mine)."""
    if latest <= mine:
        return 0
    if roundUp:
        return (size * (latest - mine) + FUNDING_PRECISION - 1) // FUNDING_PRECISION
    return size * (latest - mine) // FUNDING_PRECISION


@external
def settle(account: address, market: address, collateralToken: address, longToken: address, shortToken: address,
           isLong: bool, sizeInUsd: uint256, borrowingFactor: uint256, fundingFeeAmountPerSize: uint256,
           longClaimablePerSize: uint256, shortClaimablePerSize: uint256, collateralPriceMin: uint256) -> Settlement:
    """What a position owes since it was last updated (borrowing, funding in its collateral) and
    what it received (made claimable now); the accumulators it is updated to."""
    self._onlyController()
    s: Settlement = empty(Settlement)
    s.cumulativeBorrowingFactor = self._get(keccak256(abi_encode(CUMULATIVE_BORROWING_FACTOR_KEY, market, isLong)))
    s.fundingFeeAmountPerSize = self._get(keccak256(abi_encode(FUNDING_FEE_AMOUNT_PER_SIZE_KEY, market, collateralToken, isLong)))
    s.longTokenClaimableFundingAmountPerSize = self._get(
        keccak256(abi_encode(CLAIMABLE_FUNDING_AMOUNT_PER_SIZE_KEY, market, longToken, isLong)))
    s.shortTokenClaimableFundingAmountPerSize = self._get(
        keccak256(abi_encode(CLAIMABLE_FUNDING_AMOUNT_PER_SIZE_KEY, market, shortToken, isLong)))
    if s.cumulativeBorrowingFactor > borrowingFactor:
        s.borrowingFeeUsd = sizeInUsd * (s.cumulativeBorrowingFactor - borrowingFactor) // FLOAT_PRECISION
    s.borrowingFeeAmount = s.borrowingFeeUsd // collateralPriceMin
    s.fundingFeeAmount = self._owed(s.fundingFeeAmountPerSize, fundingFeeAmountPerSize, sizeInUsd, True)
    s.claimableLongTokenAmount = self._owed(s.longTokenClaimableFundingAmountPerSize, longClaimablePerSize, sizeInUsd, False)
    s.claimableShortTokenAmount = self._owed(s.shortTokenClaimableFundingAmountPerSize, shortClaimablePerSize, sizeInUsd, False)
    if s.claimableLongTokenAmount > 0:
        extcall IDataStore(dataStore).incrementUint(
            keccak256(abi_encode(CLAIMABLE_FUNDING_AMOUNT_KEY, market, longToken, account)), s.claimableLongTokenAmount)
    if s.claimableShortTokenAmount > 0:
        extcall IDataStore(dataStore).incrementUint(
            keccak256(abi_encode(CLAIMABLE_FUNDING_AMOUNT_KEY, market, shortToken, account)), s.claimableShortTokenAmount)
    return s
