"""The shared adapter test suite: every registered protocol adapter, in both order modes,
must read state and turn each kind of action into calls that do what the action says.

A new protocol adds a fixture builder to ``BUILDERS`` (deploy or fork its market and
fund the hedged account) and passes this suite."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from hedger.protocols import get_adapter, registered
from hedger.chain.reader import ChainReader
from hedger.core.types import Action, ActionKind, OrderState
from tests.conftest import USDC, WETH, Hedge


def _reference(hedge: Hedge, two_step: bool) -> Any:
    return get_adapter("reference")(hedge.chain.w3, hedge.chain.d.market, hedge.chain.d.collateral,
                                    two_step=two_step)


BUILDERS: dict[str, Callable[[Hedge, bool], Any]] = {"reference": _reference}


def test_every_registered_adapter_has_a_builder() -> None:
    assert set(registered()) == set(BUILDERS)


def read(hedge: Hedge, adapter: Any) -> tuple[Any, Any]:
    r = ChainReader(hedge.chain.w3)
    head = r.head()
    res = r.call_many(adapter.read_specs(hedge.address), head.block_number)
    stage2 = adapter.read_stage2(hedge.address, res)      # a venue that reads in two stages: one more
    if stage2:
        res = {**res, **r.call_many(stage2, head.block_number)}
    assert r.round_trips == (3 if stage2 else 2)
    return adapter.parse(res, hedge.address, head)


def send(hedge: Hedge, calls: list[Any]) -> None:
    s = hedge.chain.sender(1)
    for c in calls:
        s.send(c.to, c.data)


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("two_step", [False, True], ids=["direct", "two-step"])
def test_adapter_contract(hedge: Hedge, name: str, two_step: bool) -> None:
    adapter = BUILDERS[name](hedge, two_step)
    assert adapter.two_step is two_step
    market, acct = read(hedge, adapter)
    assert market.two_step is two_step and market.collateral_decimals == 6
    assert market.price == 3000 * 10**18 and not market.price_invalid
    assert acct.size == 0 and acct.margin == 0 and acct.orders == ()
    assert acct.collateral_wallet == 50_000 * USDC and acct.collateral_allowance == 0

    # deposit: approval bounded to the amount, then the margin arrives in 18 decimals
    calls = adapter.build_calls((Action(ActionKind.DEPOSIT, 10_000 * USDC, risk_reducing=True),), acct, market)
    assert [c.function for c in calls][-1] in ("transferMargin", "depositCollateral")
    approve = [c for c in calls if c.function == "approve"]
    assert approve and approve[0].args[1] == 10_000 * USDC
    send(hedge, calls)
    market, acct = read(hedge, adapter)
    assert acct.margin == 10_000 * 10**18 and acct.collateral_wallet == 40_000 * USDC

    # trade: direct fills at once; two-step reports a pending order, counted only when filled
    calls = adapter.build_calls((Action(ActionKind.TRADE, -2 * WETH, price_bound=2900 * 10**18),), acct, market)
    send(hedge, calls)
    market, acct = read(hedge, adapter)
    if two_step:
        assert acct.size == 0 and len(acct.orders) == 1
        (o,) = acct.orders
        assert o.size_delta == -2 * WETH and o.state is OrderState.PENDING and o.kind.changes_size
        assert o.executable_at > o.submitted_at and o.key
        # the order's key is what the submission says it creates
        assert [c.order_key for c in calls if c.creates_order] == [o.key]
        hedge.chain.advance(market.min_order_delay)
        assert hedge.fill_orders()
        market, acct = read(hedge, adapter)
    assert acct.size == -2 * WETH and acct.orders == ()
    assert acct.liquidation_price > 3000 * 10**18

    # withdraw
    calls = adapter.build_calls((Action(ActionKind.WITHDRAW, 1_000 * USDC),), acct, market)
    send(hedge, calls)
    market, acct2 = read(hedge, adapter)
    assert acct2.collateral_wallet == acct.collateral_wallet + 1_000 * USDC

    # cancel an expired order (two-step only)
    if two_step:
        send(hedge, adapter.build_calls((Action(ActionKind.TRADE, -WETH, price_bound=2900 * 10**18),), acct2,
                                        market))
        hedge.chain.advance(market.max_order_delay + 1)
        hedge.chain.set_price(3000)
        market, acct3 = read(hedge, adapter)
        (o,) = acct3.orders
        assert o.state is OrderState.EXPIRED               # chain time passed its expiry: it can only be cancelled
        cancel = adapter.build_calls((Action(ActionKind.CANCEL_ORDER, 0, risk_reducing=True, order_key=o.key),),
                                     acct3, market)
        assert [c.order_key for c in cancel] == [o.key]
        send(hedge, cancel)
        market, acct3 = read(hedge, adapter)
        assert acct3.orders == () and acct3.size == -2 * WETH
    else:
        assert adapter.fill_order_call(hedge.address) is None


def test_multicall_reads_equal_batched_reads(hedge: Hedge) -> None:
    """The same cycle read through Multicall3's aggregate3 (one eth_call) and through a JSON-RPC
    batch: identical results, two round trips either way."""
    from hedger.chain.reader import CANONICAL_MULTICALL3
    mc = hedge.chain.d.multicall
    assert mc and mc != CANONICAL_MULTICALL3          # a bare local chain: our compatible one
    assert hedge.cycle(HEDGER_MULTICALL=mc).outcome == "acted"     # a whole cycle reads through it
    a, b = hedge.keeper(), hedge.keeper(HEDGER_MULTICALL=mc)
    assert b.reader.multicall == mc
    sa, sb = a.read(), b.read()
    assert sa.account == sb.account and sa.market == sb.market and sa.oracle == sb.oracle
    assert sa.exposure == sb.exposure and sa.collateral_status == sb.collateral_status
    assert sa.account.size == -10 * WETH
    assert a.reader.round_trips == b.reader.round_trips == 2
    # a reverting call (paused() asked of a token that has no such function) is None either way
    from hedger.chain.reader import CallSpec
    spec = [CallSpec("x", hedge.chain.d.spot, "FiatToken", "isBlacklisted", (hedge.address,), optional=True),
            CallSpec("y", hedge.chain.d.market, "PerpMarket", "fillPrice", (-(2**254),), optional=True)]
    block = hedge.chain.w3.eth.block_number
    assert a.reader.call_many(spec, block)["y"] is None and b.reader.call_many(spec, block)["y"] is None
