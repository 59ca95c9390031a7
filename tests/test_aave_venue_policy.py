"""The aave-v3 venue's refusals and settings, pure: an account the model cannot judge (e-mode,
other reserves) and a reserve that will not lend are refusals by name with nothing sent (exit 9);
the unsold borrowed asset in the signer's wallet is part of the position; HEDGER_SWAP_ROUTER,
HEDGER_SWAP_FEE, the signer differing from HEDGER_HOLDER, and the band's default in HF terms."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hedger.config import Settings
from hedger.core.errors import ConfigError
from hedger.core.types import DecisionKind, PolicyParams, RefusalKind
from hedger.cycle.keeper import REFUSAL_EXIT
from hedger.decide import policy
from hedger.sim.localchain import dev_account
from tests.snapshots import eth, frac, make_snapshot, usdc
from tests.test_aave_model import account, market
from tests.test_aave_model import model as aave_model

AAVE_PARAMS = PolicyParams(min_liq_distance=frac("0.35"), target_liq_distance=frac("0.6"), max_liq_distance=frac(1))


def snap(acct_kw: dict[str, object] | None = None, supplied: int = 0, debt: int = 0,
         **market_kw: object):   # type: ignore[no-untyped-def]
    s = make_snapshot(extra=eth(5), wallet=usdc(50_000))
    return replace(s, venue="aave-v3", market=market(**market_kw),
                   account=account(supplied, debt, collateral_wallet=usdc(50_000), **(acct_kw or {})))


def test_an_unhedged_holding_opens_a_short_with_collateral_first() -> None:
    d = policy.decide(snap(), AAVE_PARAMS)
    assert d.kind is DecisionKind.REBALANCE and d.size_delta == -eth(5) and d.margin_delta > 0
    # the borrow is mined before the sale's proceeds are supplied: the deposit alone carries it
    # within the LTV (77%, 2% cushion), so the whole hedge opens in one plan
    assert d.margin_delta * 10**12 * 77 // 100 >= eth(5) * 3000 * 102 // 100 and d.code == "rebalance"
    assert "opening checks" in d.reason


@pytest.mark.parametrize("acct_kw, words", [({"e_mode": 1}, "e-mode"),
                                            ({"other_reserves": "bits 0x2"}, "other Aave reserves")])
def test_an_account_the_model_cannot_judge_is_refused_and_nothing_is_sent(acct_kw: dict[str, object],
                                                                          words: str) -> None:
    d = policy.decide(snap(acct_kw), AAVE_PARAMS)
    assert (d.kind, d.refusal, d.code) == (DecisionKind.REFUSE, RefusalKind.ACCOUNT, "account_refused")
    assert words in d.reason and "nothing is sent" in d.reason
    assert REFUSAL_EXIT[d.refusal] == 9 and not d.acts


@pytest.mark.parametrize("kw, words", [({"asset_paused": True}, "paused"), ({"asset_frozen": True}, "frozen"),
                                       ({"borrowing_enabled": False}, "disabled"),
                                       ({"asset_available": eth(1)}, "can lend"),
                                       ({"borrow_cap_room": eth(2)}, "borrow cap")])
def test_a_reserve_that_will_not_lend_is_a_refusal_with_its_reason(kw: dict[str, object], words: str) -> None:
    d = policy.decide(snap(**kw), AAVE_PARAMS)
    assert (d.kind, d.refusal, d.code) == (DecisionKind.REFUSE, RefusalKind.ACCOUNT, "venue_refused")
    assert words in d.reason and not d.acts


def test_a_reserve_state_does_not_refuse_a_reduction() -> None:
    s = snap(supplied=usdc(40_000), debt=eth(8), asset_frozen=True)
    d = policy.decide(s, AAVE_PARAMS)
    assert d.kind is DecisionKind.REBALANCE and d.size_delta > 0


@given(wallet=st.integers(0, eth(3)), delta=st.integers(-eth(5), eth(1)))
def test_the_unsold_asset_in_the_wallet_is_part_of_the_position(wallet: int, delta: int) -> None:
    mdl = replace(aave_model(usdc(16_000), eth(2)), account=account(usdc(16_000), eth(2), asset_wallet=wallet))
    before, pt = mdl.after(0, 0), mdl.after(delta, 0)
    offset = min(wallet, eth(2))                          # beyond the debt: the signer's dust, not a long
    assert before.size == -(eth(2) - offset)
    assert pt.size == before.size + delta                 # the trade moves the position by its size
    # a sale sells the wallet first: the debt (what liquidates) grows only by what it did not cover
    if delta < 0:
        fill, _ = mdl.fill(delta)
        collateral = usdc(16_000) * 10**12 + -delta * fill // 10**18
        debt = eth(2) + max(0, -delta - offset)
        assert pt.liquidation_price == collateral * 8000 * 10**18 // (10_000 * debt)


# ------------------------------------------------------------------ settings

def env(**kw: str) -> dict[str, str]:
    base = {"HEDGER_PRIVATE_KEY": dev_account(1).key.hex(), "HEDGER_PROTOCOL": "aave-v3",
            "HEDGER_MARKET": "0x" + "11" * 20, "HEDGER_ORACLE": "0x" + "22" * 20,
            "HEDGER_SPOT_TOKEN": "0x" + "33" * 20, "HEDGER_COLLATERAL_TOKEN": "0x" + "44" * 20,
            "HEDGER_SWAP_ROUTER": "0x" + "55" * 20, "HEDGER_HOLDER": dev_account(3).address,
            "HEDGER_JOURNAL_PATH": "/tmp/aave-venue-unused.sqlite"}
    base.update(kw)
    return {k: v for k, v in base.items() if v != ""}


def test_aave_settings_read_and_the_band_defaults_to_health_factors() -> None:
    s = Settings.from_env(env(), dotenv=False)
    assert (s.swap_router, s.swap_fee, s.protocol) == ("0x" + "55" * 20, 500, "aave-v3")
    p = s.policy
    assert (p.min_liq_distance, p.target_liq_distance, p.max_liq_distance) == (frac("0.35"), frac("0.6"), frac(1))
    # the operator's own band stays
    s = Settings.from_env(env(HEDGER_TARGET_LEVERAGE="2.5", HEDGER_MAX_LEVERAGE="4"), dotenv=False)
    assert s.policy.target_liq_distance is None
    # other venues keep the leverages
    s = Settings.from_env(env(HEDGER_PROTOCOL="reference"), dotenv=False)
    assert s.policy.target_liq_distance is None


def test_the_signer_must_not_be_the_holder_on_aave() -> None:
    me = dev_account(1).address
    for holder in (me, ""):
        with pytest.raises(ConfigError) as err:
            Settings.from_env(env(HEDGER_HOLDER=holder), dotenv=False)
        assert err.value.variable == "HEDGER_HOLDER" and me in str(err.value)
    Settings.from_env(env(HEDGER_PROTOCOL="reference", HEDGER_HOLDER=""), dotenv=False)   # other venues: fine


@pytest.mark.parametrize("kw, var", [({"HEDGER_SWAP_ROUTER": ""}, "HEDGER_SWAP_ROUTER"),
                                     ({"HEDGER_SWAP_FEE": "400"}, "HEDGER_SWAP_FEE"),
                                     ({"HEDGER_SWAP_FEE": "x"}, "HEDGER_SWAP_FEE"),
                                     ({"HEDGER_SWAP_ROUTER": "0x12"}, "HEDGER_SWAP_ROUTER")])
def test_swap_settings_errors_name_the_variable_and_the_fix(kw: dict[str, str], var: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env(**kw), dotenv=False)
    assert err.value.variable == var and err.value.fix


def test_a_two_step_mode_is_refused_on_aave() -> None:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env(HEDGER_ORDER_MODE="delayed"), dotenv=False)
    assert err.value.variable == "HEDGER_ORDER_MODE" and "direct" in err.value.fix


def test_a_reduction_the_pool_cannot_pay_for_at_once_is_split_by_what_the_collateral_can_buy() -> None:
    """Buying the asset back is paid with collateral withdrawn from Aave, which the pool refuses
    below a health factor of 1 with the debt still owed (error 35: seen unwinding an open-once hedge
    after a +60% rally). The policy shrinks by what the wallet and the free collateral buy; the
    rest goes in the next cycles, each repay freeing more."""
    # the holding is gone: 10 ETH owed at $3,000 against $40,000 supplied (threshold 80%: $37,500
    # must stay while the debt is owed), $2,000 in the wallet
    s = snap(supplied=usdc(40_000), debt=eth(10))
    s = replace(s, exposure=replace(s.exposure, spot_balance=0, extra=0, lp=0),
                account=account(usdc(40_000), eth(10), collateral_wallet=usdc(2_000)))
    d = policy.decide(s, AAVE_PARAMS)
    assert d.kind is DecisionKind.REBALANCE and "free to pay for it" in d.reason, d.reason
    budget = usdc(2_000) + (usdc(40_000) - usdc(37_500) - 1) * 99 // 100
    cost_at_worst = d.size_delta * 3000 * 1005 * 10_005 // (1000 * 10_000) // 10**12     # fee 0.05%, slippage 0.5%
    assert 0 < d.size_delta < eth(10) and cost_at_worst <= budget <= cost_at_worst * 1002 // 1000 + 2
    # with enough free collateral the whole reduction goes at once
    rich = replace(s, account=account(usdc(40_000), eth(10), collateral_wallet=usdc(40_000)))
    d2 = policy.decide(rich, AAVE_PARAMS)
    assert d2.size_delta == eth(10) and "free to pay for it" not in d2.reason
