# pragma version ~=0.4.3
"""
@title GMX-v2-shaped Router (stand-in, our own code)
@notice Users approve their tokens to this Router; only a ROUTER_PLUGIN (the ExchangeRouter)
        may move them, and only from the account that called the plugin
        (gmx-synthetics contracts/router/Router.sol pluginTransfer semantics).
"""
from ethereum.ercs import IERC20

interface IRoleStore:
    def hasRole(account: address, roleKey: bytes32) -> bool: view

ROUTER_PLUGIN: constant(bytes32) = 0xc82e6cc76072f8edb32d42796e58e13ab6e145524eb6b36c073be82f20d410f3

roleStore: public(immutable(address))


@deploy
def __init__(_roleStore: address):
    roleStore = _roleStore


@external
def pluginTransfer(token: address, account: address, receiver: address, amount: uint256):
    assert staticcall IRoleStore(roleStore).hasRole(msg.sender, ROUTER_PLUGIN), "Unauthorized: ROUTER_PLUGIN"
    assert extcall IERC20(token).transferFrom(account, receiver, amount, default_return_value=True), \
        "Router: transferFrom failed"
