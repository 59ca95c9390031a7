"""Runs kept as they finish: a sweep interrupted at 80% keeps its 80%, and ``--resume`` skips them.

Every finished run is appended, as one JSON line, to ``<json>.runs.jsonl`` beside the report
(``hedger simulate --json PATH``), flushed and synced before the next run is counted. A line
holds the whole :class:`~hedger.sim.simulate.RunResult` (every step's record) and the run's
key: a hash of its scenario, seed, step cut, policy (name, parameters, interval), the options
and chain settings every run shares, and the code's version. ``--resume PATH`` reads those
lines back and runs only the jobs whose key is not there; a run of other code or other
settings has another key and runs again. A torn last line (the process killed mid-write) is
ignored: that run simply runs again.

Floats survive the JSON round trip exactly (``repr`` is shortest-exact), integers are
integers: a resumed report is the report the uninterrupted sweep would have written.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

from hedger.chain.abi import PROJECT_ROOT
from hedger.sim.simulate import Job, RunResult, SimOptions, StepRecord

SUFFIX = ".runs.jsonl"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the code a run executes: the package's Python sources and the contracts."""
    h = hashlib.sha256()
    files = sorted((PROJECT_ROOT / "hedger").rglob("*.py")) + sorted((PROJECT_ROOT / "contracts").glob("*.vy"))
    for f in files:
        h.update(str(f.relative_to(PROJECT_ROOT)).encode())
        h.update(b"\0")
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return None         # where journals go (a temp folder) does not change a run
    return value


def shared_settings(options: SimOptions, chain_kw: dict[str, Any]) -> dict[str, Any]:
    """What every run of a sweep shares and a run's result depends on, in plain JSON.
    The fork URL is not in it (it may carry an API key; the pinned block says which state)."""
    kw = {k: v for k, v in chain_kw.items() if k != "fork_url"}
    kw["forked"] = chain_kw.get("fork_url") is not None
    return {"options": _plain(options), "chain": _plain(kw)}


def run_key(job: Job, shared: dict[str, Any], version: str | None = None) -> str:
    """The hash that matches a run to a stored one: scenario, seed, steps, policy and its
    parameters, the shared settings and the code's version."""
    doc = {"scenario": job.scenario, "seed": job.seed, "steps": job.steps, "policy": _plain(job.policy),
           "shared": shared, "code": version or code_version()}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:24]


def result_to_dict(r: RunResult) -> dict[str, Any]:
    return dataclasses.asdict(r)


def result_from_dict(d: dict[str, Any]) -> RunResult:
    names = {f.name for f in dataclasses.fields(RunResult)}
    fields = {k: v for k, v in d.items() if k in names}
    fields["steps"] = [StepRecord(**s) for s in d["steps"]]
    return RunResult(**fields)


def stream_path(json_path: Path) -> Path:
    """Where the runs of the report ``json_path`` stream (``PATH.runs.jsonl``; given that file
    itself, that file)."""
    p = Path(json_path)
    return p if p.name.endswith(SUFFIX) else p.with_name(p.name + SUFFIX)


def load(path: Path) -> dict[str, RunResult]:
    """The runs stored for the report ``path`` (or in the ``.runs.jsonl`` file given), by key.
    Missing file: none. A line that does not parse (a torn last write) is skipped."""
    p = stream_path(path)
    out: dict[str, RunResult] = {}
    if not p.exists():
        return out
    for line in p.read_text().splitlines():
        try:
            row = json.loads(line)
            out[row["key"]] = result_from_dict(row["run"])
        except (ValueError, KeyError, TypeError):
            continue
    return out


class RunStream:
    """Appends each finished run to ``PATH.runs.jsonl`` at once (flushed and synced)."""

    def __init__(self, json_path: Path, keep: Iterable[tuple[str, RunResult]] = ()) -> None:
        self.path = stream_path(json_path)
        existing = load(self.path)
        torn = self.path.exists() and self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n")
        self._fh = open(self.path, "a", encoding="utf-8")
        if torn:                     # a line cut short by a kill: end it, so the next one parses
            self._fh.write("\n")
        for key, r in keep:          # runs resumed from another file: carried over
            if key not in existing:
                self.append(key, r)

    def append(self, key: str, r: RunResult) -> None:
        self._fh.write(json.dumps({"key": key, "run": result_to_dict(r)}) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "RunStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
