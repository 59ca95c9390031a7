# pragma version ~=0.4.3
"""
@title Stand-in for Arbitrum's ArbSys (0x64) and ArbGasInfo (0x6C) precompiles, for an anvil fork
@notice GMX v2 reads these precompiles through its Chain library (gmx-synthetics
        contracts/chain/Chain.sol, with the interfaces in contracts/chain/ArbSys.sol and
        contracts/chain/ArbGasInfo.sol) whenever block.chainid is Arbitrum's (42161, or the
        Arbitrum testnet's): currentBlockNumber() -> ArbSys.arbBlockNumber(), getBlockHash(n) ->
        ArbSys.arbBlockHash(n), getCurrentTxL1GasFees() -> ArbGasInfo.getCurrentTxL1GasFees()
        (the keeper's L1 data fee, refunded from the execution fee). Those three are all it calls.
        The pinned anvil has no Arbitrum precompiles, so a fork of Arbitrum answers nothing there
        and GMX's calls revert. `hedger.sim.gmx_fork.install_arbitrum_precompiles` places this
        contract's runtime code at both addresses (anvil_setCode). On a fork the L2 block is the
        fork's own block and there is no L1 batch to pay for, so: block.number, blockhash(n) and 0.
        Our own code; not ArbOS.
"""


@view
@external
def arbBlockNumber() -> uint256:
    """@notice The current L2 block number (ArbSys): the fork's own block number."""
    return block.number


@view
@external
def arbBlockHash(arbBlockNum: uint256) -> bytes32:
    """@notice Hash of an earlier L2 block (ArbSys). Reverts for the current or a later block and
            for blocks more than 256 behind, as ArbSys does."""
    return blockhash(arbBlockNum)


@view
@external
def getCurrentTxL1GasFees() -> uint256:
    """@notice The current transaction's L1 data fee (ArbGasInfo): none on a local fork."""
    return 0
