# pragma version ~=0.4.3
"""
@title GMX-v2-shaped DataStore (stand-in, our own code)
@notice Key-value store with GMX's getter/setter names and bytes32 sets (ORDER_LIST,
        ACCOUNT_ORDER_LIST, POSITION_LIST, ...). Keys are derived as in gmx-synthetics
        contracts/data/Keys.sol: keccak256(abi.encode("NAME")) for globals and
        keccak256(abi.encode(NAME_KEY, market, ...)) for parameterised keys. Writes need the
        CONTROLLER role, as in GMX.
@dev    Vyper reserves the word `value`, so setters name that input `val` (GMX: `value`); the
        hedger calls only getters.
        Sets keep insertion order with swap-and-pop removal (order of the values after a removal
        is not stable, as with OpenZeppelin's EnumerableSet that GMX uses).
"""

interface IRoleStore:
    def hasRole(account: address, roleKey: bytes32) -> bool: view

CONTROLLER: constant(bytes32) = 0x97adf037b2472f4a6a9825eff7d2dd45e37f2dc308df2a260d6a72af4189a65b
MAX_PAGE: constant(uint256) = 1000

roleStore: public(immutable(address))

uintValues: public(HashMap[bytes32, uint256])
intValues: public(HashMap[bytes32, int256])
addressValues: public(HashMap[bytes32, address])
boolValues: public(HashMap[bytes32, bool])
bytes32Values: public(HashMap[bytes32, bytes32])

# bytes32 sets: values by index, 1-based index by value, count
_setValues: HashMap[bytes32, HashMap[uint256, bytes32]]
_setIndex: HashMap[bytes32, HashMap[bytes32, uint256]]
_setCount: HashMap[bytes32, uint256]


@deploy
def __init__(_roleStore: address):
    roleStore = _roleStore


@internal
@view
def _onlyController():
    assert staticcall IRoleStore(roleStore).hasRole(msg.sender, CONTROLLER), "Unauthorized: CONTROLLER"


# ------------------------------------------------------------------ scalars

@view
@external
def getUint(key: bytes32) -> uint256:
    return self.uintValues[key]


@external
def setUint(key: bytes32, val: uint256) -> uint256:
    self._onlyController()
    self.uintValues[key] = val
    return val


@external
def removeUint(key: bytes32):
    self._onlyController()
    self.uintValues[key] = 0


@external
def incrementUint(key: bytes32, val: uint256) -> uint256:
    self._onlyController()
    v: uint256 = self.uintValues[key] + val
    self.uintValues[key] = v
    return v


@external
def decrementUint(key: bytes32, val: uint256) -> uint256:
    self._onlyController()
    v: uint256 = self.uintValues[key] - val
    self.uintValues[key] = v
    return v


@external
def applyDeltaToInt(key: bytes32, val: int256) -> int256:
    self._onlyController()
    v: int256 = self.intValues[key] + val
    self.intValues[key] = v
    return v


@external
def applyBoundedDeltaToUint(key: bytes32, val: int256) -> uint256:
    """Adds a signed delta, flooring the result at zero (GMX: used for pool and impact amounts)."""
    self._onlyController()
    current: uint256 = self.uintValues[key]
    v: uint256 = 0
    if val >= 0:
        v = current + convert(val, uint256)
    elif convert(-val, uint256) < current:
        v = current - convert(-val, uint256)
    self.uintValues[key] = v
    return v


@view
@external
def getInt(key: bytes32) -> int256:
    return self.intValues[key]


@external
def setInt(key: bytes32, val: int256) -> int256:
    self._onlyController()
    self.intValues[key] = val
    return val


@external
def incrementInt(key: bytes32, val: int256) -> int256:
    self._onlyController()
    v: int256 = self.intValues[key] + val
    self.intValues[key] = v
    return v


@view
@external
def getAddress(key: bytes32) -> address:
    return self.addressValues[key]


@external
def setAddress(key: bytes32, val: address) -> address:
    self._onlyController()
    self.addressValues[key] = val
    return val


@view
@external
def getBool(key: bytes32) -> bool:
    return self.boolValues[key]


@external
def setBool(key: bytes32, val: bool) -> bool:
    self._onlyController()
    self.boolValues[key] = val
    return val


@view
@external
def getBytes32(key: bytes32) -> bytes32:
    return self.bytes32Values[key]


@external
def setBytes32(key: bytes32, val: bytes32) -> bytes32:
    self._onlyController()
    self.bytes32Values[key] = val
    return val


# ------------------------------------------------------------------ bytes32 sets

@view
@external
def containsBytes32(setKey: bytes32, val: bytes32) -> bool:
    return self._setIndex[setKey][val] != 0


@view
@external
def getBytes32Count(setKey: bytes32) -> uint256:
    return self._setCount[setKey]


@view
@external
def getBytes32ValuesAt(setKey: bytes32, start: uint256, end: uint256) -> DynArray[bytes32, MAX_PAGE]:
    """Values [start, end) of the set, `end` clamped to its size (GMX's EnumerableValues)."""
    count: uint256 = self._setCount[setKey]
    stop: uint256 = min(end, count)
    out: DynArray[bytes32, MAX_PAGE] = []
    if start >= stop:
        return out
    assert stop - start <= MAX_PAGE, "getBytes32ValuesAt: at most 1000 values per call"
    for i: uint256 in range(start, stop, bound=MAX_PAGE):
        out.append(self._setValues[setKey][i])
    return out


@external
def addBytes32(setKey: bytes32, val: bytes32):
    self._onlyController()
    if self._setIndex[setKey][val] != 0:
        return
    n: uint256 = self._setCount[setKey]
    self._setValues[setKey][n] = val
    self._setIndex[setKey][val] = n + 1
    self._setCount[setKey] = n + 1


@external
def removeBytes32(setKey: bytes32, val: bytes32):
    self._onlyController()
    idx: uint256 = self._setIndex[setKey][val]
    if idx == 0:
        return
    last: uint256 = self._setCount[setKey] - 1
    if idx - 1 != last:
        moved: bytes32 = self._setValues[setKey][last]
        self._setValues[setKey][idx - 1] = moved
        self._setIndex[setKey][moved] = idx
    self._setValues[setKey][last] = empty(bytes32)
    self._setIndex[setKey][val] = 0
    self._setCount[setKey] = last
