"""One settings object, read from the environment and ``.env`` (prefix ``HEDGER_``).

Every value is validated here; a bad one raises :class:`ConfigError` naming the
variable and the fix, before anything is read from or sent to a chain. Amounts
and fractions are parsed from decimal strings into integers exactly (never
through float). The private key is kept as a :class:`Secret` and never shown;
the RPC URL is shown only as scheme, host and port.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from dataclasses import dataclass, field, replace
from decimal import ROUND_DOWN, Decimal, InvalidOperation, localcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping
from urllib.parse import urlsplit

from hedger.core.errors import ConfigError
from hedger.core.secrets import RPC_FIX, Secret, redact_url, redact_urls, register_rpc_url
from hedger.chain.executor import ApeAccountSigner, KeySigner, Signer
from hedger.core.types import UNIT, PolicyParams

if TYPE_CHECKING:
    from hedger.chain.executor import GasPolicy

ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
LOCAL_CHAIN_IDS = {31337, 1337}
# HEDGER_CONFIRMATIONS by chain id: blocks on top of a receipt's block before the journal takes it
# as final (until then every cycle re-checks that the block is still canonical: one cheap read, so
# the defaults err long). Local chains never reorganise by themselves; Ethereum finalizes after two
# epochs (64 blocks, ~13 min); OP Stack (Optimism, Base, 2 s blocks) and Arbitrum (0.25 s blocks)
# follow their sequencer, whose rare reorganisations are seconds deep: about a minute of blocks;
# Avalanche's consensus never reorganises an accepted block (one block covers a lagging node).
CONFIRMATIONS = {31337: 0, 1337: 0, 1: 64, 10: 30, 8453: 30, 42161: 240, 43114: 1}
DEFAULT_CONFIRMATIONS = 64   # any other chain
def _show(raw: str) -> str:
    """A raw value fit to quote in an error: short ones as they are, long ones (a key pasted into
    the wrong variable) only by their length."""
    raw = raw.strip()
    return repr(raw) if len(raw) <= 24 else f"a {len(raw)}-character value"


def _dec(name: str, raw: str, *, lo: Decimal | None = None, hi: Decimal | None = None,
         lo_open: bool = False, what: str = "a decimal number") -> Decimal:
    try:
        v = Decimal(raw.strip())
    except InvalidOperation:
        raise ConfigError(name, f"{_show(raw)} is not a number", f"set it to {what}") from None
    if not v.is_finite():
        raise ConfigError(name, f"{_show(raw)} is not finite", f"set it to {what}")
    if lo is not None and (v < lo or (lo_open and v == lo)):
        raise ConfigError(name, f"{_show(raw)} is too small", f"set it to {what}")
    if hi is not None and v > hi:
        raise ConfigError(name, f"{_show(raw)} is too large", f"set it to {what}")
    return v


def _e18(v: Decimal) -> int:
    """Exact: the product is computed with enough digits for any finite input."""
    with localcontext() as ctx:
        ctx.prec = max(80, len(v.as_tuple().digits) + 40)
        return int((v * UNIT).to_integral_value(rounding=ROUND_DOWN))


def positive_e18(name: str, raw: str, example: str) -> int:
    """A positive decimal given on the command line (``--eth-usd 3000``) as an exact E18 integer;
    a ConfigError naming ``name`` otherwise (not a number, not finite, zero or negative)."""
    return _e18(_dec(name, raw, lo=Decimal(0), lo_open=True, what=f"a positive number, e.g. {name} {example}"))


def _int(name: str, raw: str, *, lo: int = 0, what: str = "a whole number") -> int:
    try:
        v = int(raw.strip())
    except ValueError:
        raise ConfigError(name, f"{_show(raw)} is not a whole number", f"set it to {what}") from None
    if v < lo:
        raise ConfigError(name, f"{v} is below {lo}", f"set it to {what}")
    return v


def _gmx_deployment(raw: str | None) -> str | None:
    if not raw or not raw.strip():
        return None
    name = raw.strip().lower()
    if name not in ("arbitrum", "avalanche"):
        raise ConfigError("HEDGER_GMX_DEPLOYMENT", f"{_show(name)} is not a GMX v2 deployment",
                          "set it to arbitrum or avalanche (or set HEDGER_GMX_EXCHANGE_ROUTER and HEDGER_GMX_READER)")
    return name


def _address(name: str, raw: str | None, required: bool = True) -> str | None:
    if raw is None or raw.strip() == "":
        if required:
            raise ConfigError(name, "is not set", "set it to the contract's 0x address (40 hex digits); "
                                                  "`hedger deploy` prints the reference addresses")
        return None
    raw = raw.strip()
    if not ADDRESS_RE.match(raw):
        raise ConfigError(name, f"{_show(raw)} is not an address", "use 0x followed by 40 hex digits")
    from web3 import Web3
    checksummed = Web3.to_checksum_address(raw)
    digits = raw[2:]
    if digits != digits.lower() and digits != digits.upper() and raw[:2] + digits != checksummed:
        # mixed case carries an EIP-55 checksum: a mismatch means a mistyped or altered address
        raise ConfigError(name, f"{raw} fails its EIP-55 checksum (mixed-case letters that do not match "
                          "the address: a typo, or a changed character)",
                          "copy the address again from its source (all-lowercase hex skips the check)")
    return checksummed


# ---------------------------------------------------------------- where the journal and lock live

JOURNAL_NAME = "hedger-journal.sqlite"     # before per-user state: in the current folder


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """The per-user state folder: ``$XDG_STATE_HOME/hedger``, else ``~/.local/state/hedger``
    (a relative XDG_STATE_HOME is ignored, as the XDG spec says)."""
    xdg = (env or {}).get("XDG_STATE_HOME") or os.environ.get("XDG_STATE_HOME") or ""
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "state"
    return base / "hedger"


def state_journal_path(state: Path, chain_id: int, account: str) -> Path:
    """``<state>/<chain id>/<account>.sqlite``; the account's lock sits beside it
    (``<state>/<chain id>/.hedger-<account>.lock``). The folder is created (owner only)."""
    folder = state / str(chain_id)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        raise ConfigError("HEDGER_JOURNAL_PATH", f"cannot create the state folder {folder} "
                          f"({type(err).__name__}: {err.strerror or err})",
                          "set XDG_STATE_HOME to a writable folder, or HEDGER_JOURNAL_PATH to a file path") from None
    return folder / f"{account.lower()}.sqlite"


def _refuse_old_default_journal(folder: Path, state: Path) -> None:
    """An upgrade must not start from an empty journal: a journal or lock left at the old default
    (the current folder) while HEDGER_JOURNAL_PATH is unset is refused, with the fix."""
    old = [p for p in (folder / JOURNAL_NAME,) if p.exists()] + sorted(folder.glob(".hedger-*.lock"))
    if not old:
        return
    found = ", ".join(p.name for p in old)
    journal = folder / JOURNAL_NAME
    raise ConfigError(
        "HEDGER_JOURNAL_PATH",
        f"found {found} in {folder}, where earlier versions kept the journal and lock; the journal now "
        f"defaults to the per-user state folder ({state}/<chain id>/<account, lowercase>.sqlite), and "
        "starting there would forget what this journal recorded",
        f"keep using it: set HEDGER_JOURNAL_PATH={journal.resolve()}; or, with no hedger running, move it "
        f"(`mv {journal.resolve()} {state}/<chain id>/<account, lowercase>.sqlite`) and delete the "
        ".hedger-*.lock files here")


_CHAIN_IDS: dict[str, int] = {}


def _chain_id_of(rpc: str, timeout: int) -> int:
    """The chain id, read from the node (one request per URL and process), when HEDGER_CHAIN_ID
    does not say it: the journal's path depends on it, and the lock beside it must be taken
    before anything is sent."""
    if rpc not in _CHAIN_IDS:
        _CHAIN_IDS[rpc] = _read_chain_id(rpc, timeout)
    return _CHAIN_IDS[rpc]


def _read_chain_id(rpc: str, timeout: int) -> int:
    from hedger.core.errors import RpcError
    from web3 import Web3
    try:
        w3 = Web3(Web3.HTTPProvider(rpc, request_kwargs={"timeout": timeout}, exception_retry_configuration=None))
        return int(w3.eth.chain_id)
    except Exception as err:
        raise RpcError(f"cannot read the chain at {redact_url(rpc)} (its chain id names the journal): "
                       f"{type(err).__name__}: {redact_urls(str(err))[:200]}. Fix: {RPC_FIX}; HEDGER_CHAIN_ID or "
                       "HEDGER_JOURNAL_PATH spares this read") from None


@functools.lru_cache(maxsize=8)
def _ape_account_address(alias: str) -> str:
    """The address of ape account ``alias`` (no passphrase needed to read it)."""
    try:
        from ape import accounts
        return str(accounts.load(alias).address)
    except Exception as err:
        raise ConfigError("HEDGER_APE_ACCOUNT", f"no ape account named {alias!r} ({type(err).__name__})",
                          "create it with `ape accounts import ALIAS`, or set HEDGER_ACCOUNT to its address") from None


# ---------------------------------------------------------------- unknown HEDGER_ names

_WARNED: set[str] = set()
# read by the ape scripts (scripts/), which an installed package does not carry: named here so
# that they stay known wherever the package is
_SCRIPT_VARIABLES = ("HEDGER_DRY_RUN", "HEDGER_DEPLOY_ORACLE", "HEDGER_DEPLOY_COLLATERAL")


def known_variables() -> frozenset[str]:
    """Every ``HEDGER_`` name the project reads: those written in its source (this package and
    ``scripts/``), so a setting added anywhere is known without a second list to keep."""
    return _known_variables()


@functools.lru_cache(maxsize=1)
def _known_variables() -> frozenset[str]:
    root = Path(__file__).resolve().parent
    names: set[str] = set()
    for f in [*root.rglob("*.py"), *(root.parent / "scripts").glob("*.py")]:
        try:
            names.update(re.findall(r"\bHEDGER_[A-Z0-9_]*[A-Z0-9]\b", f.read_text(errors="ignore")))
        except OSError:
            continue
    return frozenset(names)


def _refuse_single_market_variables(g: "Callable[[str], str | None]", markets: "tuple[MarketConfig, ...]") -> None:
    """HEDGER_MARKETS replaces the single-market variables (each entry has its own): one set beside it
    would silently go unused (an extra exposure or LP position unhedged, a second feed unchecked), and
    a HEDGER_MARKET left out of the list would no longer be hedged (its position no top-up). Refused,
    naming the variable and where it belongs."""
    from web3 import Web3
    if not markets:
        return
    for var, key in _REPLACED_BY_ENTRY.items():
        raw = (g(var) or "").strip()
        if not raw:
            continue
        if var == "HEDGER_MARKET" and raw.lower() not in {m.market.lower() for m in markets}:
            shown = Web3.to_checksum_address(raw) if re.fullmatch(r"0x[0-9a-fA-F]{40}", raw) else _show(raw)
            raise ConfigError(var, f"{shown} is set beside HEDGER_MARKETS and is not one of its entries: that "
                              "market would no longer be hedged (a position there gets no top-up)",
                              "add it to HEDGER_MARKETS as an entry (\"market\"), then unset HEDGER_MARKET")
        raise ConfigError(var, "is set beside HEDGER_MARKETS, whose entries replace it: it would not be used",
                          f"move it into the HEDGER_MARKETS entry it belongs to as \"{key}\", and unset it")


def _warn_unknown_variables(env: Mapping[str, str]) -> None:
    """A misspelt setting (an extra letter in ``HEDGER_BAND``) is otherwise silently ignored: warn on stderr, once
    per name and process, with the closest known name."""
    import difflib
    import sys
    unknown = sorted(k for k in env if k.startswith("HEDGER_") and k not in _WARNED)
    if not unknown:
        return
    known = known_variables()
    for name in unknown:
        if name in known:
            continue
        _WARNED.add(name)
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        print(f"hedger: warning: {name} is not a setting hedger reads{hint}; it is ignored", file=sys.stderr)


def _collateral_feed(raw: str | None, token: str | None) -> str | None:
    """``HEDGER_COLLATERAL_FEED``: a Chainlink-style feed of the collateral token's USD price, for a
    collateral that is not a USD stablecoin; unset, the collateral is declared one (worth 1.0)."""
    name = "HEDGER_COLLATERAL_FEED"
    try:
        feed = _address(name, raw, required=False)
    except ConfigError as err:
        raise ConfigError(name, err.problem, f"{err.fix}: the address of an AggregatorV3 feed of the collateral "
                          "token's USD price, or unset it for a USD stablecoin collateral") from None
    if feed is not None and token is not None and feed.lower() == token.strip().lower():
        raise ConfigError(name, "is the collateral token itself (HEDGER_COLLATERAL_TOKEN), not a price feed",
                          "set it to an AggregatorV3 feed of the collateral token's USD price (e.g. ETH / USD for "
                          "WETH collateral), or unset it for a USD stablecoin collateral")
    return feed


@dataclass(frozen=True)
class TwapSource:
    """A Uniswap v3 pool's time-weighted mean price, as the independent second price
    (``HEDGER_SECOND_ORACLE=univ3:<pool>[:<seconds>]``)."""

    pool: str
    seconds: int = 1800


def _second_source(raw: str | None) -> tuple[str | None, TwapSource | None]:
    """``HEDGER_SECOND_ORACLE``: a Chainlink-style feed's address, or ``univ3:<pool>[:<seconds>]``."""
    name = "HEDGER_SECOND_ORACLE"
    if raw is None or not raw.strip().lower().startswith("univ3:"):
        return _address(name, raw, required=False), None
    parts = raw.strip().split(":")
    if len(parts) not in (2, 3):
        raise ConfigError(name, f"{_show(raw)} is not univ3:<pool>[:<seconds>]",
                          "write it as univ3:0x<pool address> or univ3:0x<pool address>:1800")
    if not parts[1].strip():
        raise ConfigError(name, f"{_show(raw)} names no pool", "write it as univ3:0x<pool address>[:<seconds>]")
    pool = _address(name, parts[1], required=True)
    seconds = _int(name, parts[2], lo=60, what="a TWAP window of at least 60 seconds, e.g. univ3:0x...:1800") \
        if len(parts) == 3 else 1800
    assert pool is not None
    return None, TwapSource(pool=pool, seconds=seconds)


@dataclass(frozen=True)
class LpPosition:
    """A Uniswap v3 position whose asset counts as exposure (``HEDGER_LP_POSITIONS``)."""

    manager: str      # the NonfungiblePositionManager
    token_id: int


def _lp_positions(raw: str | None) -> tuple[LpPosition, ...]:
    """``HEDGER_LP_POSITIONS=<position manager>:<tokenId>[,...]``."""
    name = "HEDGER_LP_POSITIONS"
    if raw is None or not raw.strip():
        return ()
    out: list[LpPosition] = []
    for item in raw.split(","):
        manager, sep, token_id = item.strip().partition(":")
        if not sep:
            raise ConfigError(name, f"{_show(item)} is not <position manager>:<tokenId>",
                              "write each position as 0x<NonfungiblePositionManager>:<tokenId>, comma-separated")
        addr = _address(name, manager, required=True)
        assert addr is not None
        pos = LpPosition(manager=addr, token_id=_int(name, token_id, lo=1, what="a position's token id, e.g. 0x...:123"))
        if pos in out:
            raise ConfigError(name, f"position {pos.token_id} of {pos.manager} is listed twice", "list each position once")
        out.append(pos)
    return tuple(out)


@dataclass(frozen=True)
class MarketConfig:
    """One entry of ``HEDGER_MARKETS``: a market hedged in the same cycle as the others, by the
    same account, with the same collateral token (``HEDGER_COLLATERAL_TOKEN``)."""

    name: str
    market: str
    oracle: str
    spot_token: str
    sequencer_feed: str | None = None    # None: HEDGER_SEQUENCER_FEED
    second_oracle: str | None = None     # this asset's independent second feed, if any
    second_twap: "TwapSource | None" = None  # or a Uniswap v3 pool's TWAP (univ3:<pool>[:<seconds>])
    extra_exposure: int = 0              # E18 asset units held elsewhere
    hedge_ratio: int | None = None       # E18; None: HEDGER_HEDGE_RATIO
    protocol: str | None = None          # this market's venue; None: HEDGER_PROTOCOL
    order_mode: str | None = None        # "direct" or "delayed"; None: HEDGER_ORDER_MODE
    lp_positions: tuple[LpPosition, ...] = ()   # Uniswap v3 positions of this market's asset


MARKETS_VAR = "HEDGER_MARKETS"
_MARKET_KEYS = ("name", "market", "oracle", "spot_token", "sequencer_feed", "second_oracle", "extra_exposure",
                "hedge_ratio", "protocol", "order_mode", "lp_positions")
# single-market variables that a HEDGER_MARKETS entry replaces (its own key), never a default for it:
# set beside HEDGER_MARKETS they would be silently unused (an exposure left unhedged)
_REPLACED_BY_ENTRY = {"HEDGER_MARKET": "market", "HEDGER_ORACLE": "oracle", "HEDGER_SPOT_TOKEN": "spot_token",
                      "HEDGER_SECOND_ORACLE": "second_oracle", "HEDGER_EXTRA_EXPOSURE": "extra_exposure",
                      "HEDGER_LP_POSITIONS": "lp_positions"}
_MARKETS_EXAMPLE = ('a JSON list, one object per market, e.g. [{"name":"ETH","market":"0x..","oracle":"0x..",'
                    '"spot_token":"0x.."},{"name":"BTC",...}]')


def _markets(raw: str | None) -> tuple[MarketConfig, ...]:
    """Parse ``HEDGER_MARKETS`` exactly (JSON numbers as Decimal, never float)."""
    import json
    if raw is None:
        return ()
    try:
        items = json.loads(raw, parse_float=Decimal)
    except ValueError as err:
        msg = getattr(err, "msg", str(err))
        where = f" (line {err.lineno}, column {err.colno})" if isinstance(err, json.JSONDecodeError) else ""
        raise ConfigError(MARKETS_VAR, f"is not valid JSON: {msg}{where}", f"set it to {_MARKETS_EXAMPLE}") from None
    if not isinstance(items, list) or not items:
        raise ConfigError(MARKETS_VAR, "is not a non-empty JSON list", f"set it to {_MARKETS_EXAMPLE}")
    out: list[MarketConfig] = []
    names: dict[str, int] = {}
    markets: dict[str, int] = {}
    positions: dict[LpPosition, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(MARKETS_VAR, f"entry {i} is not a JSON object", f"write each entry as {{\"name\": "
                              f"..., \"market\": \"0x..\", \"oracle\": \"0x..\", \"spot_token\": \"0x..\"}}")
        unknown = sorted(set(item) - set(_MARKET_KEYS))
        if unknown:
            raise ConfigError(MARKETS_VAR, f"entry {i} has unknown key(s) {', '.join(map(repr, unknown))}",
                              f"use only the keys {', '.join(_MARKET_KEYS)}")
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(MARKETS_VAR, f"entry {i} has no \"name\"", "give every entry a unique name, e.g. "
                              "\"name\": \"ETH\"")
        name = name.strip()
        label = f"entry {i} ({name!r})"
        if name.lower() in names:
            raise ConfigError(MARKETS_VAR, f"{label} repeats the name of entry {names[name.lower()]}",
                              "give every entry a unique name")
        names[name.lower()] = i

        def addr(key: str, required: bool) -> str | None:
            v = item.get(key)
            if v is not None and not isinstance(v, str):
                raise ConfigError(MARKETS_VAR, f"{label} {key}: is not a string",
                                  "write the address as a string, \"0x\" followed by 40 hex digits")
            try:
                return _address(key, v, required=required)
            except ConfigError as err:
                raise ConfigError(MARKETS_VAR, f"{label} {key}: {err.problem}", err.fix) from None

        def amount(key: str, default: str, hi: Decimal | None, what: str) -> int:
            v = item.get(key, default)
            if isinstance(v, bool) or not isinstance(v, (str, int, Decimal)):
                raise ConfigError(MARKETS_VAR, f"{label} {key}: is not a number", f"set it to {what}")
            try:
                return _e18(_dec(key, str(v), lo=Decimal(0), hi=hi, what=what))
            except ConfigError as err:
                raise ConfigError(MARKETS_VAR, f"{label} {key}: {err.problem}", err.fix) from None

        def choice(key: str, allowed: list[str]) -> str | None:
            v = item.get(key)
            if v is None:
                return None
            if not isinstance(v, str) or v.strip() not in allowed:
                raise ConfigError(MARKETS_VAR, f"{label} {key}: {_show(str(v))} is not one of {', '.join(allowed)}",
                                  f"set \"{key}\" to one of {', '.join(allowed)}, or leave it out to use "
                                  f"HEDGER_{key.upper()}")
            return v.strip()

        def text(key: str, parse: Callable[[str | None], Any], written: str) -> Any:
            """A key written as its single-market variable is (a string), parsed as that variable is."""
            v = item.get(key)
            if v is not None and not isinstance(v, str):
                raise ConfigError(MARKETS_VAR, f"{label} {key}: is not a string", f"write {written}, as a string")
            try:
                return parse(v)
            except ConfigError as err:
                raise ConfigError(MARKETS_VAR, f"{label} {key}: {err.problem}", err.fix) from None

        second = text("second_oracle", _second_source, "a feed's address, or univ3:0x<pool>[:<seconds>]")
        lp = text("lp_positions", _lp_positions, "the positions, \"0x<NonfungiblePositionManager>:<tokenId>[,...]\"")
        for pos in lp:
            if pos in positions:
                raise ConfigError(MARKETS_VAR, f"{label} lp_positions: position {pos.token_id} of {pos.manager} is "
                                  f"already in entry {positions[pos]}", "list each position under the one market "
                                  "whose asset it holds (counted twice, it would be hedged twice)")
            positions[pos] = i
        from hedger.protocols import registered
        cfg = MarketConfig(
            protocol=choice("protocol", registered()), order_mode=choice("order_mode", ["direct", "delayed"]),
            name=name, market=addr("market", True) or "", oracle=addr("oracle", True) or "",
            spot_token=addr("spot_token", True) or "", sequencer_feed=addr("sequencer_feed", False),
            second_oracle=second[0], second_twap=second[1],
            extra_exposure=amount("extra_exposure", "0", None, "an amount of the spot asset held elsewhere, "
                                  "as a decimal string, e.g. \"2.5\""),
            hedge_ratio=amount("hedge_ratio", "1", Decimal(2), "a ratio between 0 and 2, e.g. \"1.0\"")
            if "hedge_ratio" in item else None, lp_positions=lp)
        if cfg.market in markets:
            raise ConfigError(MARKETS_VAR, f"{label} market: {cfg.market} is already entry {markets[cfg.market]}",
                              "list each market once")
        markets[cfg.market] = i
        out.append(cfg)
    return tuple(out)


def environment(*, dotenv: bool = True) -> Mapping[str, str]:
    """The process environment after loading ``.env`` from the current folder (values already in
    the environment win): what ``hedger`` reads, and what ``ape run hedge`` / ``ape run deploy``
    must read too."""
    if dotenv:
        from dotenv import load_dotenv
        load_dotenv(dotenv_path=Path.cwd() / ".env", override=False)
    return os.environ


_LEVERAGE_DEFAULTS = {"HEDGER_MIN_LEVERAGE": "1.5", "HEDGER_TARGET_LEVERAGE": "2", "HEDGER_MAX_LEVERAGE": "3"}


def _check_leverage_order(pol: PolicyParams, g: "Callable[[str], str | None]") -> None:
    """min < target < max, else a ConfigError naming the variable the user set: of a pair that
    conflicts, the one that was set (the other is a default); when both were set, the target
    (it must lie between the two bounds)."""
    value = {"HEDGER_MIN_LEVERAGE": pol.min_leverage, "HEDGER_TARGET_LEVERAGE": pol.target_leverage,
             "HEDGER_MAX_LEVERAGE": pol.max_leverage}

    def shown(name: str) -> str:
        return (g(name) or "").strip() if g(name) else f"{_LEVERAGE_DEFAULTS[name]} (the default)"

    for lo, hi in (("HEDGER_MIN_LEVERAGE", "HEDGER_TARGET_LEVERAGE"),
                   ("HEDGER_TARGET_LEVERAGE", "HEDGER_MAX_LEVERAGE")):
        if value[lo] < value[hi]:
            continue
        name = hi if g(hi) and not g(lo) else lo if g(lo) and not g(hi) else "HEDGER_TARGET_LEVERAGE"
        other = hi if name == lo else lo
        side = "below" if name == lo else "above"
        raise ConfigError(name, f"{shown(name)} is not {side} {other} = {shown(other)} (leverages must rise: "
                          "HEDGER_MIN_LEVERAGE < HEDGER_TARGET_LEVERAGE < HEDGER_MAX_LEVERAGE)",
                          f"set {name} {side} {other}, or change both; e.g. min 1.5, target 2, max 3")


# each liquidation-distance setting replaces the leverage setting of the same edge of the band
_LIQ_DISTANCE_EDGES = (("HEDGER_MIN_LIQ_DISTANCE", "HEDGER_MAX_LEVERAGE", "min_liq_distance", "floor"),
                       ("HEDGER_TARGET_LIQ_DISTANCE", "HEDGER_TARGET_LEVERAGE", "target_liq_distance", "target"),
                       ("HEDGER_MAX_LIQ_DISTANCE", "HEDGER_MIN_LEVERAGE", "max_liq_distance", "ceiling"))


def _liq_distances(pol: PolicyParams, g: "Callable[[str], str | None]") -> PolicyParams:
    """The collateral band set as liquidation distances: all three or none (the band is set one
    way: as distances, or as leverages translated by the venue's model), never beside the leverage
    of the same edge, and rising (min < target < max)."""
    given = [name for name, _, _, _ in _LIQ_DISTANCE_EDGES if g(name)]
    if not given:
        return pol
    for name, lev, _, edge in _LIQ_DISTANCE_EDGES:
        if not g(name):
            raise ConfigError(name, f"is unset while {given[0]} is set (the collateral band is set as three "
                              "liquidation distances, or as leverages)",
                              f"set {name} too (e.g. min 0.3, target 0.45, max 0.6), or unset {', '.join(given)}")
        if g(lev):
            raise ConfigError(lev, f"and {name} both set the band's {edge}",
                              f"unset one of them: {name} (a fraction of the price) or {lev} (a leverage)")
    value = {name: _e18(_dec(name, g(name) or "", lo=Decimal(0), hi=Decimal(10), lo_open=True,
                             what="a fraction of the price the market must move against the hedge to "
                                  "liquidate it, e.g. 0.3 for 30%"))
             for name, _, _, _ in _LIQ_DISTANCE_EDGES}
    names = [name for name, _, _, _ in _LIQ_DISTANCE_EDGES]
    for lo, hi in zip(names, names[1:]):
        if value[lo] >= value[hi]:
            raise ConfigError(lo, f"{(g(lo) or '').strip()} is not below {hi} = {(g(hi) or '').strip()} (distances "
                              "must rise: HEDGER_MIN_LIQ_DISTANCE < HEDGER_TARGET_LIQ_DISTANCE < "
                              "HEDGER_MAX_LIQ_DISTANCE)", f"set {lo} below {hi}, e.g. min 0.3, target 0.45, max 0.6")
    return replace(pol, **{field: value[name] for name, _, field, _ in _LIQ_DISTANCE_EDGES})


# aave-v3's band when the operator set neither distances nor leverages: HF 1.35 / 1.6 / 2.0
AAVE_DEFAULT_DISTANCES = {"min_liq_distance": 35 * UNIT // 100, "target_liq_distance": 60 * UNIT // 100,
                          "max_liq_distance": UNIT}
SWAP_FEE_TIERS = (100, 500, 3000, 10000)   # Uniswap v3's fee tiers (hundredths of a bip)


def _swap_settings(protocol: str, g: "Callable[[str], str | None]", account: str | None, holder: str | None,
                   for_deploy: bool) -> tuple[str | None, int]:
    """HEDGER_SWAP_ROUTER and HEDGER_SWAP_FEE (the aave-v3 venue sells what it borrows on Uniswap v3), and
    that venue's rule that the signer is not HEDGER_HOLDER: the borrowed asset sits in the signer's
    wallet until it is sold, and must never count as the holder's spot exposure."""
    router = _address("HEDGER_SWAP_ROUTER", g("HEDGER_SWAP_ROUTER"), required=False)
    fee = _int("HEDGER_SWAP_FEE", g("HEDGER_SWAP_FEE") or "500", lo=1,
               what=f"the swap pool's fee tier, one of {', '.join(map(str, SWAP_FEE_TIERS))} (500 = 0.05%)")
    if fee not in SWAP_FEE_TIERS:
        raise ConfigError("HEDGER_SWAP_FEE", f"{fee} is not a Uniswap v3 fee tier",
                          f"set it to the pool's tier: one of {', '.join(map(str, SWAP_FEE_TIERS))} (500 = 0.05%)")
    if protocol != "aave-v3" or for_deploy:
        return router, fee
    if router is None:
        raise ConfigError("HEDGER_SWAP_ROUTER", "is not set (HEDGER_PROTOCOL=aave-v3 sells the borrowed asset "
                          "on Uniswap v3)", "set it to the Uniswap v3 SwapRouter or SwapRouter02 address")
    if account is not None and (holder is None or holder == account):
        raise ConfigError("HEDGER_HOLDER", f"{'is unset, so it is' if holder is None else 'is'} the signing "
                          f"account {account} (HEDGER_PRIVATE_KEY / HEDGER_ACCOUNT): on aave-v3 the borrowed asset "
                          "waits in the signer's wallet until it is sold, and must never count as the holder's "
                          "exposure", "set HEDGER_HOLDER to the address that holds the asset, and sign from "
                          "another key")
    return router, fee


@dataclass(frozen=True)
class Settings:
    rpc_url: str = "http://127.0.0.1:8545"
    private_key: Secret | None = None
    ape_account: str | None = None
    account: str | None = None
    chain_id: int | None = None
    protocol: str = "reference"
    market: str = ""
    oracle: str = ""
    spot_token: str = ""
    collateral_token: str = ""
    collateral_feed: str | None = None   # a USD feed of a collateral that is not a USD stablecoin (None: it is one)
    sequencer_feed: str | None = None
    order_mode: str = "direct"
    extra_exposure: int = 0          # E18 asset units held elsewhere
    lp_positions: tuple[LpPosition, ...] = ()   # Uniswap v3 positions of the asset (HEDGER_LP_POSITIONS)
    holder: str | None = None        # whose spot balance is the exposure (HEDGER_HOLDER); None: the account
    swap_router: str | None = None   # aave-v3: the Uniswap v3 SwapRouter or SwapRouter02 (HEDGER_SWAP_ROUTER)
    swap_fee: int = 500              # aave-v3: the swap pool's fee tier, hundredths of a bip (HEDGER_SWAP_FEE)
    # HEDGER_JOURNAL_PATH; None: the per-user state folder, by chain and account (see journal_path)
    journal_file: Path | None = Path("hedger-journal.sqlite")
    state_folder: Path | None = None     # where journal_file None puts the journal (from_env: state_dir())
    receipt_timeout: int = 180          # seconds (timeouts are whole seconds)
    max_block_lag_s: int | None = None   # None: 300 s, or off on a local chain
    policy: PolicyParams = field(default_factory=PolicyParams)
    second_oracle: str | None = None     # an independent price feed for the sanity check
    second_twap: TwapSource | None = None  # or a Uniswap v3 pool's TWAP
    max_fee: int | None = 200 * 10**9          # wei; ceiling for risk-increasing steps
    emergency_max_fee: int | None = 2000 * 10**9  # wei; ceiling for risk-reducing steps
    priority_fee: int | None = None      # wei; None: the node's suggestion (capped at 2 gwei)
    replace_after: int = 30
    max_replacements: int = 3
    max_rebroadcasts: int = 3            # re-broadcasts of a journaled tx in doubt before its nonce is cancelled
    confirmations: int | None = None     # None: CONFIRMATIONS by chain id
    rpc_timeout: int = 20
    max_action_usd: int | None = 1_000_000 * UNIT
    unlimited_approval: bool = False
    multicall: str | None = None         # read through this Multicall3 (aggregate3) instead of a JSON-RPC batch
    alert_webhook: Secret | None = None  # webhook URLs carry tokens: never shown
    alert_webhook_secret: Secret | None = None   # HMAC-SHA256 key signing each alert (HEDGER_ALERT_WEBHOOK_SECRET)
    alert_liq_distance: int = 15 * UNIT // 100   # alert when liquidation is closer than 15% of the price
    alert_min_gas: int = 5 * UNIT // 100         # wei; alert when the signer holds less than 0.05 ETH
    alert_refusal_streak: int = 3                # alert after this many refusals in a row
    alert_order_age: int = 600                   # seconds of chain time an order may wait for the venue's keeper
    daily_max_notional_usd: int | None = 5_000_000 * UNIT   # E18 USD traded per UTC day (chain time)
    daily_max_gas: int | None = UNIT                        # wei of gas spent per UTC day (1 ETH)
    markets: tuple[MarketConfig, ...] = ()   # HEDGER_MARKETS: several markets in one cycle (hedger.cycle.multimarket)
    # GMX v2 (HEDGER_PROTOCOL=gmx-v2): the two addresses everything else is read from, or a deployment
    # of the SDK's address book that fills both; the execution fee's margin over GMX's minimum (percent)
    gmx_exchange_router: str | None = None
    gmx_reader: str | None = None
    gmx_deployment: str | None = None
    gmx_fee_margin_pct: int = 120

    def gas_policy(self) -> "GasPolicy":
        from hedger.chain.executor import GasPolicy
        return GasPolicy(max_fee=self.max_fee, emergency_max_fee=self.emergency_max_fee,
                         priority_fee=self.priority_fee, replace_after=self.replace_after,
                         max_replacements=self.max_replacements, receipt_timeout=self.receipt_timeout)

    @property
    def rpc_display(self) -> str:
        return redact_url(self.rpc_url)

    @property
    def journal_path(self) -> Path:
        """The journal (the account's lock sits beside it): ``HEDGER_JOURNAL_PATH``, else
        ``<state folder>/<chain id>/<account>.sqlite``. The chain id is ``HEDGER_CHAIN_ID``, else
        read from the node, once, at the first use: by a command that opens the journal or takes
        the lock, before anything is sent; never by configuration alone."""
        if self.journal_file is not None:
            return self.journal_file
        chain_id = self.chain_id if self.chain_id is not None else _chain_id_of(self.rpc_url, self.rpc_timeout)
        account = self.account or _ape_account_address(self.ape_account or "")
        return state_journal_path(self.state_folder or state_dir(), chain_id, account)

    @property
    def has_signer(self) -> bool:
        return self.private_key is not None or self.ape_account is not None

    def __repr__(self) -> str:  # never the key, never the full URL
        return (f"Settings(rpc={self.rpc_display}, signer={'key' if self.private_key else self.ape_account}, "
                f"account={self.account}, market={self.market}, mode={self.order_mode})")

    __str__ = __repr__

    def policy_for_chain(self, chain_id: int) -> PolicyParams:
        lag = self.max_block_lag_s
        if lag is None:
            lag = 0 if chain_id in LOCAL_CHAIN_IDS else 300
        return replace(self.policy, max_block_lag_s=lag)

    def confirmations_for_chain(self, chain_id: int) -> int:
        if self.confirmations is not None:
            return self.confirmations
        return CONFIRMATIONS.get(chain_id, DEFAULT_CONFIRMATIONS)

    def build_signer(self) -> Signer | None:
        if self.private_key is not None:
            return KeySigner(self.private_key)
        if self.ape_account is not None:
            return ApeAccountSigner(self.ape_account)
        return None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, dotenv: bool = True,
                 for_deploy: bool = False) -> "Settings":
        """Read ``HEDGER_*`` from ``env`` (default: the process environment after loading ``.env``).

        ``for_deploy``: only the RPC and the signer are needed (``hedger deploy``)."""
        if env is None:
            env = environment(dotenv=dotenv)
        g = lambda k: env.get(k) if env.get(k, "").strip() != "" else None  # noqa: E731

        rpc = (g("HEDGER_RPC_URL") or cls.rpc_url).strip()
        scheme = urlsplit(rpc).scheme
        if scheme not in ("http", "https"):
            raise ConfigError("HEDGER_RPC_URL", f"scheme {_show(scheme or '(none)')} is not supported",
                              "use an http:// or https:// JSON-RPC URL")
        register_rpc_url(rpc)
        key = g("HEDGER_PRIVATE_KEY")
        ape_alias = g("HEDGER_APE_ACCOUNT")
        if key and ape_alias:
            raise ConfigError("HEDGER_PRIVATE_KEY", "is set together with HEDGER_APE_ACCOUNT",
                              "set only one signer")
        secret = None
        if key:
            k = key.strip()
            if not re.fullmatch(r"(0x)?[0-9a-fA-F]{64}", k):
                raise ConfigError("HEDGER_PRIVATE_KEY", "is not 32 bytes of hex",
                                  "set it to 0x followed by 64 hex digits (or use HEDGER_APE_ACCOUNT)")
            secret = Secret(k if k.startswith("0x") else "0x" + k)
        account = _address("HEDGER_ACCOUNT", g("HEDGER_ACCOUNT"), required=False)
        if account is None and secret is None and ape_alias is None and not for_deploy:
            raise ConfigError("HEDGER_ACCOUNT", "no account to hedge",
                              "set HEDGER_PRIVATE_KEY or HEDGER_APE_ACCOUNT to sign, or HEDGER_ACCOUNT to "
                              "read an account without sending (dry run)")
        if secret is not None and account is not None:
            from eth_account import Account
            signer_addr = Account.from_key(secret.get_secret_value()).address
            if signer_addr != account:
                raise ConfigError("HEDGER_ACCOUNT", f"{account} is not the signer's address {signer_addr}",
                                  "unset HEDGER_ACCOUNT or set it to the signer's address")
        if secret is not None and account is None:
            from eth_account import Account
            account = Account.from_key(secret.get_secret_value()).address
        chain_id = _int("HEDGER_CHAIN_ID", g("HEDGER_CHAIN_ID"), lo=1, what="the chain id the RPC must report "
                        "(1 for Ethereum)") if g("HEDGER_CHAIN_ID") else None
        mode = (g("HEDGER_ORDER_MODE") or "").strip().lower()
        if mode and mode not in ("direct", "delayed"):
            raise ConfigError("HEDGER_ORDER_MODE", f"{_show(mode)} is not a mode", "set it to direct or delayed")
        second_feed, second_twap = _second_source(g("HEDGER_SECOND_ORACLE"))
        protocol = (g("HEDGER_PROTOCOL") or "reference").strip()
        from hedger.protocols import registered
        if protocol not in registered():
            raise ConfigError("HEDGER_PROTOCOL", f"unknown protocol {_show(protocol)}",
                              f"use one of: {', '.join(registered())}")
        from hedger.protocols import get_adapter
        mode = mode or get_adapter(protocol).order_modes[0]     # unset: the venue's first (direct where it has one)
        if mode not in get_adapter(protocol).order_modes:
            raise ConfigError("HEDGER_ORDER_MODE", f"{mode} is not a mode of {protocol}",
                              f"set it to one of: {', '.join(get_adapter(protocol).order_modes)}")
        extra = _e18(_dec("HEDGER_EXTRA_EXPOSURE", g("HEDGER_EXTRA_EXPOSURE") or "0",
                          what="an amount of the spot asset held elsewhere, e.g. 2.5"))

        def frac(name: str, default: str, lo: str, hi: str, what: str, lo_open: bool = False) -> int:
            return _e18(_dec(name, g(name) or default, lo=Decimal(lo), hi=Decimal(hi), lo_open=lo_open, what=what))

        pol = PolicyParams(
            hedge_ratio=frac("HEDGER_HEDGE_RATIO", "1.0", "0", "2", "a ratio between 0 and 2 (1.0 = fully hedged)"),
            band=frac("HEDGER_BAND", "0.05", "0", "1", "a fraction of the target between 0 and 1, e.g. 0.05"),
            min_trade_usd=frac("HEDGER_MIN_TRADE_USD", "50", "0", "1e12", "a USD amount, e.g. 50"),
            max_trade_usd=frac("HEDGER_MAX_TRADE_USD", "250000", "0", "1e15", "a positive USD amount",
                               lo_open=True),
            max_slippage=frac("HEDGER_MAX_SLIPPAGE", "0.005", "0", "0.5", "a fraction between 0 and 0.5, e.g. 0.005"),
            target_leverage=frac("HEDGER_TARGET_LEVERAGE", "2", "0", "100", "a leverage above 0, e.g. 2",
                                 lo_open=True),
            max_leverage=frac("HEDGER_MAX_LEVERAGE", "3", "0", "100", "a leverage above the target, e.g. 3",
                              lo_open=True),
            min_leverage=frac("HEDGER_MIN_LEVERAGE", "1.5", "0", "100", "a leverage below the target, e.g. 1.5"),
            liquidation_buffer=frac("HEDGER_LIQUIDATION_BUFFER", "0.25", "0", "1",
                                    "a fraction of the price between 0 and 1, e.g. 0.25"),
            min_collateral_usd=frac("HEDGER_MIN_COLLATERAL_USD", "10", "0", "1e12", "a USD amount, e.g. 10"),
            min_claim_usd=frac("HEDGER_MIN_CLAIM_USD", "5", "0", "1e12", "a USD amount, e.g. 5"),
            cooldown_s=_int("HEDGER_COOLDOWN", g("HEDGER_COOLDOWN") or "900", what="seconds, e.g. 900"),
            oracle_max_age_s=_int("HEDGER_ORACLE_MAX_AGE", g("HEDGER_ORACLE_MAX_AGE") or "3600", lo=1,
                                  what="the feed's heartbeat in seconds, e.g. 3600"),
            sequencer_grace_s=_int("HEDGER_SEQUENCER_GRACE", g("HEDGER_SEQUENCER_GRACE") or "3600",
                                   what="seconds, e.g. 3600"),
            max_price_divergence=frac("HEDGER_MAX_PRICE_DIVERGENCE", "0.02", "0", "1",
                                      "a fraction between 0 and 1, e.g. 0.02", lo_open=True),
            funding_threshold=frac("HEDGER_FUNDING_THRESHOLD", "0.10", "0", "100",
                                   "an annual funding rate, e.g. 0.10 for 10% a year"),
        )
        hedge_min = g("HEDGER_FUNDING_HEDGE_MIN")
        pol = replace(pol, funding_min_ratio=frac(
            "HEDGER_FUNDING_HEDGE_MIN", hedge_min or str(Decimal(pol.hedge_ratio) / UNIT), "0", "2",
            "the lowest hedge ratio while the hedge pays funding, e.g. 0.8 (equal to HEDGER_HEDGE_RATIO: off)"))
        if pol.funding_min_ratio > pol.hedge_ratio:
            raise ConfigError("HEDGER_FUNDING_HEDGE_MIN", "is above HEDGER_HEDGE_RATIO",
                              "set it between 0 and HEDGER_HEDGE_RATIO, e.g. 0.8 with a hedge ratio of 1.0")
        _check_leverage_order(pol, g)
        pol = _liq_distances(pol, g)
        if protocol == "aave-v3" and not any(g(n) for e in _LIQ_DISTANCE_EDGES for n in e[:2]):
            # the venue's band in its own measure (README): health factor 1.6, top up below 1.35,
            # withdraw above 2.0; against stable collateral the distance to liquidation is HF - 1
            pol = replace(pol, **AAVE_DEFAULT_DISTANCES)
        if pol.target_liq_distance is not None:
            if pol.liquidation_buffer >= pol.target_liq_distance:
                raise ConfigError("HEDGER_LIQUIDATION_BUFFER", "is not below HEDGER_TARGET_LIQ_DISTANCE (top-ups "
                                  "aim at the target distance; the buffer is an extra floor under it)",
                                  "lower HEDGER_LIQUIDATION_BUFFER below HEDGER_TARGET_LIQ_DISTANCE, "
                                  "e.g. 0.25 with a target of 0.45")
        elif pol.liquidation_buffer * pol.target_leverage >= UNIT * UNIT:
            raise ConfigError("HEDGER_LIQUIDATION_BUFFER", "cannot be met at the target leverage (a position at "
                              "leverage L is liquidated less than 1/L away from the price)",
                              "lower HEDGER_LIQUIDATION_BUFFER below 1/HEDGER_TARGET_LEVERAGE, e.g. 0.25 with 2x")
        lag = g("HEDGER_MAX_BLOCK_LAG")
        journal_set = g("HEDGER_JOURNAL_PATH")
        journal = Path(journal_set) if journal_set else None
        if journal is not None:
            if journal.exists() and journal.is_dir():
                raise ConfigError("HEDGER_JOURNAL_PATH", f"{journal} is a directory", "give a file path")
            if not journal.parent.exists() and str(journal.parent) not in ("", "."):
                raise ConfigError("HEDGER_JOURNAL_PATH", f"folder {journal.parent} does not exist",
                                  "create it or choose another path")
        elif not for_deploy:
            _refuse_old_default_journal(Path.cwd(), state_dir(env))
        def gwei(name: str, default: str | None) -> int | None:
            raw = g(name) or default
            if raw is None or raw.strip().lower() in ("none", "off"):
                return None
            return int(_dec(name, raw, lo=Decimal(0), hi=Decimal(10**7), lo_open=True,
                            what="a fee in gwei, e.g. 200 (or 'off')") * 10**9)

        max_fee = gwei("HEDGER_MAX_FEE_GWEI", "200")
        emergency = gwei("HEDGER_EMERGENCY_MAX_FEE_GWEI", "2000")
        if max_fee is not None and emergency is not None and emergency < max_fee:
            raise ConfigError("HEDGER_EMERGENCY_MAX_FEE_GWEI", "is below HEDGER_MAX_FEE_GWEI",
                              "the emergency ceiling (for top-ups and hedge reductions) must be at least the normal one")
        cap = g("HEDGER_MAX_ACTION_USD") or "1000000"
        unlimited = (g("HEDGER_UNLIMITED_APPROVAL") or "false").strip().lower()
        if unlimited not in ("1", "0", "true", "false", "yes", "no"):
            raise ConfigError("HEDGER_UNLIMITED_APPROVAL", f"{_show(unlimited)} is not true or false",
                              "set it to true to approve an unlimited allowance, false (default) for exact approvals")
        hook = g("HEDGER_ALERT_WEBHOOK")
        if hook is not None:
            if urlsplit(hook.strip()).scheme not in ("http", "https"):
                raise ConfigError("HEDGER_ALERT_WEBHOOK", "is not an http(s) URL",
                                  "set it to the webhook's https:// URL")
            register_rpc_url(hook.strip())
        hook_secret = g("HEDGER_ALERT_WEBHOOK_SECRET")
        if hook_secret is not None:
            if hook is None:
                raise ConfigError("HEDGER_ALERT_WEBHOOK_SECRET", "is set but HEDGER_ALERT_WEBHOOK is not",
                                  "set HEDGER_ALERT_WEBHOOK to the webhook's URL, or unset the secret")
            if len(hook_secret.strip()) < 16:
                raise ConfigError("HEDGER_ALERT_WEBHOOK_SECRET", f"is {len(hook_secret.strip())} characters long",
                                  "use a random secret of at least 16 characters, e.g. `openssl rand -hex 32`")
        def limit(name: str, default: str, what: str) -> int | None:
            raw = (g(name) or default).strip()
            if raw.lower() in ("none", "off"):
                return None
            return _e18(_dec(name, raw, lo=Decimal(0), lo_open=True, what=what))

        markets = () if for_deploy else _markets(g(MARKETS_VAR))
        _refuse_single_market_variables(g, markets)
        holder = _address("HEDGER_HOLDER", g("HEDGER_HOLDER"), required=False)
        swap_router, swap_fee = _swap_settings(protocol, g, account, holder, for_deploy)
        collateral_feed = _collateral_feed(g("HEDGER_COLLATERAL_FEED"), g("HEDGER_COLLATERAL_TOKEN"))
        _warn_unknown_variables(env)
        return cls(
            markets=markets,
            daily_max_notional_usd=limit("HEDGER_DAILY_MAX_NOTIONAL_USD", "5000000",
                                         "a USD amount per day, e.g. 5000000 (or 'off')"),
            daily_max_gas=limit("HEDGER_DAILY_MAX_GAS_ETH", "1", "an amount of ETH per day, e.g. 1 (or 'off')"),
            alert_webhook=Secret(hook.strip()) if hook else None,
            alert_webhook_secret=Secret(hook_secret.strip()) if hook_secret else None,
            alert_liq_distance=frac("HEDGER_ALERT_LIQ_DISTANCE", "0.15", "0", "1",
                                    "a fraction of the price, e.g. 0.15"),
            alert_min_gas=int(_dec("HEDGER_ALERT_MIN_GAS_ETH", g("HEDGER_ALERT_MIN_GAS_ETH") or "0.05",
                                   lo=Decimal(0), hi=Decimal(10**6), what="an amount of ETH, e.g. 0.05") * UNIT),
            alert_refusal_streak=_int("HEDGER_ALERT_REFUSAL_STREAK", g("HEDGER_ALERT_REFUSAL_STREAK") or "3", lo=1,
                                      what="a number of refusals in a row, e.g. 3"),
            alert_order_age=_int("HEDGER_ALERT_ORDER_AGE", g("HEDGER_ALERT_ORDER_AGE") or "600", lo=1,
                                 what="seconds an order may wait for the venue's keeper before an alert, e.g. 600"),
            second_oracle=second_feed, second_twap=second_twap,
            multicall=_address("HEDGER_MULTICALL", g("HEDGER_MULTICALL"), required=False),
            max_fee=max_fee, emergency_max_fee=emergency,
            priority_fee=gwei("HEDGER_PRIORITY_FEE_GWEI", None),
            replace_after=_int("HEDGER_REPLACE_AFTER", g("HEDGER_REPLACE_AFTER") or "30", lo=1,
                                     what="seconds a transaction may stay pending before a replacement"),
            max_replacements=_int("HEDGER_MAX_REPLACEMENTS", g("HEDGER_MAX_REPLACEMENTS") or "3",
                                  what="how many fee-bumped replacements, e.g. 3"),
            max_rebroadcasts=_int("HEDGER_MAX_REBROADCASTS", g("HEDGER_MAX_REBROADCASTS") or "3",
                                  what="how many times a journaled transaction the node does not know is "
                                       "broadcast again (one per run) before its nonce is cancelled, e.g. 3"),
            confirmations=_int("HEDGER_CONFIRMATIONS", g("HEDGER_CONFIRMATIONS"),
                               what="blocks on top of a transaction's block before it counts as final, e.g. 64")
            if g("HEDGER_CONFIRMATIONS") else None,
            rpc_timeout=_int("HEDGER_RPC_TIMEOUT", g("HEDGER_RPC_TIMEOUT") or "20", lo=1,
                                   what="seconds for one RPC request"),
            max_action_usd=None if cap.strip().lower() in ("none", "off") else _e18(
                _dec("HEDGER_MAX_ACTION_USD", cap, lo=Decimal(0), lo_open=True, what="a USD amount, e.g. 1000000")),
            unlimited_approval=unlimited in ("1", "true", "yes"),
            rpc_url=rpc, private_key=secret, ape_account=ape_alias, account=account, chain_id=chain_id,
            protocol=protocol,
            market=_address("HEDGER_MARKET", g("HEDGER_MARKET"), required=not for_deploy and not markets) or "",
            oracle=_address("HEDGER_ORACLE", g("HEDGER_ORACLE"), required=not for_deploy and not markets) or "",
            spot_token=_address("HEDGER_SPOT_TOKEN", g("HEDGER_SPOT_TOKEN"), required=not for_deploy and not markets) or "",
            collateral_token=_address("HEDGER_COLLATERAL_TOKEN", g("HEDGER_COLLATERAL_TOKEN"), required=not for_deploy) or "",
            collateral_feed=collateral_feed,
            sequencer_feed=_address("HEDGER_SEQUENCER_FEED", g("HEDGER_SEQUENCER_FEED"), required=False),
            order_mode=mode, extra_exposure=extra, lp_positions=_lp_positions(g("HEDGER_LP_POSITIONS")),
            holder=holder, swap_router=swap_router, swap_fee=swap_fee,
            # unset: the per-user state folder, keyed by chain and account, so that every command for
            # this account on this chain shares one journal and one lock, whatever folder it starts in
            journal_file=journal, state_folder=state_dir(env),
            receipt_timeout=_int("HEDGER_RECEIPT_TIMEOUT", g("HEDGER_RECEIPT_TIMEOUT") or "180", lo=1,
                                       what="seconds to wait for a receipt"),
            max_block_lag_s=_int("HEDGER_MAX_BLOCK_LAG", lag, what="seconds (0 turns the guard off)") if lag else None,
            policy=pol,
            gmx_exchange_router=_address("HEDGER_GMX_EXCHANGE_ROUTER", g("HEDGER_GMX_EXCHANGE_ROUTER"), required=False),
            gmx_reader=_address("HEDGER_GMX_READER", g("HEDGER_GMX_READER"), required=False),
            gmx_deployment=_gmx_deployment(g("HEDGER_GMX_DEPLOYMENT")),
            gmx_fee_margin_pct=int(_dec("HEDGER_GMX_FEE_MARGIN", g("HEDGER_GMX_FEE_MARGIN") or "1.2", lo=Decimal(1),
                                        hi=Decimal(10), what="a multiple of GMX's minimum execution fee, e.g. 1.2")
                                   * 100),
        )
