"""`hedger check`: confirm on chain that the configuration points at what it should.

Every configured address has code and answers its interface with sane values
(feeds: decimals and a round; tokens: decimals; the market: its own checks,
including that it takes the configured collateral), the RPC reports the
configured chain id, and the signer has gas. `run-once` and `watch` run it at
start and refuse (exit 5) when something is wrong; each failure says how to fix it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable

from web3 import Web3

from hedger.chain.abi import AGGREGATOR_V3, ERC20, load_abi
from hedger.chain.reader import MULTICALL_FIX, ChainReader
from hedger.core.secrets import RPC_FIX
from hedger.core.errors import ChainGuardError, HedgerError, RpcError
from hedger.core.fixedpoint import fmt_units
from hedger.core.types import UNIT
from hedger.decide import guards

if TYPE_CHECKING:
    from hedger.cycle.multimarket import MultiKeeper

log = logging.getLogger("hedger.ops.check")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    # False: `hedger check` fails on it, but `run-once`, `watch` and `unwind` start anyway, because
    # each cycle guards it (prices in doubt hold risk-increasing steps; risk-reducing ones still go)
    blocking: bool = True


MIN_GAS_BALANCE = UNIT // 100   # 0.01 ETH: a few hedge cycles at high fees


def _call(w3: Web3, address: str, abi: str, fn: str, *args: Any) -> Any:
    c = w3.eth.contract(address=Web3.to_checksum_address(address), abi=load_abi(abi))
    return c.get_function_by_name(fn)(*args).call()


def run_checks(k: Any, min_gas_balance: int = MIN_GAS_BALANCE) -> list[Check]:
    """All checks for a Keeper's configuration. Raises RpcError when the RPC cannot be reached."""
    s, w3 = k.settings, k.w3
    out: list[Check] = []
    try:
        chain_id = int(w3.eth.chain_id)
    except Exception as err:
        raise RpcError(f"cannot reach the RPC at {s.rpc_display}: {type(err).__name__}. Fix: {RPC_FIX}") from err
    if s.chain_id is not None:
        out.append(Check("chain id", chain_id == s.chain_id, f"RPC reports {chain_id}, HEDGER_CHAIN_ID is {s.chain_id}",
                         "point HEDGER_RPC_URL at the right chain, or fix HEDGER_CHAIN_ID"))
    else:
        out.append(Check("chain id", True, f"RPC reports {chain_id} (HEDGER_CHAIN_ID not set: not enforced)"))

    def probe(label: str, var: str, address: str | None, fn: Callable[[], tuple[bool, str]], fix: str) -> None:
        if not address:
            return
        if w3.eth.get_code(Web3.to_checksum_address(address)) in (b"", None):
            out.append(Check(label, False, f"no contract at {address}", f"check {var}: nothing is deployed there "
                                                                         f"on chain {chain_id}"))
            return
        try:
            ok, detail = fn()
        except HedgerError as err:          # says itself what is wrong and the fix (GMX's router, say)
            detail, _, own_fix = str(err).partition(". Fix: ")
            out.append(Check(label, False, detail, own_fix or fix))
            return
        except Exception as err:
            ok, detail = False, f"{address} does not answer as expected ({type(err).__name__})"
        out.append(Check(label, ok, detail, fix if not ok else ""))

    def feed(address: str) -> Callable[[], tuple[bool, str]]:
        def f() -> tuple[bool, str]:
            dec = _call(w3, address, AGGREGATOR_V3, "decimals")
            rid, answer, _, updated, _ = _call(w3, address, AGGREGATOR_V3, "latestRoundData")
            desc = _call(w3, address, AGGREGATOR_V3, "description")
            return dec <= 18, f"{address} '{desc}', {dec} decimals, round {rid}, answer {answer}"
        return f

    def token(address: str) -> Callable[[], tuple[bool, str]]:
        def f() -> tuple[bool, str]:
            dec = _call(w3, address, ERC20, "decimals")
            sym = _call(w3, address, ERC20, "symbol")
            return dec <= 18, f"{address} {sym}, {dec} decimals"
        return f

    def multicall(address: str) -> Callable[[], tuple[bool, str]]:
        def f() -> tuple[bool, str]:
            data = ChainReader.AGGREGATE3 + w3.codec.encode(["(address,bool,bytes)[]"], [[]]).hex()
            (results,) = w3.codec.decode(["(bool,bytes)[]"], bytes(w3.eth.call(
                {"to": Web3.to_checksum_address(address), "data": data})))
            return results == (), f"{address} answers aggregate3 (the reads go through it)"
        return f

    # first: every other read of a cycle goes through it, and would fail naming the wrong setting
    probe("multicall", "HEDGER_MULTICALL", s.multicall, multicall(s.multicall or ""), MULTICALL_FIX)
    probe("price feed", "HEDGER_ORACLE", s.oracle, feed(s.oracle), "HEDGER_ORACLE must be an AggregatorV3 proxy")
    probe("sequencer feed", "HEDGER_SEQUENCER_FEED", s.sequencer_feed, feed(s.sequencer_feed or ""),
          "HEDGER_SEQUENCER_FEED must be a sequencer-uptime feed")
    probe("second price feed", "HEDGER_SECOND_ORACLE", s.second_oracle, feed(s.second_oracle or ""),
          "HEDGER_SECOND_ORACLE must be an AggregatorV3 proxy")
    probe("spot token", "HEDGER_SPOT_TOKEN", s.spot_token, token(s.spot_token), "HEDGER_SPOT_TOKEN must be an ERC20")
    probe("collateral token", "HEDGER_COLLATERAL_TOKEN", s.collateral_token, token(s.collateral_token),
          "HEDGER_COLLATERAL_TOKEN must be an ERC20")
    if s.spot_token and s.spot_token.lower() == s.collateral_token.lower() and k.holder == k.account:
        # the wallet's collateral would be hedged as the asset, and every deposit would shrink the exposure
        out.append(Check("spot vs collateral", False, f"HEDGER_SPOT_TOKEN is HEDGER_COLLATERAL_TOKEN "
                         f"({s.spot_token}), held by the hedged account {k.account}: its collateral would be "
                         "hedged as the asset",
                         "set HEDGER_SPOT_TOKEN to the hedged asset's token (`hedger deploy` prints it as \"spot\", "
                         "beside \"collateral\"), or HEDGER_HOLDER to the address that holds the asset"))
    probe("collateral feed", "HEDGER_COLLATERAL_FEED", s.collateral_feed, feed(s.collateral_feed or ""),
          "HEDGER_COLLATERAL_FEED must be an AggregatorV3 feed of the collateral token's USD price")
    probe("market", "HEDGER_MARKET", s.market, lambda: k.adapter.interface_check(),
          f"HEDGER_MARKET must be a {s.protocol} market that takes HEDGER_COLLATERAL_TOKEN")
    if all(c.ok for c in out if c.name == "market"):
        # not blocking: each cycle refuses what they find (a frozen reserve, an account in e-mode),
        # and the risk-reducing steps (unwind) still go
        out += [Check(name, ok, detail, fix if not ok else "", blocking=False)
                for name, ok, detail, fix in k.adapter.venue_checks(k.account, k.holder)]
    # the collateral's spender is the market's to name (Aave's pool): not asked of a market that failed
    if all(c.ok for c in out if c.name in ("multicall", "collateral token", "collateral feed", "market")):
        out.append(collateral_check(k))
    if k.signer is not None:
        bal = int(w3.eth.get_balance(k.signer.address))
        ok = bal >= min_gas_balance
        out.append(Check("signer gas", ok,
                         f"{k.signer.address} holds {bal / UNIT:.4f} ETH (minimum {min_gas_balance / UNIT:.4f})",
                         "" if ok else f"send ETH to {k.signer.address} for gas"))
    else:
        out.append(Check("signer", True, "none configured: dry run (nothing will be sent)"))
    if all(c.ok for c in out):
        out += price_checks(k)
    return out


def collateral_check(k: Any) -> Check:
    """The collateral as the hedger sees it: token, decimals, price source and the spender its
    deposits approve."""
    try:
        c = k.collateral_token()
    except HedgerError as err:
        return Check("collateral", False, f"cannot read the collateral token: {err}",
                     "check HEDGER_COLLATERAL_TOKEN")
    spender = c.spender + (" (the market)" if c.spender == k.adapter.market else "")
    return Check("collateral", True, f"token {c.address}{f' {c.symbol}' if c.symbol else ''}, {c.decimals} decimals, "
                                     f"priced by {c.price_source}, approved to {spender}")


def _pct(frac_e18: int) -> str:
    return fmt_units(frac_e18 * 100, 18, 2) + "%"


def price_checks(k: Any) -> list[Check]:
    """The configured feed against the market's own price (the price that liquidates) and, when
    set, the second feed: beyond ``HEDGER_MAX_PRICE_DIVERGENCE`` the feed is probably the wrong one
    (another asset, another denomination) or one of the sources is broken."""
    s = k.settings
    limit = s.policy.max_price_divergence
    try:
        snap = k.read()
    except HedgerError as err:
        return [Check("prices", False, f"cannot read the prices: {err}", "fix the address named above")]
    out: list[Check] = []
    if snap.collateral_feed is not None:
        problem = guards.feed_problem(snap.collateral_feed, snap.chain.block_timestamp, s.policy.oracle_max_age_s)
        out.append(Check("collateral price", problem is None,
                         problem or f"HEDGER_COLLATERAL_FEED values the collateral at {_usd(snap.collateral_price)}",
                         "" if problem is None else "check HEDGER_COLLATERAL_FEED, or wait for a fresh round "
                         "(until then every cycle refuses)", blocking=False))
    price = snap.oracle.price_e18
    if price <= 0:
        return out + [Check("oracle vs market price", False, f"HEDGER_ORACLE answers {snap.oracle.answer}",
                            "HEDGER_ORACLE must be a live price feed", blocking=False)]
    sources = [("market price", "the market's own price", snap.market.price,
                "the market reports its price invalid" if snap.market.price_invalid else None, "HEDGER_MARKET")]
    if s.second_oracle or s.second_twap:
        label = f"HEDGER_SECOND_ORACLE {s.second_oracle}" if s.second_oracle else snap.reference_source
        sources.append(("second price", label, snap.reference_price, snap.reference_problem, "HEDGER_SECOND_ORACLE"))
    for name, label, other, problem, var in sources:
        check_name = f"oracle vs {name}"
        if problem is not None or not other:
            out.append(Check(check_name, False, f"{label} is unusable: {problem or 'zero'}",
                             f"check {var}, or wait until its price is valid", blocking=False))
            continue
        div = abs(price - other) * UNIT // price
        ok = div <= limit
        out.append(Check(check_name, ok,
                         f"HEDGER_ORACLE {_usd(price)}, {label} {_usd(other)}: {_pct(div)} apart "
                         f"(limit {_pct(limit)}, HEDGER_MAX_PRICE_DIVERGENCE)",
                         "" if ok else f"check that HEDGER_ORACLE prices the market's asset in USD (the market "
                         f"reads {snap.market.feed or 'its own feed'}), and {var}; or raise "
                         "HEDGER_MAX_PRICE_DIVERGENCE if the gap is expected", blocking=False))
    return out


def _usd(v: int) -> str:
    return "$" + fmt_units(v, 18, 2)


def require_ok(checks: list[Check]) -> None:
    """Raise ChainGuardError (exit 5) for a failing blocking check; a non-blocking one is logged."""
    for c in checks:
        if not c.ok and not c.blocking:
            log.warning("%s: %s. Fix: %s", c.name, c.detail, c.fix)
    bad = [c for c in checks if not c.ok and c.blocking]
    if bad:
        raise ChainGuardError("; ".join(f"{c.name}: {c.detail}. Fix: {c.fix}" for c in bad))


def print_checks(checks: list[Check]) -> None:
    w = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{'OK  ' if c.ok else 'FAIL'} {c.name.ljust(w)}  {c.detail}"
              + (f"\n     fix: {c.fix}" if c.fix and not c.ok else ""))


def run_multi_checks(mk: "MultiKeeper") -> list[Check]:
    """`hedger check` for every market of ``HEDGER_MARKETS``; the account-wide checks (chain id,
    collateral, signer) once."""
    out: list[Check] = []
    seen: set[tuple[str, str]] = set()
    for name, k in mk.keepers.items():
        for c in run_checks(k):
            if c.name in ("chain id", "collateral token", "collateral feed", "signer gas", "signer"):
                if (c.name, c.detail) in seen:
                    continue
                seen.add((c.name, c.detail))
                out.append(c)
            else:
                out.append(replace(c, name=f"{name}: {c.name}"))
    return out
