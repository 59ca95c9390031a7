# pragma version ~=0.4.3
"""
@title Wrapped native token (WETH9-shaped, stand-in for GMX's WNT)
@notice deposit() wraps the sent ETH 1:1, withdraw(amount) unwraps; an ERC20 otherwise.
        GMX takes execution fees in WNT (ExchangeRouter.sendWnt wraps the sent ETH).
"""
from ethereum.ercs import IERC20
implements: IERC20

name: public(String[32])
symbol: public(String[8])
decimals: public(constant(uint8)) = 18
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])

event Deposit:
    dst: indexed(address)
    wad: uint256

event Withdrawal:
    src: indexed(address)
    wad: uint256


@deploy
def __init__():
    self.name = "Wrapped Ether (stand-in)"
    self.symbol = "WETH"


@view
@external
def totalSupply() -> uint256:
    return self.balance


@payable
@external
def deposit():
    self.balanceOf[msg.sender] += msg.value
    log Deposit(dst=msg.sender, wad=msg.value)
    log IERC20.Transfer(sender=empty(address), receiver=msg.sender, value=msg.value)


@external
def withdraw(wad: uint256):
    self.balanceOf[msg.sender] -= wad
    log Withdrawal(src=msg.sender, wad=wad)
    log IERC20.Transfer(sender=msg.sender, receiver=empty(address), value=wad)
    send(msg.sender, wad)


@internal
def _transfer(src: address, dst: address, amount: uint256):
    assert self.balanceOf[src] >= amount, "WNT: transfer amount exceeds balance"
    self.balanceOf[src] -= amount
    self.balanceOf[dst] += amount
    log IERC20.Transfer(sender=src, receiver=dst, value=amount)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    if sender != msg.sender:
        allowed: uint256 = self.allowance[sender][msg.sender]
        if allowed != max_value(uint256):
            assert allowed >= amount, "WNT: insufficient allowance"
            self.allowance[sender][msg.sender] = allowed - amount
    self._transfer(sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log IERC20.Approval(owner=msg.sender, spender=spender, value=amount)
    return True
