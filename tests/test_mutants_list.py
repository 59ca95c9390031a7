"""scripts/mutants.py's list applies to the code as it is: a mutant whose text no longer occurs
makes the whole mutation check stop (exit 2) before any mutant runs, so a refactor that moves the
code must move the mutant with it (eleven had gone stale unnoticed before this test)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _mutants():   # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("mutants_script", ROOT / "scripts" / "mutants.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod           # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_every_mutant_applies_to_the_code_as_it_is() -> None:
    mod = _mutants()
    stale = [(m.name, m.file, (ROOT / "hedger" / m.file).read_text().count(m.old), m.count) for m in mod.MUTANTS
             if (ROOT / "hedger" / m.file).read_text().count(m.old) != m.count]
    assert not stale, f"mutants whose text occurs a different number of times than expected: {stale}"
    names = [m.name for m in mod.MUTANTS]
    assert len(names) == len(set(names))
    assert all(m.old != m.new for m in mod.MUTANTS)
    for m in mod.MUTANTS:
        for t in m.tests or tuple(mod.TESTS):
            assert (ROOT / t).is_file(), f"mutant {m.name}: no test file {t}"
