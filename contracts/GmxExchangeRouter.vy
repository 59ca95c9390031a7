# pragma version ~=0.4.3
"""
@title GMX-v2-shaped ExchangeRouter (stand-in, our own code)
@notice The user-facing entry of GMX v2 (gmx-synthetics contracts/router/ExchangeRouter.sol
        semantics): multicall (delegatecall to itself, payable), sendWnt (wraps the sent ETH and
        sends WNT), sendTokens (pulls tokens approved to the Router), createOrder (the
        OrderHandler records what reached the OrderVault) and cancelOrder (owner only, after the
        request expiration for market orders), claimFundingFees (funding received is claimable,
        never added to collateral) and claimCollateral (negative impact beyond the cap, by time
        key; the stand-in makes it fully claimable at once, without GMX's delay and reduction
        factor). Holds ROUTER_PLUGIN and CONTROLLER roles.
"""
from ethereum.ercs import IERC20

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

interface IRouter:
    def pluginTransfer(token: address, account: address, receiver: address, amount: uint256): nonpayable

interface IDataStore:
    def getAddress(key: bytes32) -> address: view
    def getUint(key: bytes32) -> uint256: view
    def setUint(key: bytes32, val: uint256) -> uint256: nonpayable

interface IPool:
    def payOut(token: address, receiver: address, amount: uint256): nonpayable

interface IWNT:
    def deposit(): payable

interface IOrderHandler:
    def createOrder(account: address, params: CreateOrderParams) -> bytes32: nonpayable
    def cancelOrder(key: bytes32): nonpayable
    def orderAccount(key: bytes32) -> address: view

WNT_KEY: constant(bytes32) = 0xfe9362e2c30d3539df13ca6093740ddefd950bcc6aefb509209cacb12ba04f06
MAX_CALLS: constant(uint256) = 8
MAX_CLAIMS: constant(uint256) = 16
CLAIMABLE_FUNDING_AMOUNT_KEY: constant(bytes32) = 0x06fc3f5466c175728538f97bb3af89978c1db23c9c7f107930c4bb1b84305a1d
CLAIMABLE_COLLATERAL_AMOUNT_KEY: constant(bytes32) = 0x95b0f9aac7537ff0053f80e854f6a799bd4d922442234dd163aff199d65ffb48
CLAIMABLE_COLLATERAL_TIME_DIVISOR_KEY: constant(bytes32) = 0xd6f0cefee45c8294f4bd4fab381296d615e6db63979e0313550832965a54410b
STANDIN_POSITION_ENGINE_KEY: constant(bytes32) = 0x4a2102c38a5fe349952ea20458b4a1f8d9536aeb33312e77706cc5bf17dbb7d1


router: public(immutable(address))
dataStore: public(immutable(address))
eventEmitter: public(immutable(address))
orderHandler: public(immutable(address))
roleStore: public(immutable(address))


@deploy
def __init__(_router: address, _roleStore: address, _dataStore: address, _eventEmitter: address,
             _orderHandler: address):
    router = _router
    roleStore = _roleStore
    dataStore = _dataStore
    eventEmitter = _eventEmitter
    orderHandler = _orderHandler


@payable
@external
def multicall(data: DynArray[Bytes[2048], MAX_CALLS]) -> DynArray[Bytes[1024], MAX_CALLS]:
    """Run each call on this contract with the caller's msg.sender and msg.value; a failing call
    reverts the whole batch with its own revert data (GMX's PayableMulticall)."""
    results: DynArray[Bytes[1024], MAX_CALLS] = []
    for d: Bytes[2048] in data:
        results.append(raw_call(self, d, max_outsize=1024, is_delegate_call=True))
    return results


@internal
@pure
def _validateReceiver(receiver: address):
    if receiver == empty(address):
        raw_revert(method_id("EmptyReceiver()"))


@payable
@external
def sendWnt(receiver: address, amount: uint256):
    """Wrap `amount` of the ETH sent with this transaction and send it as WNT to `receiver`."""
    self._validateReceiver(receiver)
    wnt: address = staticcall IDataStore(dataStore).getAddress(WNT_KEY)
    extcall IWNT(wnt).deposit(value=amount)
    assert extcall IERC20(wnt).transfer(receiver, amount), "sendWnt: transfer failed"


@payable
@external
def sendTokens(token: address, receiver: address, amount: uint256):
    """Move `amount` of `token`, approved by the caller to the Router, to `receiver`."""
    self._validateReceiver(receiver)
    extcall IRouter(router).pluginTransfer(token, msg.sender, receiver, amount)


@payable
@external
def createOrder(params: CreateOrderParams) -> bytes32:
    return extcall IOrderHandler(orderHandler).createOrder(msg.sender, params)


@payable
@external
def cancelOrder(key: bytes32):
    account: address = staticcall IOrderHandler(orderHandler).orderAccount(key)
    if account == empty(address):
        raw_revert(method_id("EmptyOrder()"))
    if account != msg.sender:
        raw_revert(concat(method_id("Unauthorized(address,string)"),
                          abi_encode(msg.sender, "account for cancelOrder")))
    extcall IOrderHandler(orderHandler).cancelOrder(key)



@internal
def _claim(key: bytes32, token: address, receiver: address) -> uint256:
    amount: uint256 = staticcall IDataStore(dataStore).getUint(key)
    if amount > 0:
        extcall IDataStore(dataStore).setUint(key, 0)
        extcall IPool(staticcall IDataStore(dataStore).getAddress(STANDIN_POSITION_ENGINE_KEY)).payOut(token, receiver, amount)
    return amount


@payable
@external
def claimFundingFees(markets: DynArray[address, MAX_CLAIMS], tokens: DynArray[address, MAX_CLAIMS],
                     receiver: address) -> DynArray[uint256, MAX_CLAIMS]:
    """Pay the caller's claimable funding (CLAIMABLE_FUNDING_AMOUNT per market and token) to `receiver`."""
    self._validateReceiver(receiver)
    assert len(markets) == len(tokens), "InvalidClaimFundingFeesInput"
    out: DynArray[uint256, MAX_CLAIMS] = []
    for i: uint256 in range(len(markets), bound=MAX_CLAIMS):
        out.append(self._claim(keccak256(abi_encode(CLAIMABLE_FUNDING_AMOUNT_KEY, markets[i], tokens[i], msg.sender)),
                               tokens[i], receiver))
    return out


@payable
@external
def claimCollateral(markets: DynArray[address, MAX_CLAIMS], tokens: DynArray[address, MAX_CLAIMS],
                    timeKeys: DynArray[uint256, MAX_CLAIMS], receiver: address) -> DynArray[uint256, MAX_CLAIMS]:
    """Pay the caller's claimable collateral (CLAIMABLE_COLLATERAL_AMOUNT per market, token and time key)."""
    self._validateReceiver(receiver)
    assert len(markets) == len(tokens) and len(tokens) == len(timeKeys), "InvalidClaimCollateralInput"
    out: DynArray[uint256, MAX_CLAIMS] = []
    for i: uint256 in range(len(markets), bound=MAX_CLAIMS):
        out.append(self._claim(keccak256(abi_encode(CLAIMABLE_COLLATERAL_AMOUNT_KEY, markets[i], tokens[i], timeKeys[i],
                                                    msg.sender)), tokens[i], receiver))
    return out
