# pragma version ~=0.4.3
"""
@title Multicall3-compatible aggregator (aggregate3 only)
@notice Same ABI as the canonical Multicall3 (0xcA11bde05977b3631167028862bE2a173976CA11)
        `aggregate3((address,bool,bytes)[]) -> (bool,bytes)[]`, so the hedger reads
        through the canonical contract on a fork and through this one on a bare local chain.
@dev    Vyper needs bounds: up to 320 calls of up to 640 bytes of call data and of
        return data each (a reference-market cycle needs about 25 calls per market).
"""

struct Call3:
    target: address
    allowFailure: bool
    callData: Bytes[640]

struct Result:
    success: bool
    returnData: Bytes[640]


@external
def aggregate3(calls: DynArray[Call3, 320]) -> DynArray[Result, 320]:
    out: DynArray[Result, 320] = []
    for c: Call3 in calls:
        success: bool = False
        data: Bytes[640] = b""
        success, data = raw_call(c.target, c.callData, max_outsize=640, revert_on_failure=False)
        assert success or c.allowFailure, "Multicall3: call failed"
        out.append(Result(success=success, returnData=data))
    return out
