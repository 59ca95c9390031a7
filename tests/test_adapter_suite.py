"""The shared adapter test suite: every registered protocol adapter, in each order mode it has,
must read state and turn each kind of action into calls that do what the action says; its
market model must predict what the chain then reports; the fees it charges (in our transaction
or a keeper's) must be attributed from the venue's own events; and what the venue would refuse,
the model must refuse too, with nothing sent.

A new protocol adds a builder to ``BUILDERS`` (deploy or fork its market, fund the hedged account
with 50,000 of a USD collateral at 3,000 USD the asset) and passes this suite. A venue without a
two-step mode declares it (``PerpAdapter.order_modes``) and that case is skipped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import pytest
from web3 import Web3

from hedger.chain.executor import KeySigner, TxSender
from hedger.chain.reader import ChainReader
from hedger.core.errors import SimulationFailed
from hedger.core.model import model_for
from hedger.core.secrets import Secret
from hedger.core.types import Action, ActionKind, ChainView, Exposure, FeedRound, OrderState, Snapshot
from hedger.decide.planner import price_bound
from hedger.protocols import get_adapter, registered
from hedger.sim.localchain import Anvil, dev_account
from tests.conftest import USDC, WETH, Hedge, web3_at


@dataclass
class Venue:
    """One venue's market on a chain, and the hedged account (dev account 1) funded on it."""

    adapter: Any
    w3: Web3
    sender: TxSender
    advance: Callable[[int], None]          # seconds of chain time
    set_price: Callable[[int], None]        # the asset's USD price, everywhere the venue reads it
    fill_orders: Callable[[], list[str]]    # a protocol keeper's fills of due two-step orders

    @property
    def address(self) -> str:
        return self.sender.signer.address

    def nonce(self) -> int:
        return self.w3.eth.get_transaction_count(self.address)


def _reference(request: pytest.FixtureRequest, two_step: bool) -> Venue:
    hedge: Hedge = request.getfixturevalue("hedge")
    adapter = get_adapter("reference")(hedge.chain.w3, hedge.chain.d.market, hedge.chain.d.collateral,
                                       two_step=two_step)
    return Venue(adapter=adapter, w3=hedge.chain.w3, sender=hedge.chain.sender(1), advance=hedge.chain.advance,
                 set_price=hedge.chain.set_price, fill_orders=hedge.fill_orders)


@pytest.fixture(scope="module")
def aave_market(module_anvil: Anvil) -> Any:
    from hedger.sim.aave_uniswap import deploy_aave_uniswap
    return deploy_aave_uniswap(web3_at(module_anvil))


def _aave(request: pytest.FixtureRequest, two_step: bool) -> Venue:
    from hedger.sim.aave_uniswap import arbitrage_pool, artifact, set_prices
    from hedger.sim.npm_artifacts import ArtifactDeployer
    d = request.getfixturevalue("aave_market")
    w3 = web3_at(request.getfixturevalue("module_anvil"))
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    request.addfinalizer(lambda: w3.provider.make_request("evm_revert", [snap]))
    me = TxSender(w3, KeySigner(Secret(dev_account(1).key.hex())))
    trader = TxSender(w3, KeySigner(Secret(dev_account(2).key.hex())))
    ArtifactDeployer(trader).call(artifact("MintableERC20"), d.usdc, "mint", me.signer.address, 50_000 * USDC)

    def advance(seconds: int) -> None:
        w3.provider.make_request("evm_increaseTime", [seconds])
        w3.provider.make_request("evm_mine", [])

    def set_price(usd: int) -> None:
        set_prices(trader, d, usd * 10**8)
        arbitrage_pool(trader, d)
    adapter = get_adapter("aave-v3")(w3, d.addresses_provider, d.usdc, two_step=two_step, asset=d.weth,
                                     swap_router=d.swap_router, swap_fee=d.fee, account=me.signer.address)
    return Venue(adapter=adapter, w3=w3, sender=me, advance=advance, set_price=set_price, fill_orders=lambda: [])


def _gmx_v2(request: pytest.FixtureRequest, two_step: bool) -> Venue:
    """The GMX v2 stand-in on the session's chain, its market's short token the session's USDC, the
    protocol keeper holding GMX's ORDER_KEEPER role; funding and borrowing off (exact comparisons)."""
    from hedger.cycle.keeper import fill_due_orders
    from hedger.protocols.gmx_v2 import interface as gi
    from hedger.sim.deploy import transact
    from hedger.sim.gmx_standin import deploy_gmx_standin
    from tests.conftest import PROTOCOL_KEEPER
    hedge: Hedge = request.getfixturevalue("hedge")
    c = hedge.chain
    s = deploy_gmx_standin(c.deployer, usdc=c.d.collateral, keepers=(dev_account(PROTOCOL_KEEPER).address,))
    c.mint_usdc(s.position_engine, 10_000_000 * USDC)
    for key in (gi.borrowing_factor_key(s.market, True), gi.borrowing_factor_key(s.market, False),
                gi.funding_factor_key(s.market)):
        transact(c.deployer, "GmxDataStore", s.data_store, "setUint", key, 0)
    adapter = get_adapter("gmx-v2")(c.w3, s.market, c.d.collateral, two_step=two_step,
                                    exchange_router=s.exchange_router, reader=s.reader, oracle=c.d.oracle)
    return Venue(adapter=adapter, w3=c.w3, sender=c.sender(1), advance=c.advance, set_price=c.set_price,
                 fill_orders=lambda: fill_due_orders(c.w3, adapter, c.sender(PROTOCOL_KEEPER), [hedge.address]))


BUILDERS: dict[str, Callable[[pytest.FixtureRequest, bool], Venue]] = {"reference": _reference, "aave-v3": _aave,
                                                                         "gmx-v2": _gmx_v2}


def delays(market: Any) -> tuple[int, int]:
    """(seconds before an order may execute, seconds after which it expires) of a two-step venue."""
    if hasattr(market, "request_expiration_time"):
        return 1, market.request_expiration_time
    return market.min_order_delay, market.max_order_delay


def test_every_registered_adapter_has_a_builder() -> None:
    assert set(registered()) == set(BUILDERS)


def venue(request: pytest.FixtureRequest, name: str, two_step: bool) -> Venue:
    mode = "delayed" if two_step else "direct"
    if mode not in get_adapter(name).order_modes:
        pytest.skip(f"{name} has no {mode} order mode (it declares {get_adapter(name).order_modes})")
    v = BUILDERS[name](request, two_step)
    assert v.adapter.two_step is two_step
    return v


def read(v: Venue, adapter: Any) -> tuple[Any, Any]:
    r = ChainReader(v.w3)
    head = r.head()
    res = r.call_many(adapter.read_specs(v.address), head.block_number)
    stage2 = adapter.read_stage2(v.address, res)      # a venue that reads in two stages: one more
    if stage2:
        res = {**res, **r.call_many(stage2, head.block_number)}
    assert r.round_trips == (3 if stage2 else 2)
    return adapter.parse(res, v.address, head)


def send(v: Venue, calls: list[Any]) -> list[dict[str, Any]]:
    return [v.sender.send(c.to, c.data, c.value) for c in calls]


def model(adapter: Any, market: Any, acct: Any) -> Any:
    """The venue's market model of one reading (the oracle taken at the market's price)."""
    head = ChainView(chain_id=31337, block_number=0, block_timestamp=0, wall_clock=0)
    feed = FeedRound(address="0x" + "00" * 20, decimals=18, round_id=1, answer=market.price, started_at=0,
                     updated_at=0)
    return model_for(Snapshot(chain=head, oracle=feed, sequencer=None, market=market, account=acct,
                              exposure=Exposure(spot_balance=0, spot_decimals=18, extra=0), venue=adapter.name))


def close(a: int, b: int, rel: int = 1000) -> bool:
    """Within 1/rel of each other (default 0.1%)."""
    return abs(a - b) <= max(abs(a), abs(b)) // rel + 1


SIZE = 10**6     # a position's size read back: exact on a perp; a borrow's interest accrues by the block


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("two_step", [False, True], ids=["direct", "two-step"])
def test_adapter_contract(request: pytest.FixtureRequest, name: str, two_step: bool) -> None:
    hedge = venue(request, name, two_step)
    adapter = hedge.adapter
    market, acct = read(hedge, adapter)
    by_order = model(adapter, market, acct).collateral_moves == "order"
    min_delay, max_delay = delays(market) if two_step else (0, 0)
    assert market.two_step is two_step and market.collateral_decimals == 6
    assert market.price == 3000 * 10**18 and not market.price_invalid
    assert acct.size == 0 and acct.margin == 0 and acct.orders == ()
    assert acct.collateral_wallet == 50_000 * USDC and acct.collateral_allowance == 0

    # deposit: approval bounded to the amount, then the margin arrives in 18 decimals (a venue
    # whose collateral moves by order sends it with the opening's order: one order for both)
    deposit = Action(ActionKind.DEPOSIT, 10_000 * USDC, risk_reducing=True)
    trade = Action(ActionKind.TRADE, -2 * WETH, price_bound=2900 * 10**18)
    calls = adapter.plan_calls((deposit, trade), acct, market) if by_order else adapter.build_calls((deposit,), acct,
                                                                                                      market)
    assert by_order or ([c.leg for c in calls][-1] == "main" and [c.function for c in calls][-1] in (
        "transferMargin", "depositCollateral", "supply"))
    approve = [c for c in calls if c.function == "approve"]
    assert approve and approve[0].args[1] == 10_000 * USDC
    if not by_order:
        send(hedge, calls)
        market, acct = read(hedge, adapter)
        assert acct.margin == 10_000 * 10**18 and acct.collateral_wallet == 40_000 * USDC
        # trade: direct fills at once; two-step reports a pending order, counted only when filled
        calls = adapter.build_calls((trade,), acct, market)
    receipts = send(hedge, calls)
    market, acct = read(hedge, adapter)
    if two_step:
        assert acct.size == 0 and len(acct.orders) == 1
        (o,) = acct.orders
        assert o.state is OrderState.PENDING and o.kind.changes_size
        assert o.executable_at > o.submitted_at and o.key
        # the order's key is what the submission says it creates (or, on a venue that learns it
        # once mined, what its receipt names)
        created = [c for c in calls if c.creates_order]
        assert [c.order_key or adapter.created_order_key(receipts[calls.index(c)]["transactionHash"].hex())
                for c in created] == [o.key]
        if by_order:        # booked at its acceptable price: what the journal records of the call
            assert o.size_delta == created[0].amount and o.collateral_delta == 10_000 * USDC
            assert acct.collateral_wallet == 40_000 * USDC
        else:
            assert o.size_delta == -2 * WETH
        hedge.advance(min_delay)
        assert hedge.fill_orders()
        market, acct = read(hedge, adapter)
    assert close(acct.size, -2 * WETH, SIZE) and acct.size <= -2 * WETH and acct.orders == ()
    if by_order:
        assert close(acct.margin, 10_000 * 10**18, 100)            # less the fees of the opening
    assert acct.liquidation_price > 3000 * 10**18

    # withdraw
    calls = adapter.build_calls((Action(ActionKind.WITHDRAW, 1_000 * USDC),), acct, market)
    send(hedge, calls)
    if by_order:
        hedge.advance(min_delay)
        assert hedge.fill_orders()
    market, acct2 = read(hedge, adapter)
    assert acct2.collateral_wallet == acct.collateral_wallet + 1_000 * USDC

    # cancel an expired order (two-step only)
    if two_step:
        send(hedge, adapter.build_calls((Action(ActionKind.TRADE, -WETH, price_bound=2900 * 10**18),), acct2,
                                        market))
        hedge.advance(max_delay + 1)
        hedge.set_price(3000)
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


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("two_step", [False, True], ids=["direct", "two-step"])
def test_model_predicts_the_chain_fees_are_the_venues_and_refusals_send_nothing(request: pytest.FixtureRequest,
                                                                               name: str, two_step: bool) -> None:
    hedge = venue(request, name, two_step)
    adapter = hedge.adapter
    market, acct = read(hedge, adapter)
    by_order = model(adapter, market, acct).collateral_moves == "order"
    min_delay, max_delay = delays(market) if two_step else (0, 0)
    deposit = Action(ActionKind.DEPOSIT, 10_000 * USDC, risk_reducing=True)
    if not by_order:        # (a venue whose collateral moves by order sends it with the trade below)
        send(hedge, adapter.build_calls((deposit,), acct, market))
    market, acct = read(hedge, adapter)
    mdl = model(adapter, market, acct)
    collateral = 10_000 * USDC if by_order else 0

    # what the venue would refuse (far past its leverage), the model refuses too; nothing is sent
    too_big = mdl.after(-1000 * WETH, collateral)    # 300x on 10,000 of margin
    assert not mdl.opening_allowed(too_big)
    big = Action(ActionKind.TRADE, -1000 * WETH, price_bound=2000 * 10**18)
    refused = adapter.plan_calls((deposit, big) if by_order else (big,), acct, market)
    nonce = hedge.nonce()
    if not two_step:
        with pytest.raises(SimulationFailed):
            send(hedge, refused)
        assert hedge.nonce() == nonce
    else:
        # a two-step venue takes the order and refuses it at execution: the keeper cannot fill it
        send(hedge, refused)
        hedge.advance(min_delay)
        hedge.set_price(3000)
        if by_order:
            # GMX's keeper cancels it in a successful transaction: the collateral comes back
            hedge.fill_orders()
            market, acct = read(hedge, adapter)
            assert acct.size == 0 and acct.orders == () and acct.collateral_wallet == 50_000 * USDC
        else:
            assert hedge.fill_orders() == [] and read(hedge, adapter)[1].size == 0
            hedge.advance(max_delay)
            hedge.set_price(3000)
            market, acct = read(hedge, adapter)
            send(hedge, adapter.build_calls((Action(ActionKind.CANCEL_ORDER, 0, risk_reducing=True,
                                                    order_key=acct.orders[0].key),), acct, market))
            market, acct = read(hedge, adapter)
            assert acct.orders == ()

    # a trade the model allows: the chain then reports what the model predicted
    market, acct = read(hedge, adapter)
    mdl = model(adapter, market, acct)
    predicted = mdl.after(-2 * WETH, collateral)
    assert mdl.opening_allowed(predicted)
    # bounded 0.1% from the model's fill (a venue that supplies the bound's proceeds leaves what a
    # better fill brings in the wallet: the margin it reports then is the model's within that)
    bound = price_bound(predicted.fill_price, -2 * WETH, 10**15)
    trade = Action(ActionKind.TRADE, -2 * WETH, price_bound=bound)
    calls = adapter.plan_calls((deposit, trade) if by_order else (trade,), acct, market)
    submitted = hedge.w3.eth.block_number + 1
    receipts = send(hedge, calls)
    if two_step:
        (o,) = read(hedge, adapter)[1].orders
        hedge.advance(min_delay)
        hedge.set_price(3000)
        assert hedge.fill_orders()
        fill = adapter.order_fill(hedge.address, o.key, o.size_delta, submitted, hedge.w3.eth.block_number)
        assert fill is not None and fill.tx_hash not in [r["transactionHash"].hex() for r in receipts]
        fee, fill_price = fill.fee, fill.price                      # charged in the keeper's transaction
    else:
        main = [i for i, c in enumerate(calls) if c.leg == "main"][-1]
        fee = adapter.trade_fee(receipts[main], hedge.address)     # charged in ours (the trade's own leg)
        fill_price = predicted.fill_price
    market, acct = read(hedge, adapter)
    assert close(acct.size, predicted.size, SIZE)
    assert close(fill_price, predicted.fill_price) and close(fee, predicted.fee, 100)
    assert close(acct.margin, predicted.margin) and close(acct.liquidation_price, predicted.liquidation_price)
    # and the venue's liquidation distance is the model's, read back from the chain's state
    assert close(model(adapter, market, acct).after(0, 0).liq_distance, predicted.liq_distance, 100)


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
