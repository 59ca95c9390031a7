"""`make demo`: each story (reference direct and delayed, the GMX v2 stand-in, the real Aave v3 and
Uniswap v3) runs in-process and does what it says at each step: the decisions the story names, no
failed cycle, exit 0, and its anvil stopped at the end."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any, Iterator

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "demo.py"


@pytest.fixture()
def demo(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """scripts/demo.py as a module; every anvil it starts is checked stopped after the test."""
    spec = importlib.util.spec_from_file_location("hedger_demo_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    started: list[Any] = []
    real = mod.start_anvil

    def start_anvil(*a: Any, **kw: Any) -> Any:
        node = real(*a, **kw)
        started.append(node)
        return node
    monkeypatch.setattr(mod, "start_anvil", start_anvil)
    yield mod
    left = [node for node in started if node.process.poll() is None]
    for node in left:                       # stopped here whatever happens, then reported
        node.stop()
    assert not left, "the demo left its anvil running"
    assert len(started) == 1, f"the demo started {len(started)} anvil(s), not one"


def steps(out: str) -> dict[int, str]:
    """The story's printed steps, by number (the text from `step N:` to the next step or the end)."""
    parts = re.split(r"^step (\d+): ", out, flags=re.M)
    return {int(n): text for n, text in zip(parts[1::2], parts[2::2])}


def codes(text: str) -> list[str]:
    """The decision codes a step printed (`did:  kind [code] reason`), in order."""
    return re.findall(r"did:  \w+ \[(\w+)\]", text)


def field(line: str, name: str) -> float:
    """A number of a `saw:`/`now:` line, e.g. field(line, "delta") or field(line, "HF")."""
    m = re.search(rf"\b{name}\s+([+-]?[\d,]+\.\d+)", line)
    assert m, (name, line)
    return float(m.group(1).replace(",", ""))


def lines(text: str, tag: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip().startswith(f"{tag}:")]


def no_failures(out: str) -> None:
    assert not re.search(r"^\s+outcome ", out, flags=re.M), out
    assert "Traceback" not in out and "demo: exit" not in out, out


def hedged(text: str, tol: float = 0.01) -> None:
    """Each `now:` line of the step: the hedge matches the holding."""
    now = lines(text, "now")
    assert now, text
    for ln in now:
        assert abs(field(ln, "delta")) <= tol, ln


REFERENCE = {1: ["rebalance"], 2: ["within_band"], 3: ["rebalance"], 4: ["top_up"], 5: ["within_band"],
             6: ["withdraw_excess"], 7: ["rebalance"], 8: ["within_band"]}


def test_reference_direct(demo: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    no_failures(out)
    s = steps(out)
    assert {n: codes(t) for n, t in s.items()} == REFERENCE
    for n in s:
        hedged(s[n])
    assert "tx market.transferMargin" in s[4] and "tx market.modifyPosition" in s[1]
    assert "transferMargin(-" in s[6]                   # the fall: margin comes back out
    assert re.search(r"journal .*: 8 cycles, 5 acted, 3 held", out), out


def test_reference_delayed(demo: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--mode", "delayed"]) == 0
    out = capsys.readouterr().out
    no_failures(out)
    s = steps(out)
    # the crash's reduction is an order (no withdrawal beside it); the excess goes in the calm after
    assert {n: codes(t) for n, t in s.items()} == {**REFERENCE, 8: ["withdraw_excess"]}
    for n in (1, 3, 7):
        assert "protocol keeper filled 1 order(s)" in s[n], s[n]
        hedged(s[n])
    assert re.search(r"journal .*: 8 cycles, 6 acted, 2 held", out), out


def test_gmx_v2(demo: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--protocol", "gmx-v2"]) == 0
    out = capsys.readouterr().out
    no_failures(out)
    s = steps(out)
    assert {n: codes(t) for n, t in s.items()} == {1: ["rebalance"], 2: ["rebalance"],
                                                   3: ["rebalance", "top_up_pending"],
                                                   4: ["rebalance", "rebalance"], 5: []}
    hedged(s[1])
    hedged(s[2])
    assert "GMX's keeper acted on 2 order(s)" in s[3]
    assert "cancelled, acceptable price missed" in s[4] and "is gone unfilled" in s[4]
    hedged(s[4])
    assert "unwind: unwound" in s[5] and "(exit 0)" in s[5]
    assert field(lines(s[5], "now")[-1], "perp") == 0


def test_aave_v3(demo: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    assert demo.main(["--protocol", "aave-v3"]) == 0
    out = capsys.readouterr().out
    no_failures(out)
    s = steps(out)
    assert {n: codes(t) for n, t in s.items()} == {1: ["rebalance"], 2: ["within_band"], 3: ["rebalance"],
                                                   4: ["top_up"], 5: ["withdraw_excess"],
                                                   6: ["rebalance", "withdraw_excess"]}
    for n in range(1, 6):
        hedged(s[n])
    # the open: borrow the asset, sell it on Uniswap, supply the proceeds (each tx with its gas)
    sent = re.findall(r"tx (\w+\.\w+)  gas [\d,]+", s[1])
    assert [t for t in sent if t != "collateral.approve" and t != "asset.approve"] == [
        "pool.supply", "pool.borrow", "router.exactInputSingle", "pool.supply"], sent
    assert "pool.borrow" in s[3] and "router.exactInputSingle" in s[3]          # the hedge follows
    hf = {n: (field(lines(s[n], "saw")[0], "HF"), field(lines(s[n], "now")[0], "HF")) for n in (2, 4, 5)}
    assert 1.35 <= hf[2][0] <= 2.0                                               # in the band: held
    assert hf[4][0] < 1.35 and hf[4][1] == pytest.approx(1.6, abs=0.02)          # the rally: topped up
    assert "pool.supply" in s[4]
    assert hf[5][0] > 2.0 and hf[5][1] == pytest.approx(1.6, abs=0.02)           # the drop: withdrawn
    assert "pool.withdraw" in s[5]
    # the unwind: buy back, repay all, withdraw all; flat, no debt, paused as unwound
    assert all(t in s[6] for t in ("router.exactOutputSingle", "pool.repay", "pool.withdraw")), s[6]
    assert "unwind: unwound" in s[6] and "(exit 0)" in s[6]
    final = lines(s[6], "now")[-1]
    assert field(final, "perp") == 0 and field(final, "margin") == 0 and "HF -" in final
    assert re.search(r"paused\s+YES .*unwound", out), out


def test_keep_leaves_the_chain_and_prints_what_hedger_needs(capsys: pytest.CaptureFixture[str]) -> None:
    """`--keep`: anvil stays up, and the last line is every address of the deployment (the user goes on
    with `hedger status` against it); no key is printed (the holder's is anvil's development key)."""
    import json

    from web3 import Web3
    spec = importlib.util.spec_from_file_location("hedger_demo_script_keep", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    kept: list[Any] = []
    real = mod.start_anvil
    mod.start_anvil = lambda *a, **kw: kept.append(real(*a, **kw)) or kept[-1]
    try:
        assert mod.main(["--keep"]) == 0
        out = capsys.readouterr().out
        d = json.loads(out.strip().splitlines()[-1])
        assert kept and kept[0].process.poll() is None and f"anvil left running at {kept[0].url}" in out
        w3 = Web3(Web3.HTTPProvider(kept[0].url))
        for name in ("market", "oracle", "collateral", "spot", "sequencer_feed"):
            assert w3.eth.get_code(d[name]) != b"", name
        from hedger.sim.localchain import dev_account
        assert dev_account(1).address in out and dev_account(1).key.hex()[2:] not in out
    finally:
        for node in kept:
            node.stop()
