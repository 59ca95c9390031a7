"""One hedge cycle: read -> decide -> plan -> execute -> journal, with its guards.

This is the code that production (`hedger run-once`, `ape run hedge`), the
demo and the simulator all run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from web3 import Web3

from hedger import planner, policy
from hedger.abi import ERC20
from hedger.config import Settings, redact_urls
from hedger.errors import (ChainGuardError, ConfigError, ExecutionError, HedgerError, PartialExecution, RpcError,
                           SimulationFailed)
from hedger.executor import Executor, Signer, TxSender
from hedger.journal import Journal
from hedger.oracle import feed_specs, parse_feed
from hedger.protocols import PerpAdapter, get_adapter
from hedger.reader import CallFailed, CallSpec, ChainReader
from hedger.types import Call, CycleResult, DecisionKind, Exposure, PolicyParams, RefusalKind, Snapshot

log = logging.getLogger("hedger.keeper")

REFUSAL_EXIT = {RefusalKind.ORACLE: 3, RefusalKind.SEQUENCER: 4, RefusalKind.CHAIN: 5, RefusalKind.ACCOUNT: 9}


def make_web3(rpc_url: str, timeout: float = 30.0) -> Web3:
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))


@dataclass
class Keeper:
    settings: Settings
    w3: Web3
    signer: Signer | None
    adapter: PerpAdapter
    reader: ChainReader
    journal: Journal | None
    account: str

    @classmethod
    def from_settings(cls, settings: Settings, *, w3: Web3 | None = None, signer: Signer | None = None,
                      journal: Journal | None = None, use_journal: bool = True) -> "Keeper":
        w3 = w3 or make_web3(settings.rpc_url)
        signer = signer if signer is not None else settings.build_signer()
        account = settings.account
        if signer is not None:
            if account is not None and Web3.to_checksum_address(account) != signer.address:
                raise ConfigError("HEDGER_ACCOUNT", f"{account} is not the signer's address {signer.address}",
                                  "unset HEDGER_ACCOUNT or set it to the signer's address")
            account = signer.address
        if account is None:
            raise ConfigError("HEDGER_ACCOUNT", "no account to hedge", "set HEDGER_ACCOUNT or a signer")
        adapter = get_adapter(settings.protocol)(w3, settings.market, settings.collateral_token,
                                                 two_step=settings.order_mode == "delayed")
        if journal is None and use_journal:
            journal = Journal(settings.journal_path)
        return cls(settings=settings, w3=w3, signer=signer, adapter=adapter, reader=ChainReader(w3),
                   journal=journal, account=Web3.to_checksum_address(account))

    # ------------------------------------------------------------------ read
    def _specs(self) -> list[CallSpec]:
        s = self.settings
        specs = feed_specs("oracle", s.oracle)
        if s.sequencer_feed:
            specs += feed_specs("sequencer", s.sequencer_feed)
        specs += [CallSpec("spot.balance", s.spot_token, ERC20, "balanceOf", (self.account,)),
                  CallSpec("spot.decimals", s.spot_token, ERC20, "decimals")]
        return specs + self.adapter.read_specs(self.account)

    def read(self) -> Snapshot:
        """Two round trips: the chain head, then every view call pinned to that block."""
        try:
            head = self.reader.head()
        except RpcError as err:
            raise RpcError(f"cannot read the chain at {self.settings.rpc_display}: {err}") from err
        if self.settings.chain_id is not None and head.chain_id != self.settings.chain_id:
            raise ChainGuardError(f"the RPC at {self.settings.rpc_display} reports chain id {head.chain_id}, "
                                  f"HEDGER_CHAIN_ID is {self.settings.chain_id}: refusing to act on the wrong chain")
        try:
            r = self.reader.call_many(self._specs(), head.block_number)
        except CallFailed as err:
            raise ChainGuardError(f"{err}: check that the address is right and has the expected interface "
                                  f"(run `hedger status` to see all readings)", address=err.spec.address) from err
        s = self.settings
        oracle = parse_feed("oracle", s.oracle, r)
        seq = parse_feed("sequencer", s.sequencer_feed, r) if s.sequencer_feed else None
        market, account = self.adapter.parse(r, self.account, head)
        exposure = Exposure(spot_balance=int(r["spot.balance"]), spot_decimals=int(r["spot.decimals"]),
                            extra=s.extra_exposure)
        last = None
        if self.journal is not None:
            last = self.journal.last_action_at(head.chain_id, head.genesis_hash, self.account, market.address)
        return Snapshot(chain=head, oracle=oracle, sequencer=seq, market=market, account=account,
                        exposure=exposure, last_rebalance_at=last)

    def params(self, snapshot: Snapshot) -> PolicyParams:
        return self.settings.policy_for_chain(snapshot.chain.chain_id)

    # ----------------------------------------------------------------- cycle
    def cycle(self, dry_run: bool = False) -> CycleResult:
        """One cycle. Never raises for a refusal or a failed send: the result carries the exit code.
        Raises ConfigError / RpcError / ChainGuardError when the readings themselves cannot be had."""
        snapshot = self.read()
        params = self.params(snapshot)
        decision = policy.decide(snapshot, params)
        plan = planner.plan(decision, params, snapshot.account.size)
        calls = self.adapter.build_calls(plan.actions, snapshot.account, snapshot.market)
        dry = dry_run or self.signer is None
        res = CycleResult(snapshot=snapshot, decision=decision, plan=plan, calls=calls, dry_run=dry)
        cid = self.journal.open_cycle(snapshot, decision, plan, calls, dry) if self.journal else None
        res.cycle_id = cid
        log.info("decision %s (%s): %s", decision.kind.value, decision.code, decision.reason)
        if decision.kind is DecisionKind.REFUSE:
            res.outcome, res.exit_code, res.error = "refused", REFUSAL_EXIT[decision.refusal], decision.reason
        elif not calls:
            res.outcome = "held"
        elif dry:
            res.outcome = "dry_run"
        else:
            self._execute(res, calls, cid)
        if self.journal is not None and cid is not None:
            self.journal.close_cycle(cid, res.outcome, res.exit_code, res.error)
        return res

    def _execute(self, res: CycleResult, calls: list[Call], cid: int | None) -> None:
        assert self.signer is not None
        sender = TxSender(self.w3, self.signer, receipt_timeout=self.settings.receipt_timeout)
        ex = Executor(sender)
        j = self.journal
        try:
            ex.execute(
                calls, sent=res.sent,
                on_signed=(lambda c, h, n: j.record_signed(cid, c, h, n)) if j and cid else None,
                on_mined=j.record_mined if j else None)
            res.outcome = "acted"
        except SimulationFailed as err:
            res.outcome, res.exit_code, res.error = "failed", err.exit_code, redact_urls(str(err))
        except PartialExecution as err:
            res.outcome, res.exit_code, res.error = "partial", err.exit_code, redact_urls(str(err))
        except ExecutionError as err:
            res.outcome, res.exit_code, res.error = "failed", err.exit_code, redact_urls(str(err))
        except HedgerError as err:
            res.outcome, res.exit_code, res.error = "failed", err.exit_code, redact_urls(str(err))


def fill_due_orders(w3: Web3, adapter: PerpAdapter, keeper_sender: TxSender, accounts: list[str]) -> list[str]:
    """The protocol keeper's job (not the hedger's): fill every due two-step order of ``accounts``.
    Returns the tx hashes; orders not yet due, or whose fill price is breached, stay pending."""
    hashes = []
    for acct in accounts:
        call = adapter.fill_order_call(acct)
        if call is None:
            continue
        try:
            receipt = keeper_sender.send(call.to, call.data)
        except SimulationFailed:
            continue
        hashes.append(Web3.to_hex(receipt["transactionHash"]))
    return hashes
