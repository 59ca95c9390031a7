# pragma version ~=0.4.3
"""
@title Reference perpetual-swap market
@notice Shaped like a Synthetix PerpsV2 market: per-account margin in a
        collateral token, a signed position size, price from a Chainlink-style
        feed (refusing stale prices), a fill price that moves with skew,
        maker/taker fees, velocity-based funding accrued into an index,
        max leverage, liquidation with a fee, and a two-step (delayed) order
        path executed by keepers.
@dev    Accounting is 18-decimal fixed point (sizes in asset units, prices and
        margin in USD). Collateral moves in the token's native units and is
        scaled by 10**(18 - token.decimals()). Signed `//` truncates toward
        zero; `hedger/fixedpoint.py` mirrors that rounding.
"""
from ethereum.ercs import IERC20

interface IERC20Decimals:
    def decimals() -> uint8: view

interface AggregatorV3:
    def decimals() -> uint8: view
    def latestRoundData() -> (uint80, int256, uint256, uint256, uint80): view

UNIT: constant(int256) = 10 ** 18
UUNIT: constant(uint256) = 10 ** 18
DAY: constant(int256) = 86400

struct Params:
    maxOracleAge: uint256                  # seconds
    skewScale: uint256                     # asset units, 18 decimals
    maxFundingVelocity: uint256            # funding rate per day, per day (18 decimals)
    takerFee: uint256                      # fraction of notional (18 decimals)
    makerFee: uint256
    maxLeverage: uint256                   # 18 decimals
    liquidationBufferRatio: uint256        # fraction of notional
    liquidationFeeRatio: uint256           # fraction of notional
    liquidationPremiumMultiplier: uint256  # 18 decimals
    minKeeperFee: uint256                  # USD, 18 decimals
    maxKeeperFee: uint256                  # USD, 18 decimals
    minInitialMargin: uint256              # USD, 18 decimals
    orderKeeperFee: uint256                # USD paid to whoever executes a delayed order
    minOrderDelay: uint256                 # seconds
    maxOrderDelay: uint256                 # seconds

struct Position:
    margin: uint256            # USD, 18 decimals, as of the last change
    size: int256               # asset units, 18 decimals; negative = short
    lastPrice: uint256         # price at the last change
    lastFundingEntry: int256   # funding index at the last change

struct DelayedOrder:
    sizeDelta: int256
    desiredFillPrice: uint256
    keeperFee: uint256
    submittedAt: uint256

event MarginTransferred:
    account: indexed(address)
    marginDelta: int256        # native collateral units
    margin: uint256            # resulting margin, 18 decimals

event PositionModified:
    account: indexed(address)
    sizeDelta: int256
    size: int256
    fillPrice: uint256
    fee: uint256
    keeperFee: uint256
    margin: uint256

event FundingRecomputed:
    fundingIndex: int256
    fundingRate: int256
    timestamp: uint256

event PositionLiquidated:
    account: indexed(address)
    liquidator: indexed(address)
    size: int256
    price: uint256
    fee: uint256
    remainingMargin: int256

event DelayedOrderSubmitted:
    account: indexed(address)
    sizeDelta: int256
    desiredFillPrice: uint256
    keeperFee: uint256
    executableAt: uint256
    expiresAt: uint256

event DelayedOrderRemoved:
    account: indexed(address)
    executed: bool
    sizeDelta: int256
    keeper: address

event ParamsUpdated:
    maxLeverage: uint256
    skewScale: uint256

owner: public(address)
collateral: public(IERC20)
feed: public(AggregatorV3)
collateralScale: public(uint256)   # 10**(18 - collateral decimals)
priceScale: public(uint256)        # 10**(18 - feed decimals)
params: public(Params)

positions: public(HashMap[address, Position])
delayedOrders: public(HashMap[address, DelayedOrder])

marketSkew: public(int256)         # longs - shorts
longSize: uint256
shortSize: uint256

fundingIndexLast: public(int256)   # USD per unit of size, 18 decimals
fundingRateLast: public(int256)    # per day, 18 decimals; positive: longs pay shorts
fundingLastRecomputed: public(uint256)
feesCollected: public(uint256)


@deploy
def __init__(collateral_: address, feed_: address, params_: Params):
    self.owner = msg.sender
    self.collateral = IERC20(collateral_)
    self.feed = AggregatorV3(feed_)
    cdec: uint8 = staticcall IERC20Decimals(collateral_).decimals()
    fdec: uint8 = staticcall AggregatorV3(feed_).decimals()
    assert cdec <= 18 and fdec <= 18, "decimals above 18"
    self.collateralScale = 10 ** convert(18 - cdec, uint256)
    self.priceScale = 10 ** convert(18 - fdec, uint256)
    self._setParams(params_)
    self.fundingLastRecomputed = block.timestamp


@internal
def _setParams(p: Params):
    assert p.skewScale > 0, "skewScale is zero"
    assert p.maxLeverage >= UUNIT, "maxLeverage below 1"
    assert p.minOrderDelay <= p.maxOrderDelay, "order delays inverted"
    self.params = p
    log ParamsUpdated(maxLeverage=p.maxLeverage, skewScale=p.skewScale)


@external
def setParams(p: Params):
    assert msg.sender == self.owner, "only owner"
    self._recomputeFunding(self._validPrice())
    self._setParams(p)


# ---------------------------------------------------------------- internals

@view
@internal
def _price() -> (uint256, bool):
    rid: uint80 = 0
    answer: int256 = 0
    startedAt: uint256 = 0
    updatedAt: uint256 = 0
    answeredIn: uint80 = 0
    rid, answer, startedAt, updatedAt, answeredIn = staticcall self.feed.latestRoundData()
    if answer <= 0:
        return 0, True
    price: uint256 = convert(answer, uint256) * self.priceScale
    if rid == 0 or updatedAt == 0 or updatedAt > block.timestamp:
        return price, True
    if block.timestamp - updatedAt > self.params.maxOracleAge:
        return price, True
    return price, False


@view
@internal
def _validPrice() -> uint256:
    price: uint256 = 0
    invalid: bool = False
    price, invalid = self._price()
    assert not invalid, "stale or invalid price"
    return price


@view
@internal
def _velocity() -> int256:
    pskew: int256 = self.marketSkew * UNIT // convert(self.params.skewScale, int256)
    pskew = max(min(pskew, UNIT), -UNIT)
    return pskew * convert(self.params.maxFundingVelocity, int256) // UNIT


@view
@internal
def _currentFundingRate() -> int256:
    elapsed: int256 = convert(block.timestamp - self.fundingLastRecomputed, int256)
    return self.fundingRateLast + self._velocity() * elapsed // DAY


@view
@internal
def _fundingIndex(price: uint256) -> int256:
    elapsed: int256 = convert(block.timestamp - self.fundingLastRecomputed, int256)
    rateNow: int256 = self._currentFundingRate()
    unrecorded: int256 = -((self.fundingRateLast + rateNow) * elapsed // (2 * DAY)) * convert(price, int256) // UNIT
    return self.fundingIndexLast + unrecorded


@internal
def _recomputeFunding(price: uint256):
    index: int256 = self._fundingIndex(price)
    self.fundingRateLast = self._currentFundingRate()
    self.fundingIndexLast = index
    self.fundingLastRecomputed = block.timestamp
    log FundingRecomputed(fundingIndex=index, fundingRate=self.fundingRateLast, timestamp=block.timestamp)


@pure
@internal
def _notional(size: int256, price: uint256) -> uint256:
    return convert(abs(size), uint256) * price // UUNIT


@view
@internal
def _accruedFunding(pos: Position, price: uint256) -> int256:
    if pos.size == 0:
        return 0
    return pos.size * (self._fundingIndex(price) - pos.lastFundingEntry) // UNIT


@pure
@internal
def _pnl(pos: Position, price: uint256) -> int256:
    return pos.size * (convert(price, int256) - convert(pos.lastPrice, int256)) // UNIT


@view
@internal
def _marginPlusPnl(pos: Position, price: uint256) -> int256:
    """margin + PnL + funding, possibly negative."""
    return convert(pos.margin, int256) + self._pnl(pos, price) + self._accruedFunding(pos, price)


@view
@internal
def _fillPrice(sizeDelta: int256, price: uint256) -> uint256:
    scale: int256 = convert(self.params.skewScale, int256)
    pdBefore: int256 = self.marketSkew * UNIT // scale
    pdAfter: int256 = (self.marketSkew + sizeDelta) * UNIT // scale
    p: int256 = convert(price, int256)
    fill: int256 = p + p * (pdBefore + pdAfter) // (2 * UNIT)
    assert fill > 0, "fill price not positive"
    return convert(fill, uint256)


@view
@internal
def _orderFee(sizeDelta: int256, fill: uint256) -> uint256:
    skew: int256 = self.marketSkew
    notional: uint256 = self._notional(sizeDelta, fill)
    if skew == 0 or (skew > 0) == (sizeDelta > 0):
        return notional * self.params.takerFee // UUNIT
    if abs(sizeDelta) <= abs(skew):
        return notional * self.params.makerFee // UUNIT
    makerPart: uint256 = self._notional(skew, fill)
    return makerPart * self.params.makerFee // UUNIT + (notional - makerPart) * self.params.takerFee // UUNIT


@view
@internal
def _liquidationFee(size: int256, price: uint256) -> uint256:
    fee: uint256 = self._notional(size, price) * self.params.liquidationFeeRatio // UUNIT
    return min(max(fee, self.params.minKeeperFee), self.params.maxKeeperFee)


@view
@internal
def _liquidationMargin(size: int256, price: uint256) -> uint256:
    return self._notional(size, price) * self.params.liquidationBufferRatio // UUNIT + self._liquidationFee(size, price)


@view
@internal
def _liquidationPremium(size: int256, price: uint256) -> uint256:
    return self._notional(size, price) * convert(abs(size), uint256) // self.params.skewScale * self.params.liquidationPremiumMultiplier // UUNIT


@view
@internal
def _canLiquidate(pos: Position, price: uint256) -> bool:
    if pos.size == 0:
        return False
    rem: int256 = self._marginPlusPnl(pos, price) - convert(self._liquidationPremium(pos.size, price), int256)
    return rem <= convert(self._liquidationMargin(pos.size, price), int256)


@view
@internal
def _liquidationPrice(pos: Position, price: uint256) -> uint256:
    if pos.size == 0:
        return 0
    fundingPerUnit: int256 = self._fundingIndex(price) - pos.lastFundingEntry
    need: int256 = convert(self._liquidationMargin(pos.size, price) + self._liquidationPremium(pos.size, price), int256) - convert(pos.margin, int256)
    result: int256 = convert(pos.lastPrice, int256) + need * UNIT // pos.size - fundingPerUnit
    return convert(max(result, 0), uint256)


@view
@internal
def _initialMarginRequired(size: int256, price: uint256) -> uint256:
    if size == 0:
        return 0
    return max(self._notional(size, price) * UUNIT // self.params.maxLeverage, self.params.minInitialMargin)


@internal
def _trade(account: address, sizeDelta: int256, desiredFillPrice: uint256, keeperFee: uint256, price: uint256):
    assert sizeDelta != 0, "sizeDelta is zero"
    self._recomputeFunding(price)
    pos: Position = self.positions[account]
    fill: uint256 = self._fillPrice(sizeDelta, price)
    if sizeDelta > 0:
        assert fill <= desiredFillPrice, "fill price exceeds desired"
    else:
        assert fill >= desiredFillPrice, "fill price exceeds desired"
    fee: uint256 = self._orderFee(sizeDelta, fill)
    m: int256 = convert(pos.margin, int256) + self._pnl(pos, fill) + self._accruedFunding(pos, price)
    m -= convert(fee + keeperFee, int256)
    assert m >= 0, "insufficient margin"
    newSize: int256 = pos.size + sizeDelta
    reducing: bool = newSize == 0 or (abs(newSize) < abs(pos.size) and (newSize > 0) == (pos.size > 0))
    if not reducing:
        um: uint256 = convert(m, uint256)
        assert um >= self._initialMarginRequired(newSize, price), "max leverage exceeded"
        # marked to the oracle price, as canLiquidate will see it right after (PnL from fill to price)
        newPos: Position = Position(margin=um, size=newSize, lastPrice=fill, lastFundingEntry=self.fundingIndexLast)
        assert not self._canLiquidate(newPos, price), "position would be liquidatable"
    # market sizes
    if pos.size > 0:
        self.longSize -= convert(pos.size, uint256)
    elif pos.size < 0:
        self.shortSize -= convert(-pos.size, uint256)
    if newSize > 0:
        self.longSize += convert(newSize, uint256)
    elif newSize < 0:
        self.shortSize += convert(-newSize, uint256)
    self.marketSkew += sizeDelta
    self.feesCollected += fee
    self.positions[account] = Position(margin=convert(m, uint256), size=newSize, lastPrice=fill, lastFundingEntry=self.fundingIndexLast)
    log PositionModified(account=account, sizeDelta=sizeDelta, size=newSize, fillPrice=fill, fee=fee, keeperFee=keeperFee, margin=convert(m, uint256))


@internal
def _transferMargin(account: address, marginDelta: int256, price: uint256):
    assert marginDelta != 0, "marginDelta is zero"
    # settle funding into the index first: the entry recorded below must be a
    # recorded index value, or a later price move re-prices funding accrued
    # before this transfer (the unrecorded part is priced at the current price)
    self._recomputeFunding(price)
    pos: Position = self.positions[account]
    m: int256 = self._marginPlusPnl(pos, price)
    scale: int256 = convert(self.collateralScale, int256)
    if marginDelta > 0:
        assert extcall self.collateral.transferFrom(account, self, convert(marginDelta, uint256), default_return_value=True), "transferFrom failed"
        m += marginDelta * scale
    else:
        m += marginDelta * scale
        assert m >= 0, "insufficient margin"
        if pos.size != 0:
            um: uint256 = convert(m, uint256)
            assert um >= self._initialMarginRequired(pos.size, price), "withdrawal below initial margin"
            assert um > self._liquidationMargin(pos.size, price) + self._liquidationPremium(pos.size, price), "position would be liquidatable"
        assert extcall self.collateral.transfer(account, convert(-marginDelta, uint256), default_return_value=True), "transfer failed"
    assert m >= 0, "insufficient margin"
    self.positions[account] = Position(margin=convert(m, uint256), size=pos.size, lastPrice=price, lastFundingEntry=self._fundingIndex(price))
    log MarginTransferred(account=account, marginDelta=marginDelta, margin=convert(m, uint256))


@view
@internal
def _accessibleMargin(pos: Position, price: uint256) -> uint256:
    m: int256 = self._marginPlusPnl(pos, price)
    if m <= 0:
        return 0
    req: int256 = convert(self._initialMarginRequired(pos.size, price), int256)
    return convert(max(m - req, 0), uint256)


# ------------------------------------------------------------------ writes

@external
def transferMargin(marginDelta: int256):
    """@notice Deposit (positive) or withdraw (negative) collateral, in the token's native units."""
    self._transferMargin(msg.sender, marginDelta, self._validPrice())


@external
def withdrawAllMargin():
    """@notice Withdraw all accessible margin, rounded down to native units."""
    price: uint256 = self._validPrice()
    amount: uint256 = self._accessibleMargin(self.positions[msg.sender], price) // self.collateralScale
    assert amount > 0, "no accessible margin"
    self._transferMargin(msg.sender, -convert(amount, int256), price)


@external
def modifyPosition(sizeDelta: int256, desiredFillPrice: uint256):
    """@notice Trade at once at the skew-adjusted fill price, bounded by desiredFillPrice."""
    assert self.delayedOrders[msg.sender].sizeDelta == 0, "delayed order pending"
    self._trade(msg.sender, sizeDelta, desiredFillPrice, 0, self._validPrice())


@external
def submitDelayedOrder(sizeDelta: int256, desiredFillPrice: uint256):
    """@notice First step of a two-step trade; a keeper executes it after minOrderDelay."""
    assert sizeDelta != 0, "sizeDelta is zero"
    assert self.delayedOrders[msg.sender].sizeDelta == 0, "delayed order pending"
    price: uint256 = self._validPrice()
    fee: uint256 = self.params.orderKeeperFee
    assert self._marginPlusPnl(self.positions[msg.sender], price) >= convert(fee, int256), "insufficient margin for keeper fee"
    self.delayedOrders[msg.sender] = DelayedOrder(sizeDelta=sizeDelta, desiredFillPrice=desiredFillPrice, keeperFee=fee, submittedAt=block.timestamp)
    log DelayedOrderSubmitted(account=msg.sender, sizeDelta=sizeDelta, desiredFillPrice=desiredFillPrice, keeperFee=fee, executableAt=block.timestamp + self.params.minOrderDelay, expiresAt=block.timestamp + self.params.maxOrderDelay)


@external
def executeDelayedOrder(account: address):
    """@notice Anyone may fill a due order at the price then; a fill-price breach reverts and leaves it in place."""
    order: DelayedOrder = self.delayedOrders[account]
    assert order.sizeDelta != 0, "no delayed order"
    assert block.timestamp >= order.submittedAt + self.params.minOrderDelay, "order too early"
    assert block.timestamp <= order.submittedAt + self.params.maxOrderDelay, "order expired"
    self._trade(account, order.sizeDelta, order.desiredFillPrice, order.keeperFee, self._validPrice())
    self.delayedOrders[account] = empty(DelayedOrder)
    paid: uint256 = order.keeperFee // self.collateralScale
    if paid > 0:
        assert extcall self.collateral.transfer(msg.sender, paid, default_return_value=True), "transfer failed"
    log DelayedOrderRemoved(account=account, executed=True, sizeDelta=order.sizeDelta, keeper=msg.sender)


@external
def cancelDelayedOrder(account: address):
    """@notice Remove an expired order (anyone may)."""
    order: DelayedOrder = self.delayedOrders[account]
    assert order.sizeDelta != 0, "no delayed order"
    assert block.timestamp > order.submittedAt + self.params.maxOrderDelay, "order not expired"
    self.delayedOrders[account] = empty(DelayedOrder)
    log DelayedOrderRemoved(account=account, executed=False, sizeDelta=order.sizeDelta, keeper=msg.sender)


@external
def liquidate(account: address):
    price: uint256 = self._validPrice()
    pos: Position = self.positions[account]
    assert self._canLiquidate(pos, price), "cannot liquidate"
    self._recomputeFunding(price)
    rem: int256 = self._marginPlusPnl(pos, price)
    fee: uint256 = self._liquidationFee(pos.size, price)
    if pos.size > 0:
        self.longSize -= convert(pos.size, uint256)
    else:
        self.shortSize -= convert(-pos.size, uint256)
    self.marketSkew -= pos.size
    self.positions[account] = empty(Position)
    paid: uint256 = fee // self.collateralScale
    if paid > 0:
        assert extcall self.collateral.transfer(msg.sender, paid, default_return_value=True), "transfer failed"
    log PositionLiquidated(account=account, liquidator=msg.sender, size=pos.size, price=price, fee=fee, remainingMargin=rem)


# ------------------------------------------------------------------- views

@view
@external
def assetPrice() -> (uint256, bool):
    return self._price()


@view
@external
def remainingMargin(account: address) -> (uint256, bool):
    price: uint256 = 0
    invalid: bool = False
    price, invalid = self._price()
    return convert(max(self._marginPlusPnl(self.positions[account], price), 0), uint256), invalid


@view
@external
def accessibleMargin(account: address) -> (uint256, bool):
    price: uint256 = 0
    invalid: bool = False
    price, invalid = self._price()
    return self._accessibleMargin(self.positions[account], price), invalid


@view
@external
def liquidationPrice(account: address) -> (uint256, bool):
    price: uint256 = 0
    invalid: bool = False
    price, invalid = self._price()
    return self._liquidationPrice(self.positions[account], price), invalid


@view
@external
def canLiquidate(account: address) -> bool:
    price: uint256 = 0
    invalid: bool = False
    price, invalid = self._price()
    return not invalid and self._canLiquidate(self.positions[account], price)


@view
@external
def accruedFunding(account: address) -> (int256, bool):
    price: uint256 = 0
    invalid: bool = False
    price, invalid = self._price()
    return self._accruedFunding(self.positions[account], price), invalid


@view
@external
def profitLoss(account: address) -> (int256, bool):
    price: uint256 = 0
    invalid: bool = False
    price, invalid = self._price()
    return self._pnl(self.positions[account], price), invalid


@view
@external
def notionalValue(account: address) -> (int256, bool):
    price: uint256 = 0
    invalid: bool = False
    price, invalid = self._price()
    pos: Position = self.positions[account]
    return pos.size * convert(price, int256) // UNIT, invalid


@view
@external
def currentFundingRate() -> int256:
    return self._currentFundingRate()


@view
@external
def currentFundingVelocity() -> int256:
    return self._velocity()


@view
@external
def fundingIndex() -> int256:
    price: uint256 = 0
    invalid: bool = False
    price, invalid = self._price()
    return self._fundingIndex(price)


@view
@external
def marketSizes() -> (uint256, uint256):
    return self.longSize, self.shortSize


@view
@external
def fillPrice(sizeDelta: int256) -> (uint256, bool):
    price: uint256 = 0
    invalid: bool = False
    price, invalid = self._price()
    return self._fillPrice(sizeDelta, price), invalid


@view
@external
def orderFee(sizeDelta: int256) -> (uint256, bool):
    price: uint256 = 0
    invalid: bool = False
    price, invalid = self._price()
    return self._orderFee(sizeDelta, self._fillPrice(sizeDelta, price)), invalid
