"""`.env.example` against the README's table of variables, and against what the hedger reads."""

from __future__ import annotations

import pytest

import re

from hedger.chain.abi import PROJECT_ROOT
from hedger.config import known_variables

NAME = re.compile(r"HEDGER_[A-Z0-9_]*[A-Z0-9]")


def readme_table_names() -> set[str]:
    """The names in the first column of the README's table of variables."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    start = readme.index("| variable | meaning | default |")
    rows = readme[start:readme.index("\n\n", start)].splitlines()[2:]
    return {n for row in rows for n in NAME.findall(row.split("|")[1])}


def env_example_names() -> set[str]:
    return set(NAME.findall((PROJECT_ROOT / ".env.example").read_text()))


def test_env_example_lists_every_variable_of_the_readme_table() -> None:
    table = readme_table_names()
    assert len(table) > 30                                        # the table was found and read
    assert sorted(table - env_example_names()) == []


def test_env_example_names_only_variables_the_hedger_reads() -> None:
    assert sorted(env_example_names() - known_variables()) == []
    assert sorted(readme_table_names() - known_variables()) == []


def test_gitignore_keeps_journals_and_locks_out() -> None:
    lines = (PROJECT_ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in lines and "*.sqlite" in lines and ".hedger-*.lock" in lines


@pytest.mark.parametrize("protocol", ["reference", "gmx-v2"])
def test_env_example_as_copied_loads_on_each_venue(protocol: str) -> None:
    """`cp .env.example .env`, addresses filled in, HEDGER_PROTOCOL set: the example's own uncommented
    settings must load on every venue. It pinned HEDGER_ORDER_MODE=direct, which gmx-v2 (two-step only)
    refuses: `HEDGER_ORDER_MODE: direct is not a mode of gmx-v2`."""
    from hedger.config import Settings
    env = {}
    for line in (PROJECT_ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            k, v = line.split("#", 1)[0].strip().split("=", 1)
            env[k] = v.strip()
    addresses = iter(f"0x{i:040x}" for i in range(1, 100))
    env = {k: (next(addresses) if v == "0x..." else v) for k, v in env.items()}
    env.update({"HEDGER_PROTOCOL": protocol, "HEDGER_ACCOUNT": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                "HEDGER_JOURNAL_PATH": "/tmp/unused.sqlite", "HEDGER_CHAIN_ID": "31337"})
    s = Settings.from_env(env, dotenv=False)
    assert s.protocol == protocol
    assert s.order_mode == ("delayed" if protocol == "gmx-v2" else "direct")   # each venue's own default
