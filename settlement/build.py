"""Compiles the escrow contracts offline with npm ``solc`` (standard JSON) and writes the
committed artifacts (``settlement/artifacts/``).

``python -m settlement.build`` rewrites the artifacts; ``--check`` exits 1 when a recompile
differs from what is committed (the reproducible-build test runs the same comparison). The
compiler is ``tools/solc-shim.cjs``, a ``solc`` command line over solcjs that forge uses too.
Only a checkout builds: the installed package carries the artifacts, not the sources' tools.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "settlement" / "contracts"
ARTIFACTS = ROOT / "settlement" / "artifacts"
TOOLS = ROOT / "tools"
SHIM = TOOLS / "solc-shim.cjs"

# Pinned with the compiler (tools/package.json): changing any of these changes the bytecode.
SETTINGS: dict[str, Any] = {
    "evmVersion": "cancun",
    "optimizer": {"enabled": True, "runs": 200},
    "metadata": {"bytecodeHash": "ipfs"},
    "outputSelection": {
        "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]},
    },
}


class BuildError(RuntimeError):
    """The compiler is missing or reported errors."""


def sources() -> dict[str, dict[str, str]]:
    """Every contract under ``settlement/contracts`` by its unit name relative to the root."""
    files = sorted(SOURCES.rglob("*.sol"))
    return {f.relative_to(ROOT).as_posix(): {"content": f.read_text()} for f in files}


def compile_all(node: str = "node") -> dict[str, dict[str, Any]]:
    """Compiles and returns the artifacts by relative path (``CourseEscrow.json``,
    ``test/ReentrantPayee.json``)."""
    if not (TOOLS / "node_modules" / "solc").is_dir():
        raise BuildError("npm solc is not installed: run `make setup`")
    request = {"language": "Solidity", "sources": sources(), "settings": SETTINGS}
    proc = subprocess.run(
        [node, str(SHIM), "--standard-json", "--base-path", str(ROOT),
         "--include-path", str(TOOLS / "node_modules")],
        input=json.dumps(request), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise BuildError(f"solc failed: {proc.stderr.strip()}")
    output = json.loads(proc.stdout)
    errors = [e for e in output.get("errors", []) if e["severity"] == "error"]
    if errors:
        raise BuildError("\n".join(e["formattedMessage"] for e in errors))
    version = (
        subprocess.run([node, str(SHIM), "--version"], capture_output=True, text=True, check=True)
        .stdout.split("Version: ")[-1]
        .strip()
    )
    settings = {k: v for k, v in SETTINGS.items() if k != "outputSelection"}
    artifacts: dict[str, dict[str, Any]] = {}
    prefix = SOURCES.relative_to(ROOT).as_posix() + "/"
    for unit, contracts in output["contracts"].items():
        if not unit.startswith(prefix):
            continue  # libraries compiled in (OpenZeppelin) are not artifacts of ours
        for name, out in contracts.items():
            bytecode = out["evm"]["bytecode"]["object"]
            if not bytecode or not out["abi"]:
                continue  # interfaces, and libraries of internal functions only
            rel = Path(unit[len(prefix) :]).parent / f"{name}.json"
            artifacts[rel.as_posix()] = {
                "contractName": name,
                "sourceName": unit,
                "compiler": {"version": version, "settings": settings},
                "abi": out["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + out["evm"]["deployedBytecode"]["object"],
            }
    return artifacts


def render(artifact: dict[str, Any]) -> str:
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def differences(built: dict[str, dict[str, Any]]) -> list[str]:
    """What differs between a fresh build and the committed artifacts, file by file."""
    out = []
    committed = {p.relative_to(ARTIFACTS).as_posix() for p in ARTIFACTS.rglob("*.json")}
    for rel in sorted(committed | set(built)):
        path = ARTIFACTS / rel
        if rel not in built:
            out.append(f"{rel}: committed but no longer built")
        elif not path.exists():
            out.append(f"{rel}: built but not committed")
        elif path.read_text() != render(built[rel]):
            out.append(f"{rel}: differs from a fresh build")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    built = compile_all()
    diff = differences(built)
    if args.check:
        print("\n".join(diff) or "artifacts match a fresh build")
        return 1 if diff else 0
    for rel, artifact in built.items():
        path = ARTIFACTS / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(artifact))
    for stale in diff:
        if stale.endswith("no longer built"):
            (ARTIFACTS / stale.split(":")[0]).unlink()
    print(f"wrote {len(built)} artifacts to {ARTIFACTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
