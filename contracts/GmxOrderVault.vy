# pragma version ~=0.4.3
"""
@title GMX-v2-shaped OrderVault (stand-in, our own code)
@notice Holds the collateral and WNT execution fees sent for pending orders. Like GMX's
        StrictBank, it records its last known balance per token, so a handler learns how much was
        sent for an order with recordTransferIn(token) (contracts/bank/StrictBank.sol semantics).
        Only CONTROLLER contracts move funds out.
"""
from ethereum.ercs import IERC20

interface IRoleStore:
    def hasRole(account: address, roleKey: bytes32) -> bool: view

interface IWNT:
    def withdraw(wad: uint256): nonpayable

CONTROLLER: constant(bytes32) = 0x97adf037b2472f4a6a9825eff7d2dd45e37f2dc308df2a260d6a72af4189a65b

roleStore: public(immutable(address))
tokenBalances: public(HashMap[address, uint256])


@deploy
def __init__(_roleStore: address):
    roleStore = _roleStore


@payable
@external
def __default__():
    # ETH arrives only from the WNT contract when unwrapping for a refund
    pass


@internal
@view
def _onlyController():
    assert staticcall IRoleStore(roleStore).hasRole(msg.sender, CONTROLLER), "Unauthorized: CONTROLLER"


@external
def recordTransferIn(token: address) -> uint256:
    """Amount of `token` received since the last record (what the order's sender sent)."""
    self._onlyController()
    prev: uint256 = self.tokenBalances[token]
    now: uint256 = staticcall IERC20(token).balanceOf(self)
    self.tokenBalances[token] = now
    return now - prev


@external
def transferOut(token: address, receiver: address, amount: uint256):
    self._onlyController()
    if amount == 0:
        return
    assert receiver != self, "OrderVault: SelfTransferNotSupported"
    assert extcall IERC20(token).transfer(receiver, amount, default_return_value=True), "OrderVault: transfer failed"
    self.tokenBalances[token] = staticcall IERC20(token).balanceOf(self)


@external
def transferOutNativeToken(wnt: address, receiver: address, amount: uint256):
    """Unwrap `amount` WNT and send it as native ETH (refunds of execution fees)."""
    self._onlyController()
    if amount == 0:
        return
    extcall IWNT(wnt).withdraw(amount)
    self.tokenBalances[wnt] = staticcall IERC20(wnt).balanceOf(self)
    send(receiver, amount)
