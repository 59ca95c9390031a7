"""Shared fixtures: one anvil per test session, the reference protocol deployed once,
and an EVM snapshot reverted after every test (deploy once, revert after each)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
from hypothesis import settings as hypothesis_settings
from web3 import Web3

from hedger.chain.abi import contract_artifact
from hedger.sim.deploy import Deployment, deploy_reference, transact
from hedger.chain.executor import KeySigner, TxSender
from hedger.core.secrets import Secret
from hedger.sim.localchain import Anvil, dev_account, start_anvil

# CI runs the property tests on a fixed set of examples (reproducible from run to run);
# a developer's run explores new ones each time.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

# Journals and locks default to the per-user state folder: a test run writes none into the
# user's own (~/.local/state/hedger), and one run's journals never meet the next run's. The
# CLI tests' child processes inherit it.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="hedger-test-state-")

USDC = 10**6
WETH = 10**18
PRICE_DECIMALS = 8


@dataclass
class Chain:
    """Test helpers around the local chain: time, prices, funding accounts."""

    anvil: Anvil
    w3: Web3
    deployer: TxSender
    d: Deployment

    def contract(self, name: str, address: str) -> Any:
        return self.w3.eth.contract(address=address, abi=contract_artifact(name)["abi"])

    @property
    def market(self) -> Any:
        return self.contract("PerpMarket", self.d.market)

    @property
    def feed(self) -> Any:
        return self.contract("PriceFeed", self.d.oracle)

    @property
    def sequencer(self) -> Any:
        return self.contract("PriceFeed", self.d.sequencer_feed)

    @property
    def usdc(self) -> Any:
        return self.contract("ReferenceToken", self.d.collateral)

    @property
    def weth(self) -> Any:
        return self.contract("ReferenceToken", self.d.spot)

    def sender(self, index: int) -> TxSender:
        return TxSender(self.w3, KeySigner(Secret(dev_account(index).key.hex())))

    def admin(self, name: str, address: str, fn: str, *args: Any) -> dict[str, Any]:
        return transact(self.deployer, name, address, fn, *args)

    def set_price(self, usd: float | int) -> None:
        """Publish a new round at the current block time (price in whole or fractional USD)."""
        self.admin("PriceFeed", self.d.oracle, "setAnswer", int(round(usd * 10**PRICE_DECIMALS)))

    def mint_usdc(self, to: str, amount: int) -> None:
        self.admin("ReferenceToken", self.d.collateral, "mint", to, amount)

    def mint_weth(self, to: str, amount: int) -> None:
        self.admin("ReferenceToken", self.d.spot, "mint", to, amount)

    def advance(self, seconds: int) -> None:
        self.w3.provider.make_request("evm_increaseTime", [seconds])
        self.w3.provider.make_request("evm_mine", [])

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def call_as(self, index: int, name: str, address: str, fn: str, *args: Any) -> dict[str, Any]:
        return transact(self.sender(index), name, address, fn, *args)

    def deposit(self, index: int, amount: int) -> None:
        """Mint, approve and deposit ``amount`` USDC units as dev account ``index``."""
        addr = dev_account(index).address
        self.mint_usdc(addr, amount)
        self.call_as(index, "ReferenceToken", self.d.collateral, "approve", self.d.market, amount)
        self.call_as(index, "PerpMarket", self.d.market, "transferMargin", amount)

    def trade(self, index: int, size_delta: int, bound: int | None = None) -> dict[str, Any]:
        if bound is None:
            bound = 2**255 if size_delta > 0 else 0
        bound = min(bound, 2**256 - 1)
        return self.call_as(index, "PerpMarket", self.d.market, "modifyPosition", size_delta, bound)


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    node = start_anvil()
    yield node
    node.stop()


def web3_at(node: Anvil) -> Web3:
    return Web3(Web3.HTTPProvider(node.url, request_kwargs={"timeout": 30}))


@pytest.fixture(scope="session")
def w3(anvil: Anvil) -> Web3:
    return web3_at(anvil)


@pytest.fixture(scope="module")
def module_anvil() -> Iterator[Anvil]:
    """An anvil of the test module's own, for modules that deploy other protocols than the
    session's (a module overrides ``w3`` with ``web3_at(module_anvil)``)."""
    node = start_anvil()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def deployment(w3: Web3) -> Deployment:
    deployer = TxSender(w3, KeySigner(Secret(dev_account(0).key.hex())))
    return deploy_reference(deployer)


@pytest.fixture()
def chain(anvil: Anvil, w3: Web3, deployment: Deployment) -> Iterator[Chain]:
    """The deployed protocol, reverted to its pristine state after the test."""
    snap = w3.provider.make_request("evm_snapshot", [])["result"]
    deployer = TxSender(w3, KeySigner(Secret(dev_account(0).key.hex())))
    c = Chain(anvil=anvil, w3=w3, deployer=deployer, d=deployment)
    # a fresh round so the feed is not stale whatever time earlier tests moved
    c.set_price(3000)
    try:
        yield c
    finally:
        w3.provider.make_request("evm_revert", [snap])
        # a test may have pushed the base fee up; the override outlives the revert
        w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(10**9)])
        w3.provider.make_request("evm_setAutomine", [True])


HEDGER = 1      # dev account index of the hedged account
PROTOCOL_KEEPER = 2


@dataclass
class Hedge:
    """A hedged account (dev account 1) holding spot WETH and USDC, and the settings to hedge it."""

    chain: Chain
    env: dict[str, str]

    @property
    def address(self) -> str:
        return dev_account(HEDGER).address

    def keeper(self, **overrides: str) -> Any:
        from hedger.config import Settings
        from hedger.cycle.keeper import Keeper
        return Keeper.from_settings(Settings.from_env({**self.env, **overrides}))

    def cycle(self, **overrides: str) -> Any:
        return self.keeper(**overrides).cycle()

    def position(self) -> tuple[int, int]:
        """(size E18, remaining margin E18)."""
        m = self.chain.market.functions
        return m.positions(self.address).call()[1], m.remainingMargin(self.address).call()[0]

    def leverage(self) -> float:
        size, margin = self.position()
        price = self.chain.market.functions.assetPrice().call()[0]
        return abs(size) * price / 10**18 / margin

    def nonce(self) -> int:
        return self.chain.w3.eth.get_transaction_count(self.address)

    def fill_orders(self) -> list[str]:
        from hedger.cycle.keeper import fill_due_orders
        from hedger.protocols.reference.adapter import ReferenceMarket
        adapter = ReferenceMarket(self.chain.w3, self.chain.d.market, self.chain.d.collateral, two_step=True)
        return fill_due_orders(self.chain.w3, adapter, self.chain.sender(PROTOCOL_KEEPER), [self.address])


@pytest.fixture()
def hedge(chain: Chain, tmp_path: Any) -> Hedge:
    acct = dev_account(HEDGER)
    chain.mint_weth(acct.address, 10 * WETH)
    chain.mint_usdc(acct.address, 50_000 * USDC)
    env = {
        "HEDGER_RPC_URL": chain.anvil.url,
        "HEDGER_PRIVATE_KEY": acct.key.hex(),
        "HEDGER_MARKET": chain.d.market,
        "HEDGER_ORACLE": chain.d.oracle,
        "HEDGER_SPOT_TOKEN": chain.d.spot,
        "HEDGER_COLLATERAL_TOKEN": chain.d.collateral,
        "HEDGER_SEQUENCER_FEED": chain.d.sequencer_feed,
        "HEDGER_SEQUENCER_GRACE": "0",
        "HEDGER_JOURNAL_PATH": str(tmp_path / "journal.sqlite"),
        "HEDGER_CHAIN_ID": "31337",
    }
    return Hedge(chain=chain, env=env)
