# pragma version ~=0.4.3
"""
@title Reference ERC20 token
@notice A plain ERC20 whose decimals are chosen at deployment (6 for a
        USDC-like collateral, 18 for a WETH-like spot asset). Only the
        deployer may mint.
        It also carries USDC's pause and blacklist (Circle's FiatTokenV2,
        Pausable and Blacklistable), so tests can exercise a frozen
        collateral: the deployer is the owner and holds USDC's pauser and
        blacklister roles. While paused, transfer, transferFrom, approve and
        mint revert with "Pausable: paused"; a blacklisted caller, sender,
        receiver or spender makes them revert with
        "Blacklistable: account is blacklisted" (checks in USDC's order:
        pause, then msg.sender, then the other parties).
        And, switched on by the owner (setApproveFromZeroOnly), USDT's
        approve rule: an allowance can be changed only from or to zero
        (Tether's TetherToken reverts otherwise, against the approve race).
"""

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

event Pause:
    pass

event Unpause:
    pass

event Blacklisted:
    account: indexed(address)

event UnBlacklisted:
    account: indexed(address)

name: public(String[32])
symbol: public(String[16])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
minter: public(address)
owner: public(address)
paused: public(bool)
_blacklisted: HashMap[address, bool]
approveFromZeroOnly: public(bool)    # USDT's rule, off by default


@deploy
def __init__(name_: String[32], symbol_: String[16], decimals_: uint8):
    self.name = name_
    self.symbol = symbol_
    self.decimals = decimals_
    self.minter = msg.sender
    self.owner = msg.sender


# ------------------------------------------------------------------ pause and blacklist

@internal
@view
def _whenNotPaused():
    assert not self.paused, "Pausable: paused"


@internal
@view
def _notBlacklisted(account: address):
    assert not self._blacklisted[account], "Blacklistable: account is blacklisted"


@external
@view
def isBlacklisted(account: address) -> bool:
    return self._blacklisted[account]


@external
def pause():
    assert msg.sender == self.owner, "Pausable: caller is not the pauser"
    self.paused = True
    log Pause()


@external
def unpause():
    assert msg.sender == self.owner, "Pausable: caller is not the pauser"
    self.paused = False
    log Unpause()


@external
def blacklist(account: address):
    assert msg.sender == self.owner, "Blacklistable: caller is not the blacklister"
    self._blacklisted[account] = True
    log Blacklisted(account=account)


@external
def unBlacklist(account: address):
    assert msg.sender == self.owner, "Blacklistable: caller is not the blacklister"
    self._blacklisted[account] = False
    log UnBlacklisted(account=account)


# ------------------------------------------------------------------ ERC20

@external
def mint(receiver: address, amount: uint256):
    self._whenNotPaused()
    assert msg.sender == self.minter, "only minter"
    self._notBlacklisted(msg.sender)
    self._notBlacklisted(receiver)
    assert receiver != empty(address), "mint to zero address"
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=empty(address), receiver=receiver, value=amount)


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "transfer to zero address"
    assert self.balanceOf[sender] >= amount, "transfer amount exceeds balance"
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    log Transfer(sender=sender, receiver=receiver, value=amount)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._whenNotPaused()
    self._notBlacklisted(msg.sender)
    self._notBlacklisted(receiver)
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    self._whenNotPaused()
    self._notBlacklisted(msg.sender)
    self._notBlacklisted(sender)
    self._notBlacklisted(receiver)
    allowed: uint256 = self.allowance[sender][msg.sender]
    if allowed != max_value(uint256):
        assert allowed >= amount, "transfer amount exceeds allowance"
        self.allowance[sender][msg.sender] = allowed - amount
    self._transfer(sender, receiver, amount)
    return True


@external
def setApproveFromZeroOnly(on: bool):
    assert msg.sender == self.owner, "only owner"
    self.approveFromZeroOnly = on


@external
def approve(spender: address, amount: uint256) -> bool:
    self._whenNotPaused()
    self._notBlacklisted(msg.sender)
    self._notBlacklisted(spender)
    if self.approveFromZeroOnly:
        assert amount == 0 or self.allowance[msg.sender][spender] == 0, "USDT: approve from non-zero"
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True
