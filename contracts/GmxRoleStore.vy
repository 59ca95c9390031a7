# pragma version ~=0.4.3
"""
@title GMX-v2-shaped role store (stand-in, our own code)
@notice Roles are keccak256(abi.encode("NAME")) as in gmx-synthetics contracts/role/Role.sol:
        CONTROLLER (handlers, routers), ORDER_KEEPER (executes orders), ROUTER_PLUGIN (may pull
        approved tokens through the Router), ROLE_ADMIN (grants roles). The hedger's `check` reads
        hasRole(exchangeRouter, CONTROLLER). Members of each role are listed as GMX's RoleStore lists
        them (getRoleMemberCount, getRoleMembers(roleKey, start, end): an enumerable set, order not
        kept on removal), which fork mode uses to find a role holder to impersonate.
"""

ROLE_ADMIN: constant(bytes32) = 0x56908b85b56869d7c69cd020749874f238259af9646ca930287866cdd660b7d9

event RoleGranted:
    roleKey: indexed(bytes32)
    account: indexed(address)

event RoleRevoked:
    roleKey: indexed(bytes32)
    account: indexed(address)

MAX_MEMBERS: constant(uint256) = 64

roles: HashMap[address, HashMap[bytes32, bool]]
members: HashMap[bytes32, DynArray[address, MAX_MEMBERS]]
memberPosition: HashMap[bytes32, HashMap[address, uint256]]   # index in members + 1; 0 = not a member


@deploy
def __init__():
    self._grant(msg.sender, ROLE_ADMIN)


@internal
def _grant(account: address, roleKey: bytes32):
    self.roles[account][roleKey] = True
    if self.memberPosition[roleKey][account] == 0:
        self.members[roleKey].append(account)
        self.memberPosition[roleKey][account] = len(self.members[roleKey])
    log RoleGranted(roleKey=roleKey, account=account)


@view
@external
def hasRole(account: address, roleKey: bytes32) -> bool:
    return self.roles[account][roleKey]


@external
def grantRole(account: address, roleKey: bytes32):
    assert self.roles[msg.sender][ROLE_ADMIN], "Unauthorized: ROLE_ADMIN"
    self._grant(account, roleKey)


@external
def revokeRole(account: address, roleKey: bytes32):
    assert self.roles[msg.sender][ROLE_ADMIN], "Unauthorized: ROLE_ADMIN"
    self.roles[account][roleKey] = False
    position: uint256 = self.memberPosition[roleKey][account]
    if position != 0:       # swap the last member into the gap (OpenZeppelin EnumerableSet.remove)
        last: address = self.members[roleKey].pop()
        if last != account:
            self.members[roleKey][position - 1] = last
            self.memberPosition[roleKey][last] = position
        self.memberPosition[roleKey][account] = 0
    log RoleRevoked(roleKey=roleKey, account=account)


@view
@external
def getRoleMemberCount(roleKey: bytes32) -> uint256:
    return len(self.members[roleKey])


@view
@external
def getRoleMembers(roleKey: bytes32, start: uint256, end: uint256) -> DynArray[address, MAX_MEMBERS]:
    """@notice Members [start, end) (GMX's EnumerableValues.valuesAt: end capped at the count,
            nothing when start is past it)."""
    out: DynArray[address, MAX_MEMBERS] = []
    stop: uint256 = min(end, len(self.members[roleKey]))
    if start >= stop:
        return out
    for i: uint256 in range(start, stop, bound=MAX_MEMBERS):
        out.append(self.members[roleKey][i])
    return out
