# pragma version ~=0.4.3
"""
@title Reference price feed with Chainlink's AggregatorV3Interface
@notice Behaves like a Chainlink proxy from a consumer's point of view:
        round ids carry the phase in their high bits
        (`phaseId << 64 | aggregatorRound`), so consecutive rounds of two
        phases are not contiguous. The owner publishes answers and may
        rewrite the latest round's timestamps, so that every consumer guard
        (stale, future, zero round, sequencer grace period) can be tested.
        Deployed with answer 0 it doubles as an L2 sequencer-uptime feed
        (0 = up, 1 = down; startedAt = when the status last changed).
"""

event AnswerUpdated:
    current: indexed(int256)
    roundId: indexed(uint256)
    updatedAt: uint256

event NewRound:
    roundId: indexed(uint256)
    startedBy: indexed(address)
    startedAt: uint256

event RoundTimestampsSet:
    roundId: indexed(uint256)
    updatedAt: uint256
    startedAt: uint256

event PhaseChanged:
    phaseId: uint16

struct Round:
    answer: int256
    startedAt: uint256
    updatedAt: uint256
    answeredInRound: uint80

owner: public(address)
decimals: public(uint8)
description: public(String[64])
version: public(uint256)
phaseId: public(uint16)
aggregatorRound: public(uint64)
latestRound: public(uint80)
rounds: HashMap[uint80, Round]


@deploy
def __init__(decimals_: uint8, description_: String[64], phase_: uint16):
    assert phase_ > 0, "phase must be positive"
    self.owner = msg.sender
    self.decimals = decimals_
    self.description = description_
    self.version = 4
    self.phaseId = phase_


@internal
def _publish(answer: int256, ts: uint256):
    self.aggregatorRound += 1
    rid: uint80 = convert((convert(self.phaseId, uint256) << 64) | convert(self.aggregatorRound, uint256), uint80)
    self.rounds[rid] = Round(answer=answer, startedAt=ts, updatedAt=ts, answeredInRound=rid)
    self.latestRound = rid
    log NewRound(roundId=convert(rid, uint256), startedBy=msg.sender, startedAt=ts)
    log AnswerUpdated(current=answer, roundId=convert(rid, uint256), updatedAt=ts)


@external
def setAnswer(answer: int256):
    """@notice Publish a new round stamped with the current block time."""
    assert msg.sender == self.owner, "only owner"
    self._publish(answer, block.timestamp)


@external
def setRoundTimestamps(updatedAt: uint256, startedAt: uint256):
    """@notice Rewrite the latest round's timestamps (for guard tests)."""
    assert msg.sender == self.owner, "only owner"
    rid: uint80 = self.latestRound
    assert rid != 0, "no round"
    self.rounds[rid].updatedAt = updatedAt
    self.rounds[rid].startedAt = startedAt
    log RoundTimestampsSet(roundId=convert(rid, uint256), updatedAt=updatedAt, startedAt=startedAt)


@external
def setPhase(phase_: uint16):
    """@notice Start a new phase, as when a proxy points to a new aggregator."""
    assert msg.sender == self.owner, "only owner"
    assert phase_ > self.phaseId, "phase must increase"
    self.phaseId = phase_
    self.aggregatorRound = 0
    log PhaseChanged(phaseId=phase_)


@external
def transferOwnership(newOwner: address):
    assert msg.sender == self.owner, "only owner"
    self.owner = newOwner


@view
@external
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    """@notice All zeros before the first round (a consumer must refuse it)."""
    rid: uint80 = self.latestRound
    r: Round = self.rounds[rid]
    return rid, r.answer, r.startedAt, r.updatedAt, r.answeredInRound


@view
@external
def getRoundData(roundId: uint80) -> (uint80, int256, uint256, uint256, uint80):
    r: Round = self.rounds[roundId]
    assert r.answeredInRound != 0, "No data present"
    return roundId, r.answer, r.startedAt, r.updatedAt, r.answeredInRound
