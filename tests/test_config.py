"""Settings from an explicit environment dict (``Settings.from_env(env)``; no .env, no chain)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hedger.config
import hedger.core.secrets
from hedger.config import Settings
from hedger.core.secrets import redact_url, redact_urls
from hedger.core.errors import ConfigError
from hedger.core.secrets import Secret
from hedger.core.types import UNIT, PolicyParams

# anvil's public dev account 0
KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
KEY_HEX = KEY[2:]
ADDRESS = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
OTHER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"        # anvil dev account 1

MARKET = "0x5fbdb2315678afecb367f032d93f642f64180aa3"
ORACLE = "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512"
SPOT = "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0"
COLLATERAL = "0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9"


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    return {
        "HEDGER_RPC_URL": "http://127.0.0.1:8545",
        "HEDGER_PRIVATE_KEY": KEY,
        "HEDGER_MARKET": MARKET,
        "HEDGER_ORACLE": ORACLE,
        "HEDGER_SPOT_TOKEN": SPOT,
        "HEDGER_COLLATERAL_TOKEN": COLLATERAL,
        "HEDGER_JOURNAL_PATH": str(tmp_path / "journal.sqlite"),
    }


def load(env: dict[str, str], **changes: str | None) -> Settings:
    e = dict(env)
    for k, v in changes.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return Settings.from_env(e, dotenv=False)


def config_error(env: dict[str, str], **changes: str | None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(env, **changes)
    err = info.value
    # every ConfigError names its variable first and says how to fix it
    assert str(err).startswith(err.variable + ":")
    assert "Fix: " in str(err) and err.fix.strip()
    assert err.fix in str(err)
    assert KEY_HEX.lower() not in str(err).lower()
    assert isinstance(err, ValueError) and err.exit_code == 2
    return err


# ---- a valid environment ----

def test_valid_environment(env: dict[str, str], tmp_path: Path) -> None:
    s = load(env)
    assert isinstance(s.private_key, Secret) and s.private_key.get_secret_value() == KEY
    assert s.account == ADDRESS                                   # derived from the key
    assert s.market == "0x5FbDB2315678afecb367f032d93F642f64180aa3"  # checksummed
    assert s.order_mode == "direct" and s.protocol == "reference"
    assert s.journal_path == tmp_path / "journal.sqlite"
    assert s.policy == PolicyParams()                             # documented defaults
    assert s.extra_exposure == 0 and s.chain_id is None and s.max_block_lag_s is None


def test_key_without_0x_prefix(env: dict[str, str]) -> None:
    s = load(env, HEDGER_PRIVATE_KEY=KEY_HEX)
    assert s.private_key is not None and s.private_key.get_secret_value() == KEY
    assert s.account == ADDRESS


def test_account_equal_to_signer_in_any_case(env: dict[str, str]) -> None:
    assert load(env, HEDGER_ACCOUNT=ADDRESS.lower()).account == ADDRESS


def test_read_only_account_without_signer(env: dict[str, str]) -> None:
    s = load(env, HEDGER_PRIVATE_KEY=None, HEDGER_ACCOUNT=OTHER)
    assert s.account == OTHER and not s.has_signer and s.build_signer() is None


def test_environment_dict_is_the_only_source(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEDGER_BAND", "0.5")
    monkeypatch.setenv("HEDGER_ORDER_MODE", "nonsense")
    s = load(env)
    assert s.policy.band == 5 * 10**16 and s.order_mode == "direct"


def test_order_mode_delayed(env: dict[str, str]) -> None:
    assert load(env, HEDGER_ORDER_MODE=" Delayed ").order_mode == "delayed"


# ---- every validated variable: a ConfigError naming it, with a fix ----

@pytest.mark.parametrize("changes, variable, hint", [
    ({"HEDGER_MARKET": None}, "HEDGER_MARKET", "0x address"),
    ({"HEDGER_MARKET": "  "}, "HEDGER_MARKET", "0x address"),
    ({"HEDGER_MARKET": "0x1234"}, "HEDGER_MARKET", "40 hex digits"),
    ({"HEDGER_MARKET": MARKET[:-1] + "g"}, "HEDGER_MARKET", "40 hex digits"),
    ({"HEDGER_ORACLE": None}, "HEDGER_ORACLE", "0x address"),
    ({"HEDGER_SPOT_TOKEN": "spot"}, "HEDGER_SPOT_TOKEN", "40 hex digits"),
    ({"HEDGER_COLLATERAL_TOKEN": None}, "HEDGER_COLLATERAL_TOKEN", "0x address"),
    ({"HEDGER_SEQUENCER_FEED": "0xabc"}, "HEDGER_SEQUENCER_FEED", "40 hex digits"),
    ({"HEDGER_PRIVATE_KEY": "0x1234"}, "HEDGER_PRIVATE_KEY", "64 hex digits"),
    ({"HEDGER_PRIVATE_KEY": KEY[:-1]}, "HEDGER_PRIVATE_KEY", "64 hex digits"),
    ({"HEDGER_PRIVATE_KEY": KEY[:-1] + "z"}, "HEDGER_PRIVATE_KEY", "64 hex digits"),
    ({"HEDGER_PRIVATE_KEY": None}, "HEDGER_ACCOUNT", "HEDGER_PRIVATE_KEY"),          # no account at all
    ({"HEDGER_ACCOUNT": OTHER}, "HEDGER_ACCOUNT", "signer's address"),
    ({"HEDGER_ACCOUNT": "me"}, "HEDGER_ACCOUNT", "40 hex digits"),
    ({"HEDGER_ORDER_MODE": "fast"}, "HEDGER_ORDER_MODE", "direct or delayed"),
    ({"HEDGER_BAND": "1.5"}, "HEDGER_BAND", "between 0 and 1"),
    ({"HEDGER_BAND": "-0.01"}, "HEDGER_BAND", "between 0 and 1"),
    ({"HEDGER_BAND": "5%"}, "HEDGER_BAND", "between 0 and 1"),
    ({"HEDGER_BAND": "NaN"}, "HEDGER_BAND", "between 0 and 1"),
    ({"HEDGER_TARGET_LEVERAGE": "5"}, "HEDGER_TARGET_LEVERAGE", "target 2"),
    ({"HEDGER_TARGET_LEVERAGE": "1"}, "HEDGER_TARGET_LEVERAGE", "target 2"),
    ({"HEDGER_TARGET_LEVERAGE": "3"}, "HEDGER_TARGET_LEVERAGE", "target 2"),                # == max
    ({"HEDGER_TARGET_LEVERAGE": "1.5"}, "HEDGER_TARGET_LEVERAGE", "target 2"),              # == min
    ({"HEDGER_TARGET_LEVERAGE": "0"}, "HEDGER_TARGET_LEVERAGE", "above 0"),
    ({"HEDGER_MAX_LEVERAGE": "1.8"}, "HEDGER_MAX_LEVERAGE", "target 2"),            # the variable set, not the default
    ({"HEDGER_CHAIN_ID": "mainnet"}, "HEDGER_CHAIN_ID", "chain id"),
    ({"HEDGER_CHAIN_ID": "1.5"}, "HEDGER_CHAIN_ID", "chain id"),
    ({"HEDGER_CHAIN_ID": "0"}, "HEDGER_CHAIN_ID", "chain id"),
    ({"HEDGER_RPC_URL": "ws://127.0.0.1:8545"}, "HEDGER_RPC_URL", "http"),
    ({"HEDGER_RPC_URL": "127.0.0.1:8545"}, "HEDGER_RPC_URL", "http"),
    ({"HEDGER_RPC_URL": "ftp://node.example/rpc"}, "HEDGER_RPC_URL", "http"),
    ({"HEDGER_EXTRA_EXPOSURE": "two"}, "HEDGER_EXTRA_EXPOSURE", "2.5"),
    ({"HEDGER_EXTRA_EXPOSURE": "1,5"}, "HEDGER_EXTRA_EXPOSURE", "2.5"),
    ({"HEDGER_EXTRA_EXPOSURE": "Infinity"}, "HEDGER_EXTRA_EXPOSURE", "2.5"),
    ({"HEDGER_PROTOCOL": "gmx"}, "HEDGER_PROTOCOL", "reference"),
    ({"HEDGER_HEDGE_RATIO": "3"}, "HEDGER_HEDGE_RATIO", "between 0 and 2"),
    ({"HEDGER_MAX_SLIPPAGE": "0.9"}, "HEDGER_MAX_SLIPPAGE", "between 0 and 0.5"),
    ({"HEDGER_MAX_TRADE_USD": "0"}, "HEDGER_MAX_TRADE_USD", "positive"),
    ({"HEDGER_COOLDOWN": "15m"}, "HEDGER_COOLDOWN", "seconds"),
    ({"HEDGER_ORACLE_MAX_AGE": "0"}, "HEDGER_ORACLE_MAX_AGE", "heartbeat"),
    ({"HEDGER_MAX_BLOCK_LAG": "-5"}, "HEDGER_MAX_BLOCK_LAG", "seconds"),
    ({"HEDGER_RECEIPT_TIMEOUT": "0"}, "HEDGER_RECEIPT_TIMEOUT", "seconds"),
])
def test_invalid_variable(env: dict[str, str], changes: dict[str, str | None], variable: str, hint: str) -> None:
    err = config_error(env, **changes)
    assert err.variable == variable
    assert hint in err.fix


def test_key_and_ape_account_both_set(env: dict[str, str]) -> None:
    err = config_error(env, HEDGER_APE_ACCOUNT="alice")
    assert err.variable in ("HEDGER_PRIVATE_KEY", "HEDGER_APE_ACCOUNT")
    assert "HEDGER_APE_ACCOUNT" in str(err) and "only one" in err.fix


def test_account_mismatch_names_both_addresses(env: dict[str, str]) -> None:
    err = config_error(env, HEDGER_ACCOUNT=OTHER)
    assert OTHER in str(err) and ADDRESS in str(err)


def test_journal_in_missing_folder(env: dict[str, str], tmp_path: Path) -> None:
    err = config_error(env, HEDGER_JOURNAL_PATH=str(tmp_path / "nope" / "journal.sqlite"))
    assert err.variable == "HEDGER_JOURNAL_PATH"
    assert "nope" in err.problem and "create it" in err.fix


def test_journal_path_is_a_directory(env: dict[str, str], tmp_path: Path) -> None:
    err = config_error(env, HEDGER_JOURNAL_PATH=str(tmp_path))
    assert err.variable == "HEDGER_JOURNAL_PATH" and "file path" in err.fix


def test_for_deploy_needs_no_addresses(env: dict[str, str]) -> None:
    e = {k: v for k, v in env.items() if k in ("HEDGER_RPC_URL", "HEDGER_PRIVATE_KEY", "HEDGER_JOURNAL_PATH")}
    s = Settings.from_env(e, dotenv=False, for_deploy=True)
    assert s.market == "" and s.account == ADDRESS
    with pytest.raises(ConfigError) as info:
        Settings.from_env(e, dotenv=False)
    assert info.value.variable == "HEDGER_MARKET"


# ---- exact decimal parsing ----

@pytest.mark.parametrize("variable, raw, attr, expected", [
    ("HEDGER_BAND", "0.05", "band", 5 * 10**16),
    ("HEDGER_BAND", " 0.1 ", "band", 10**17),
    ("HEDGER_BAND", "0", "band", 0),
    ("HEDGER_BAND", "1", "band", UNIT),
    ("HEDGER_MAX_SLIPPAGE", "0.003", "max_slippage", 3 * 10**15),
    ("HEDGER_HEDGE_RATIO", "0.333333333333333333", "hedge_ratio", 333_333_333_333_333_333),
    ("HEDGER_HEDGE_RATIO", "0.3", "hedge_ratio", 3 * 10**17),          # float would give 299999999999999999
    ("HEDGER_MIN_TRADE_USD", "123456789.123456789012345678", "min_trade_usd", 123_456_789_123_456_789_012_345_678),
    ("HEDGER_MIN_TRADE_USD", "1e3", "min_trade_usd", 1000 * UNIT),
    ("HEDGER_LIQUIDATION_BUFFER", "0.0000000000000000019", "liquidation_buffer", 1),   # below 1e-18: down
    ("HEDGER_MAX_TRADE_USD", "1000000000000000", "max_trade_usd", 10**15 * UNIT),
])
def test_decimals_parsed_exactly(env: dict[str, str], variable: str, raw: str, attr: str, expected: int) -> None:
    value = getattr(load(env, **{variable: raw}).policy, attr)
    assert type(value) is int and value == expected


@pytest.mark.parametrize("raw, expected", [
    ("2.5", 25 * 10**17),
    ("0.000000000000000001", 1),
    ("-1.25", -125 * 10**16),
    ("1000000", 10**6 * UNIT),
])
def test_extra_exposure_parsed_exactly(env: dict[str, str], raw: str, expected: int) -> None:
    s = load(env, HEDGER_EXTRA_EXPOSURE=raw)
    assert type(s.extra_exposure) is int and s.extra_exposure == expected


def test_leverages_and_integers(env: dict[str, str]) -> None:
    s = load(env, HEDGER_TARGET_LEVERAGE="2.5", HEDGER_MAX_LEVERAGE="4", HEDGER_MIN_LEVERAGE="1.25",
             HEDGER_COOLDOWN="60", HEDGER_ORACLE_MAX_AGE="86400", HEDGER_SEQUENCER_GRACE="0", HEDGER_CHAIN_ID="10")
    p = s.policy
    assert (p.target_leverage, p.max_leverage, p.min_leverage) == (25 * 10**17, 4 * UNIT, 125 * 10**16)
    assert (p.cooldown_s, p.oracle_max_age_s, p.sequencer_grace_s) == (60, 86_400, 0)
    assert s.chain_id == 10


def test_extra_exposure_exact_beyond_28_digits(env: dict[str, str]) -> None:
    s = load(env, HEDGER_EXTRA_EXPOSURE="12345678901.123456789012345678")
    assert s.extra_exposure == 12_345_678_901_123_456_789_012_345_678       # today ...680


# ---- secrets ----

def test_key_never_shown(env: dict[str, str]) -> None:
    for raw in (KEY, KEY_HEX, KEY.upper().replace("0X", "0x")):
        s = load(env, HEDGER_PRIVATE_KEY=raw)
        for text in (repr(s), str(s), f"{s}", repr(s.private_key), str(s.private_key)):
            assert KEY_HEX.lower() not in text.lower()
        assert "key" in repr(s)                                   # it does say which signer


def test_key_not_in_any_config_error(env: dict[str, str], tmp_path: Path) -> None:
    bad = [dict(HEDGER_ACCOUNT=OTHER), dict(HEDGER_APE_ACCOUNT="alice"), dict(HEDGER_ORDER_MODE="x"),
           dict(HEDGER_BAND="2"), dict(HEDGER_MARKET=None), dict(HEDGER_RPC_URL="ws://x"),
           dict(HEDGER_JOURNAL_PATH=str(tmp_path / "no" / "j")), dict(HEDGER_PROTOCOL="x"),
           dict(HEDGER_TARGET_LEVERAGE="9"), dict(HEDGER_CHAIN_ID="x"), dict(HEDGER_EXTRA_EXPOSURE="x")]
    for changes in bad:
        for raw in (KEY, KEY_HEX):
            with pytest.raises(ConfigError) as info:
                load(env, HEDGER_PRIVATE_KEY=raw, **changes)
            text = " ".join([str(info.value), repr(info.value), info.value.problem, info.value.fix,
                             repr(info.value.context)])
            assert KEY_HEX.lower() not in text.lower(), changes


def test_key_in_wrong_variable_not_echoed(env: dict[str, str]) -> None:
    for variable in ("HEDGER_ACCOUNT", "HEDGER_MARKET", "HEDGER_CHAIN_ID", "HEDGER_BAND"):
        with pytest.raises(ConfigError) as info:
            load(env, **{variable: KEY})
        assert info.value.variable == variable
        assert KEY_HEX.lower() not in str(info.value).lower(), variable


def test_rpc_url_shown_as_scheme_and_host(env: dict[str, str], no_registered_fragments: None) -> None:
    s = load(env, HEDGER_RPC_URL="https://eth-mainnet.g.alchemy.com/v2/SECRETKEY")
    assert s.rpc_url.endswith("SECRETKEY")                        # kept for use
    assert s.rpc_display == "https://eth-mainnet.g.alchemy.com"
    assert "SECRETKEY" not in repr(s) and "SECRETKEY" not in str(s)
    # once configured, the secret path is blanked even where a library quotes it bare
    out = redact_urls("404 Client Error for path /v2/SECRETKEY")
    assert "SECRETKEY" not in out and out.startswith("404 Client Error for path ")


def test_redact_url() -> None:
    assert redact_url("https://eth-mainnet.g.alchemy.com/v2/SECRETKEY") == "https://eth-mainnet.g.alchemy.com"
    # host and port say which node is meant: kept; user info, path and query carry keys: hidden
    assert redact_url("https://user:hunter2@node.example.org:8545/rpc?apikey=abc") == "https://node.example.org:8545"
    assert redact_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
    assert redact_url("http://[::1]:8545/v2/KEY") == "http://[::1]:8545"


@pytest.fixture()
def no_registered_fragments(monkeypatch: pytest.MonkeyPatch) -> None:
    """redact_urls also blanks the path/query/user parts of every RPC URL configured so far in
    the process (a global set): start from none, so that other tests' URLs do not interfere."""
    monkeypatch.setattr(hedger.core.secrets, "_SECRET_FRAGMENTS", set())


def test_redact_urls_in_text(no_registered_fragments: None) -> None:
    text = ("HTTPConnectionPool failed for https://eth-mainnet.g.alchemy.com/v2/SECRETKEY; "
            "retrying http://alice:hunter2@rpc.example.org:8545/path?token=TOKEN123 (timeout)")
    out = redact_urls(text)
    for secret in ("SECRETKEY", "hunter2", "alice", "TOKEN123", "/v2/"):
        assert secret not in out
    assert "https://eth-mainnet.g.alchemy.com" in out and "http://rpc.example.org:8545 " in out
    assert redact_urls("cannot read the chain at http://127.0.0.1:8545/: refused") == \
        "cannot read the chain at http://127.0.0.1:8545: refused"
    assert out.startswith("HTTPConnectionPool failed for ") and "retrying" in out
    assert redact_urls("no url here") == "no url here"


# ---- chain-dependent policy ----

def test_policy_for_chain_block_lag(env: dict[str, str]) -> None:
    s = load(env)
    assert s.policy_for_chain(31337).max_block_lag_s == 0         # anvil: guard off
    assert s.policy_for_chain(1337).max_block_lag_s == 0
    assert s.policy_for_chain(1).max_block_lag_s == 300
    assert s.policy_for_chain(10).max_block_lag_s == 300
    # nothing else changes
    assert s.policy_for_chain(1).band == s.policy.band and s.policy.max_block_lag_s == 0


def test_policy_for_chain_explicit_block_lag(env: dict[str, str]) -> None:
    s = load(env, HEDGER_MAX_BLOCK_LAG="60")
    assert s.max_block_lag_s == 60
    assert s.policy_for_chain(1).max_block_lag_s == 60
    assert s.policy_for_chain(31337).max_block_lag_s == 60
    off = load(env, HEDGER_MAX_BLOCK_LAG="0")
    assert off.policy_for_chain(1).max_block_lag_s == 0


def test_funding_aware_range(env: dict[str, str]) -> None:
    s = load(env)
    assert s.policy.funding_min_ratio == s.policy.hedge_ratio          # off by default
    assert s.policy.funding_threshold == UNIT // 10
    s = load(env, HEDGER_FUNDING_HEDGE_MIN="0.8", HEDGER_FUNDING_THRESHOLD="0.25")
    assert s.policy.funding_min_ratio == 8 * UNIT // 10 and s.policy.funding_threshold == UNIT // 4
    with pytest.raises(ConfigError) as e:
        load(env, HEDGER_FUNDING_HEDGE_MIN="1.2")
    assert e.value.variable == "HEDGER_FUNDING_HEDGE_MIN" and "HEDGER_HEDGE_RATIO" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load(env, HEDGER_FUNDING_THRESHOLD="ten")
    assert e.value.variable == "HEDGER_FUNDING_THRESHOLD"


@pytest.mark.parametrize("raw", ["abc", "nan", "inf", "-Infinity", "0", "-1", ""])
def test_a_command_line_price_must_be_a_positive_finite_number(raw: str) -> None:
    from hedger.config import positive_e18
    with pytest.raises(ConfigError) as err:
        positive_e18("--eth-usd", raw, "3000")
    assert err.value.variable == "--eth-usd" and "--eth-usd 3000" in err.value.fix


def test_a_command_line_price_is_exact() -> None:
    from hedger.config import positive_e18
    assert positive_e18("--eth-usd", " 3000.123456789012345678 ", "3000") == 3000_123456789012345678


# ---- EIP-55 checksums, unknown names, leverage names ----

def test_mixed_case_address_with_a_bad_checksum_is_refused(env: dict[str, str]) -> None:
    good = "0x5FbDB2315678afecb367f032d93F642f64180aa3"          # EIP-55 of MARKET
    assert load(env, HEDGER_MARKET=good).market == good
    assert load(env, HEDGER_MARKET=good.lower()).market == good           # all-lower: no checksum to check
    assert load(env, HEDGER_MARKET="0x" + good[2:].upper()).market == good  # all-upper: likewise
    typo = good[:-1] + "4"                                                 # one digit changed: still mixed case
    bad_case = good.replace("F", "f", 1)                                   # one letter's case changed
    for raw in (typo, bad_case):
        err = config_error(env, HEDGER_MARKET=raw)
        assert err.variable == "HEDGER_MARKET" and "EIP-55" in str(err)
    err = config_error(env, HEDGER_ACCOUNT="0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92267")
    assert err.variable == "HEDGER_ACCOUNT" and "checksum" in str(err)


def test_unknown_hedger_name_warns_once_with_the_closest(env: dict[str, str], capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hedger.config, "_WARNED", set())
    load(env, HEDGER_BANDD="0.1", HEDGER_ZZZ_QQQ="1")
    err = capsys.readouterr().err
    assert "HEDGER_BANDD is not a setting hedger reads (did you mean HEDGER_BAND?)" in err
    assert "HEDGER_ZZZ_QQQ is not a setting" in err and err.count("did you mean") == 1
    load(env, HEDGER_BANDD="0.1")
    assert capsys.readouterr().err == ""                       # once per name
    load(env, HEDGER_BAND="0.1", HEDGER_MULTICALL=MARKET)      # known names: silent
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("changes, variable", [
    ({"HEDGER_MAX_LEVERAGE": "1"}, "HEDGER_MAX_LEVERAGE"),                 # below the default target 2
    ({"HEDGER_MIN_LEVERAGE": "2.5"}, "HEDGER_MIN_LEVERAGE"),               # above the default target 2
    ({"HEDGER_TARGET_LEVERAGE": "4"}, "HEDGER_TARGET_LEVERAGE"),           # above the default max 3
    ({"HEDGER_MAX_LEVERAGE": "4", "HEDGER_TARGET_LEVERAGE": "5"}, "HEDGER_TARGET_LEVERAGE"),   # both set
])
def test_leverage_conflict_names_the_variable_set(env: dict[str, str], changes: dict[str, str],
                                                  variable: str) -> None:
    err = config_error(env, **changes)
    assert err.variable == variable
    assert str(err).startswith(f"{variable}: {changes[variable]} is not")


# ---- the collateral band as liquidation distances (issue 10) ----

DISTANCES = {"HEDGER_MIN_LIQ_DISTANCE": "0.3", "HEDGER_TARGET_LIQ_DISTANCE": "0.45", "HEDGER_MAX_LIQ_DISTANCE": "0.6"}


def test_liquidation_distances_set_the_band(env: dict[str, str]) -> None:
    p = load(env, **DISTANCES).policy
    assert (p.min_liq_distance, p.target_liq_distance, p.max_liq_distance) == (
        3 * UNIT // 10, 45 * UNIT // 100, 6 * UNIT // 10)
    p = load(env).policy                       # unset: the leverages set the band, through the model
    assert (p.min_liq_distance, p.target_liq_distance, p.max_liq_distance) == (None, None, None)


@pytest.mark.parametrize("changes, variable, says", [
    ({"HEDGER_MIN_LIQ_DISTANCE": "0.3"}, "HEDGER_TARGET_LIQ_DISTANCE", "set HEDGER_TARGET_LIQ_DISTANCE too"),
    ({**DISTANCES, "HEDGER_MAX_LEVERAGE": "3"}, "HEDGER_MAX_LEVERAGE", "both set the band's floor"),
    ({**DISTANCES, "HEDGER_MIN_LEVERAGE": "1.5"}, "HEDGER_MIN_LEVERAGE", "both set the band's ceiling"),
    ({**DISTANCES, "HEDGER_TARGET_LIQ_DISTANCE": "0.7"}, "HEDGER_TARGET_LIQ_DISTANCE", "distances must rise"),
    ({**DISTANCES, "HEDGER_MIN_LIQ_DISTANCE": "0"}, "HEDGER_MIN_LIQ_DISTANCE", "0"),
    ({**DISTANCES, "HEDGER_MAX_LIQ_DISTANCE": "30%"}, "HEDGER_MAX_LIQ_DISTANCE", "30%"),
    ({**DISTANCES, "HEDGER_LIQUIDATION_BUFFER": "0.5"}, "HEDGER_LIQUIDATION_BUFFER", "HEDGER_TARGET_LIQ_DISTANCE"),
])
def test_liquidation_distance_errors_name_the_variable_and_the_fix(env: dict[str, str], changes: dict[str, str],
                                                                   variable: str, says: str) -> None:
    err = config_error(env, **changes)
    assert err.variable == variable and says in str(err), str(err)


# ---- child processes inherit no secret ----

def test_child_env_drops_secrets_and_keeps_the_rest() -> None:
    from hedger.core.secrets import child_env
    base = {"HEDGER_PRIVATE_KEY": KEY, "APE_ACCOUNTS_bot_PASSPHRASE": "pw", "HEDGER_ALERT_WEBHOOK_SECRET": "whsec",
            "HEDGER_ALERT_WEBHOOK": "https://hooks.example.org/T0/B0/XXXX", "ETHERSCAN_API_KEY": "k",
            "HEDGER_RPC_URL": "https://eth-mainnet.g.alchemy.com/v2/SECRETKEY",
            "UPSTREAM": "http://alice:hunter2@rpc.example.org:8545", "DEPLOYER_MNEMONIC": "test test",
            "PATH": "/usr/bin:/bin", "HOME": "/home/u", "HEDGER_MARKET": MARKET, "LOCAL_RPC": "http://127.0.0.1:8545"}
    out = child_env(base, EXTRA="1")
    assert out == {"PATH": "/usr/bin:/bin", "HOME": "/home/u", "HEDGER_MARKET": MARKET,
                   "LOCAL_RPC": "http://127.0.0.1:8545", "EXTRA": "1"}


def test_spawned_children_get_no_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """anvil (localchain) is started with the scrubbed environment: read it back from /proc."""
    from hedger.sim.localchain import start_anvil
    monkeypatch.setenv("HEDGER_PRIVATE_KEY", KEY)
    monkeypatch.setenv("APE_ACCOUNTS_bot_PASSPHRASE", "hunter2")
    monkeypatch.setenv("HEDGER_RPC_URL", "https://rpc.example.org/v2/SECRETKEY")
    monkeypatch.setenv("HEDGER_CANARY", "still here")
    with start_anvil() as node:
        environ = Path(f"/proc/{node.process.pid}/environ").read_bytes().decode(errors="replace")
    assert "HEDGER_CANARY=still here" in environ                     # the read works
    for secret in (KEY[2:], "hunter2", "SECRETKEY"):
        assert secret not in environ


def test_scrubbed_environ_hides_secrets_from_children_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    """For children a library starts itself (ape's anvil for a fork, the simulator's pool workers)."""
    import os
    import subprocess
    import sys
    from hedger.core.secrets import scrubbed_environ
    monkeypatch.setenv("HEDGER_PRIVATE_KEY", KEY)
    monkeypatch.setenv("HEDGER_ALERT_WEBHOOK_SECRET", "whsec_abc")
    monkeypatch.setenv("HEDGER_CANARY", "still here")
    show = [sys.executable, "-c", "import os; print(sorted(k for k in os.environ if k.startswith('HEDGER_')))"]
    with scrubbed_environ():
        seen = subprocess.run(show, capture_output=True, text=True, check=True).stdout
    assert "HEDGER_CANARY" in seen                                    # the read works
    assert "HEDGER_PRIVATE_KEY" not in seen and "HEDGER_ALERT_WEBHOOK_SECRET" not in seen
    assert os.environ["HEDGER_PRIVATE_KEY"] == KEY and os.environ["HEDGER_ALERT_WEBHOOK_SECRET"] == "whsec_abc"


# ---- the journal and lock: one per chain and account, in the per-user state folder ----

def test_journal_defaults_to_the_state_folder_whatever_the_current_folder(
        env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    e = {**env, "HEDGER_CHAIN_ID": "31337", "XDG_STATE_HOME": str(state)}
    del e["HEDGER_JOURNAL_PATH"]
    paths = []
    for cwd in (tmp_path / "a", tmp_path / "b" / "c"):
        cwd.mkdir(parents=True)
        monkeypatch.chdir(cwd)
        paths.append(Settings.from_env(e, dotenv=False).journal_path)
    assert paths[0] == paths[1] == state / "hedger" / "31337" / f"{ADDRESS.lower()}.sqlite"
    assert paths[0].parent.is_dir()
    assert load({**e, "HEDGER_CHAIN_ID": "10"}).journal_path.parent.name == "10"      # keyed by chain
    # without XDG_STATE_HOME (or with a relative one): ~/.local/state/hedger
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    rel = {**e, "XDG_STATE_HOME": "relative/state"}
    assert load(rel).journal_path == tmp_path / "home" / ".local" / "state" / "hedger" / "31337" / \
        f"{ADDRESS.lower()}.sqlite"
    # HEDGER_JOURNAL_PATH still overrides
    assert load(env, HEDGER_CHAIN_ID="31337").journal_path == tmp_path / "journal.sqlite"


@pytest.mark.parametrize("leftover", ["hedger-journal.sqlite", f".hedger-{ADDRESS.lower()}.lock"])
def test_old_default_journal_or_lock_in_the_current_folder_is_refused(
        env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leftover: str) -> None:
    work = tmp_path / "cron"
    work.mkdir()
    (work / leftover).write_text("")
    monkeypatch.chdir(work)
    e = {**env, "HEDGER_CHAIN_ID": "31337", "XDG_STATE_HOME": str(tmp_path / "state")}
    err = config_error(e, HEDGER_JOURNAL_PATH=None)
    assert err.variable == "HEDGER_JOURNAL_PATH" and leftover in str(err)
    assert f"HEDGER_JOURNAL_PATH={work / 'hedger-journal.sqlite'}" in err.fix and "mv " in err.fix
    assert not (tmp_path / "state" / "hedger" / "31337").exists()        # nothing created
    # pointing HEDGER_JOURNAL_PATH at it (the fix) is accepted
    assert load(e, HEDGER_JOURNAL_PATH=str(work / "hedger-journal.sqlite")).journal_path == \
        work / "hedger-journal.sqlite"


def test_chain_id_for_the_journal_is_read_only_when_needed(env: dict[str, str], tmp_path: Path) -> None:
    """Without HEDGER_CHAIN_ID the path needs the node's chain id, read when the journal is first
    used (configuration alone reads nothing): no node, an RpcError with the fix."""
    from hedger.core.errors import RpcError
    e = {**env, "XDG_STATE_HOME": str(tmp_path / "state"), "HEDGER_RPC_URL": "http://127.0.0.1:9/v2/KEY999"}
    del e["HEDGER_JOURNAL_PATH"]
    s = load(e)                                           # no node needed to configure
    with pytest.raises(RpcError) as info:
        s.journal_path
    msg = str(info.value)
    assert "http://127.0.0.1:9 " in msg and "KEY999" not in msg and "HEDGER_CHAIN_ID" in msg
    assert load(e, HEDGER_CHAIN_ID="5").journal_path.parent.name == "5"      # no read needed


def test_whitespace_around_the_rpc_url_is_dropped_as_around_an_address(env: dict[str, str]) -> None:
    """`HEDGER_MARKET=" 0x..."` is read (stripped), but a space after the RPC URL (an export with quotes,
    a value pasted with its newline) made every command fail `cannot read the chain at <unparseable
    URL>` (exit 8), as if the node were down."""
    assert load(env, HEDGER_RPC_URL=" http://127.0.0.1:8545 \n").rpc_url == "http://127.0.0.1:8545"
