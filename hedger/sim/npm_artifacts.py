"""Compiled contracts shipped in npm packages (Hardhat artifacts), linked and deployed as they are.

Aave v3, Uniswap v3 and Chainlink publish their compiled contracts in npm packages pinned in
``package.json`` and installed into ``node_modules`` by ``make deps``. This module reads such an
artifact (ABI, creation bytecode, library link references), links its libraries and deploys it
through the project's :class:`~hedger.executor.TxSender`: the real bytecode, nothing compiled here.

Two layouts are read:

* Hardhat (``_format: hh-sol-artifact-1``): ``abi``, ``bytecode``, ``linkReferences``, ``sourceName``
  (Aave, Uniswap; under ``artifacts/contracts/`` in the package);
* solc standard JSON output (``compilerOutput.abi``, ``compilerOutput.evm.bytecode``): Chainlink's
  ``abi/v0.6/*.json``.

A library reference in creation code is a 20-byte placeholder ``__$`` + the first 34 hex digits of
``keccak256("<sourcePath>:<LibName>")`` + ``$__``; ``linkReferences`` gives its byte offsets. Both
are checked: an offset whose bytes are not that placeholder, or a placeholder left over after
linking, is an error, not a silently broken contract.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from web3 import Web3

from hedger.chain.abi import PROJECT_ROOT
from hedger.core.errors import ConfigError
from hedger.chain.executor import TxSender

NODE_MODULES = PROJECT_ROOT / "node_modules"

LinkReferences = Mapping[str, Mapping[str, list[dict[str, int]]]]


def library_placeholder(qualified_name: str) -> str:
    """The 40-hex-character placeholder solc (>= 0.5) writes for library ``"source.sol:LibName"``."""
    return "__$" + Web3.keccak(text=qualified_name).hex().removeprefix("0x")[:34] + "$__"


@dataclass(frozen=True, eq=False)
class NpmArtifact:
    """One compiled contract from an npm package. ``bytecode`` is the creation code, unlinked;
    ``deployed_bytecode`` the runtime code as compiled (before immutables and links are set)."""

    package: str
    path: str                      # the artifact file, relative to the package
    contract_name: str
    source_name: str
    abi: list[dict[str, Any]] = field(repr=False)
    bytecode: str = field(repr=False)
    link_references: LinkReferences = field(repr=False)
    deployed_bytecode: str = field(default="0x", repr=False)

    @property
    def libraries(self) -> list[str]:
        """The libraries to link, as ``"source.sol:LibName"``."""
        return [f"{src}:{lib}" for src, libs in self.link_references.items() for lib in libs]

    def linked_bytecode(self, libraries: Mapping[str, str] | None = None) -> str:
        """The creation code with every library placed: see :func:`link_bytecode`."""
        return link_bytecode(self.bytecode, self.link_references, libraries or {},
                             what=f"{self.package} {self.contract_name}")


def link_bytecode(bytecode: str, link_references: LinkReferences, libraries: Mapping[str, str], *,
                  what: str = "bytecode") -> str:
    """Place each library's address in ``bytecode`` at the offsets of ``link_references``.

    ``libraries`` maps ``"LibName"`` or ``"source.sol:LibName"`` to an address (the qualified key
    wins). Raises ValueError naming every library that has no address, an offset that does not
    hold that library's placeholder, or a placeholder still there afterwards."""
    code = bytecode.removeprefix("0x")
    missing: list[str] = []
    for source, libs in link_references.items():
        for lib, refs in libs.items():
            qualified = f"{source}:{lib}"
            address = libraries.get(qualified) or libraries.get(lib)
            if address is None:
                missing.append(qualified)
                continue
            hex_address = Web3.to_checksum_address(address).removeprefix("0x").lower()
            placeholder = library_placeholder(qualified)
            for ref in refs:
                start, length = 2 * int(ref["start"]), 2 * int(ref["length"])
                if length != 40:
                    raise ValueError(f"{what}: link reference of {qualified} is {ref['length']} bytes, not 20")
                found = code[start:start + length]
                if found != placeholder and found != hex_address:
                    raise ValueError(f"{what}: byte {ref['start']} holds {found!r}, not the placeholder of "
                                     f"{qualified} ({placeholder}); the artifact's linkReferences do not "
                                     "match its bytecode")
                code = code[:start] + hex_address + code[start + length:]
    if missing:
        raise ValueError(f"{what}: libraries without an address: {', '.join(missing)}; deploy them first "
                         "and pass their addresses (keyed by library name)")
    leftover = code.find("__$")
    if leftover >= 0:
        raise ValueError(f"{what}: unlinked library placeholder {code[leftover:leftover + 40]} at byte "
                         f"{leftover // 2} that linkReferences does not list")
    return "0x" + code


def _package_dir(package: str) -> Path:
    return NODE_MODULES.joinpath(*package.split("/"))


@lru_cache(maxsize=None)
def load_artifact(package: str, path: str) -> NpmArtifact:
    """The artifact ``path`` of npm ``package``, e.g. ``("@aave/core-v3",
    "protocol/pool/Pool.sol/Pool")``.

    ``path`` is relative to the package, or to its ``artifacts/contracts/`` folder; ``.json`` may
    be left off. Raises ConfigError naming the package and the fix (``make deps``) when the
    package or the file is not there."""
    root = _package_dir(package)
    if not root.is_dir():
        raise ConfigError(package, f"npm package {package} is not installed (no {root})",
                          "run `make deps` (installs the npm packages pinned in package.json)")
    name = path if path.endswith(".json") else f"{path}.json"
    candidates = [root / name, root / "artifacts" / "contracts" / name]
    file = next((c for c in candidates if c.is_file()), None)
    if file is None:
        version = _package_version(root)
        raise ConfigError(package, f"npm package {package}{version} has no artifact {path!r} (looked for "
                          f"{', '.join(str(c.relative_to(root)) for c in candidates)})",
                          "run `make deps` to install the version pinned in package.json, and check the path")
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(package, f"cannot read {file.relative_to(NODE_MODULES)}: {err}",
                          "reinstall it: `rm -rf node_modules && make deps`") from err
    return _parse(package, str(file.relative_to(root)), data)


def _package_version(root: Path) -> str:
    try:
        return "@" + json.loads((root / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return ""


def _parse(package: str, path: str, data: dict[str, Any]) -> NpmArtifact:
    if "bytecode" in data and "abi" in data:                        # Hardhat artifact
        return NpmArtifact(package=package, path=path, contract_name=data.get("contractName", Path(path).stem),
                           source_name=data.get("sourceName", ""), abi=data["abi"],
                           bytecode=_hex(data["bytecode"]), link_references=data.get("linkReferences") or {},
                           deployed_bytecode=_hex(data.get("deployedBytecode", "")))
    out = data.get("compilerOutput")
    if isinstance(out, dict) and "abi" in out:                      # solc standard JSON output
        evm = out.get("evm", {}).get("bytecode", {})
        runtime = out.get("evm", {}).get("deployedBytecode", {}).get("object", "")
        sources = list(data.get("sources", {}) or {})
        return NpmArtifact(package=package, path=path, contract_name=data.get("contractName", Path(path).stem),
                           source_name=sources[0] if len(sources) == 1 else "", abi=out["abi"],
                           bytecode=_hex(evm.get("object", "")), link_references=evm.get("linkReferences") or {},
                           deployed_bytecode=_hex(runtime))
    raise ConfigError(package, f"{path} is neither a Hardhat artifact nor solc output (keys: "
                      f"{', '.join(sorted(data)[:8])})", "point at a contract's artifact JSON")


def _hex(code: str) -> str:
    return code if code.startswith("0x") else "0x" + code


class ArtifactDeployer:
    """Deploys artifacts and sends set-up calls from one account, counting transactions and gas.

    Every transaction goes through :meth:`TxSender.send` (simulated first, so a revert raises
    the project's SimulationFailed with its reason before anything is sent)."""

    def __init__(self, sender: TxSender) -> None:
        self.sender = sender
        self.w3: Web3 = sender.w3
        self.transactions = 0
        self.gas_used = 0

    @property
    def address(self) -> str:
        return self.sender.signer.address

    def _send(self, to: str | None, data: str, value: int = 0) -> dict[str, Any]:
        receipt = self.sender.send(to, data, value)
        self.transactions += 1
        self.gas_used += int(receipt["gasUsed"])
        return receipt

    def deploy(self, artifact: NpmArtifact, *args: Any, libraries: Mapping[str, str] | None = None) -> str:
        """Deploy ``artifact`` with constructor ``args``; returns its (checksummed) address."""
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.linked_bytecode(libraries))
        receipt = self._send(None, factory.constructor(*args).data_in_transaction)
        address = receipt.get("contractAddress")
        if not address:
            raise ValueError(f"deploying {artifact.package} {artifact.contract_name}: no contract address in "
                             "the receipt")
        return Web3.to_checksum_address(address)

    def contract(self, artifact: NpmArtifact, address: str) -> Any:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact.abi)

    def call(self, artifact: NpmArtifact, address: str, fn: str, *args: Any, value: int = 0) -> dict[str, Any]:
        """Send ``fn(*args)`` to ``address`` (overloads resolved by the arguments); the receipt."""
        c = self.contract(artifact, address)
        data = getattr(c.functions, fn)(*args)._encode_transaction_data()
        return self._send(c.address, data, value)


def create_address(sender: str, nonce: int) -> str:
    """The address a contract created by ``sender`` at ``nonce`` gets (CREATE: keccak of rlp([sender, nonce]))."""
    body = bytes.fromhex(Web3.to_checksum_address(sender)[2:])
    item_sender = bytes([0x80 + 20]) + body
    if nonce == 0:
        item_nonce = b"\x80"
    elif nonce < 0x80:
        item_nonce = bytes([nonce])
    else:
        raw = nonce.to_bytes((nonce.bit_length() + 7) // 8, "big")
        item_nonce = bytes([0x80 + len(raw)]) + raw
    payload = item_sender + item_nonce
    return Web3.to_checksum_address(Web3.keccak(bytes([0xC0 + len(payload)]) + payload)[12:])
