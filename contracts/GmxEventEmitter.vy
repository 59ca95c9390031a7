# pragma version ~=0.4.3
"""
@title GMX-v2-shaped EventEmitter (stand-in, our own code)
@notice Emits EventLog1/EventLog2 with GMX's EventLogData shape: named items per type, so a
        reader decodes them with GMX's own EventEmitter ABI (abis/gmx-v2/EventEmitter.json).
        Only CONTROLLER contracts (the stand-in's handlers) may emit.
"""

interface IRoleStore:
    def hasRole(account: address, roleKey: bytes32) -> bool: view

CONTROLLER: constant(bytes32) = 0x97adf037b2472f4a6a9825eff7d2dd45e37f2dc308df2a260d6a72af4189a65b

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

event EventLog:
    msgSender: address
    eventName: String[64]
    eventNameHash: indexed(String[64])
    eventData: EventLogData

event EventLog1:
    msgSender: address
    eventName: String[64]
    eventNameHash: indexed(String[64])
    topic1: indexed(bytes32)
    eventData: EventLogData

event EventLog2:
    msgSender: address
    eventName: String[64]
    eventNameHash: indexed(String[64])
    topic1: indexed(bytes32)
    topic2: indexed(bytes32)
    eventData: EventLogData

roleStore: public(immutable(address))


@deploy
def __init__(_roleStore: address):
    roleStore = _roleStore


@internal
@view
def _onlyController():
    assert staticcall IRoleStore(roleStore).hasRole(msg.sender, CONTROLLER), "Unauthorized: CONTROLLER"


@external
def emitEventLog(eventName: String[64], eventData: EventLogData):
    self._onlyController()
    log EventLog(msgSender=msg.sender, eventName=eventName, eventNameHash=eventName, eventData=eventData)


@external
def emitEventLog1(eventName: String[64], topic1: bytes32, eventData: EventLogData):
    self._onlyController()
    log EventLog1(msgSender=msg.sender, eventName=eventName, eventNameHash=eventName, topic1=topic1,
                  eventData=eventData)


@external
def emitEventLog2(eventName: String[64], topic1: bytes32, topic2: bytes32, eventData: EventLogData):
    self._onlyController()
    log EventLog2(msgSender=msg.sender, eventName=eventName, eventNameHash=eventName, topic1=topic1,
                  topic2=topic2, eventData=eventData)


@external
def emitOrderCreated(key: bytes32, o: OrderProps):
    """OrderCreated as GMX's OrderEventUtils.emitOrderCreated builds it (the stand-in builds the
    item list here to keep the OrderHandler under the contract size limit)."""
    self._onlyController()
    d: EventLogData = empty(EventLogData)
    d.addressItems.items.append(AddressKeyValue(key="account", value=o.addresses.account))
    d.addressItems.items.append(AddressKeyValue(key="receiver", value=o.addresses.receiver))
    d.addressItems.items.append(AddressKeyValue(key="cancellationReceiver", value=o.addresses.cancellationReceiver))
    d.addressItems.items.append(AddressKeyValue(key="callbackContract", value=o.addresses.callbackContract))
    d.addressItems.items.append(AddressKeyValue(key="uiFeeReceiver", value=o.addresses.uiFeeReceiver))
    d.addressItems.items.append(AddressKeyValue(key="market", value=o.addresses.market))
    d.addressItems.items.append(AddressKeyValue(key="initialCollateralToken", value=o.addresses.initialCollateralToken))
    d.addressItems.arrayItems.append(AddressArrayKeyValue(key="swapPath", value=o.addresses.swapPath))
    d.uintItems.items.append(UintKeyValue(key="orderType", value=convert(o.numbers.orderType, uint256)))
    d.uintItems.items.append(UintKeyValue(key="decreasePositionSwapType",
                                          value=convert(o.numbers.decreasePositionSwapType, uint256)))
    d.uintItems.items.append(UintKeyValue(key="sizeDeltaUsd", value=o.numbers.sizeDeltaUsd))
    d.uintItems.items.append(UintKeyValue(key="initialCollateralDeltaAmount", value=o.numbers.initialCollateralDeltaAmount))
    d.uintItems.items.append(UintKeyValue(key="triggerPrice", value=o.numbers.triggerPrice))
    d.uintItems.items.append(UintKeyValue(key="acceptablePrice", value=o.numbers.acceptablePrice))
    d.uintItems.items.append(UintKeyValue(key="executionFee", value=o.numbers.executionFee))
    d.uintItems.items.append(UintKeyValue(key="callbackGasLimit", value=o.numbers.callbackGasLimit))
    d.uintItems.items.append(UintKeyValue(key="minOutputAmount", value=o.numbers.minOutputAmount))
    d.uintItems.items.append(UintKeyValue(key="updatedAtTime", value=o.numbers.updatedAtTime))
    d.uintItems.items.append(UintKeyValue(key="validFromTime", value=o.numbers.validFromTime))
    d.uintItems.items.append(UintKeyValue(key="srcChainId", value=o.numbers.srcChainId))
    d.boolItems.items.append(BoolKeyValue(key="isLong", value=o.flags.isLong))
    d.boolItems.items.append(BoolKeyValue(key="shouldUnwrapNativeToken", value=o.flags.shouldUnwrapNativeToken))
    d.boolItems.items.append(BoolKeyValue(key="isFrozen", value=o.flags.isFrozen))
    d.boolItems.items.append(BoolKeyValue(key="autoCancel", value=o.flags.autoCancel))
    d.bytes32Items.items.append(Bytes32KeyValue(key="key", value=key))
    d.bytes32Items.arrayItems.append(Bytes32ArrayKeyValue(key="dataList", value=o._dataList))
    log EventLog2(msgSender=msg.sender, eventName="OrderCreated", eventNameHash="OrderCreated", topic1=key,
                  topic2=convert(convert(o.addresses.account, uint160), bytes32), eventData=d)
