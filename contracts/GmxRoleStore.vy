# pragma version ~=0.4.3
"""
@title GMX-v2-shaped role store (stand-in, our own code)
@notice Roles are keccak256(abi.encode("NAME")) as in gmx-synthetics contracts/role/Role.sol:
        CONTROLLER (handlers, routers), ORDER_KEEPER (executes orders), ROUTER_PLUGIN (may pull
        approved tokens through the Router), ROLE_ADMIN (grants roles). The hedger's `check` reads
        hasRole(exchangeRouter, CONTROLLER).
"""

ROLE_ADMIN: constant(bytes32) = 0x56908b85b56869d7c69cd020749874f238259af9646ca930287866cdd660b7d9

event RoleGranted:
    roleKey: indexed(bytes32)
    account: indexed(address)

event RoleRevoked:
    roleKey: indexed(bytes32)
    account: indexed(address)

roles: HashMap[address, HashMap[bytes32, bool]]


@deploy
def __init__():
    self.roles[msg.sender][ROLE_ADMIN] = True
    log RoleGranted(roleKey=ROLE_ADMIN, account=msg.sender)


@view
@external
def hasRole(account: address, roleKey: bytes32) -> bool:
    return self.roles[account][roleKey]


@external
def grantRole(account: address, roleKey: bytes32):
    assert self.roles[msg.sender][ROLE_ADMIN], "Unauthorized: ROLE_ADMIN"
    self.roles[account][roleKey] = True
    log RoleGranted(roleKey=roleKey, account=account)


@external
def revokeRole(account: address, roleKey: bytes32):
    assert self.roles[msg.sender][ROLE_ADMIN], "Unauthorized: ROLE_ADMIN"
    self.roles[account][roleKey] = False
    log RoleRevoked(roleKey=roleKey, account=account)
