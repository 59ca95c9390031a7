# pragma version ~=0.4.3
"""
@title GMX-v2-shaped ReferralStorage (stand-in, our own code)
@notice No referral codes on the stand-in: every trader's code is empty, so no discount applies
        (the views GMX's Reader reads: traderReferralCodes, codeOwners, getTraderReferralInfo).
"""


@view
@external
def traderReferralCodes(account: address) -> bytes32:
    return empty(bytes32)


@view
@external
def codeOwners(code: bytes32) -> address:
    return empty(address)


@view
@external
def getTraderReferralInfo(account: address) -> (bytes32, address):
    return empty(bytes32), empty(address)
