"""The installed package: public names, the idstitch namespace, py.typed, the console script."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import json
import pkgutil
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import idstitch
import idstitch.events
import pytest

REPO = Path(__file__).resolve().parents[1]

EXPECTED_PUBLIC_NAMES: dict[str, set[str]] = {
    "idstitch.events": {
        # kinds and constants
        "FORMAT_VERSION",
        "KINDS",
        "KIND_FIELDS",
        "KIND_VERSION",
        "MAX_ID_LENGTH",
        "RUNTIMES",
        "START",
        "UPCASTERS",
        "ZERO_HASH",
        "line_keys",
        # errors
        "IdentityError",
        "IllegalUserIdError",
        "LogDamagedError",
        "NewerFormatError",
        "TransitionError",
        # the codec
        "Checkpoint",
        "Record",
        "RecordReader",
        "body_hash",
        "check_line",
        "encode_record",
        "format_time",
        "upcast",
        # user and device ids
        "check_device_id",
        "check_user_id",
        "user_id_problem",
        # the models
        "AliasDropped",
        "AnyRecordModel",
        "Clear",
        "EnqueueFailure",
        "Genesis",
        "Heal",
        "Import",
        "Login",
        "Logout",
        "RecordModel",
        "Response",
        "parse_record",
        "record_problem",
        "validate_record",
    },
    "idstitch.store": {
        "DIR_MODE",
        "FILE_MODE",
        "LOCK_NAME",
        "LOCK_WAIT",
        "LOG_NAME",
        "MAX_SNAPSHOT_BYTES",
        "PENDING_NAME",
        "SNAPSHOT_FORMAT",
        "SNAPSHOT_NAME",
        "SNAPSHOT_VERSION",
        "FileLog",
        "IdentityLog",
        "MemoryLog",
        "ProcessLock",
        "SnapshotRead",
        "Tail",
        "TornTailRepair",
        "at_fork_in_child",
        "keep_aside",
        "kept_files",
        "read_snapshot",
        "sweep_temporaries",
        "temporary_affixes",
        "write_snapshot",
    },
    "idstitch.service": {
        "ALIAS_ATTEMPTS",
        "LOCK_WAIT",
        "STORAGE_TRANSITIONS",
        "Diagnosis",
        "IdentityStitch",
        "NullSink",
        "Runtime",
        "Storage",
        "detect_runtime",
        "diagnose",
        "record_dropped_alias",
        "storage_mermaid",
    },
    "idstitch.delivery": {
        "MAX_AGE",
        "MAX_BYTES",
        "SPOOL_FOLDER",
        "SpoolStatus",
        "purge",
        "read_status",
        "run_sender",
    },
    "idstitch.audit": {
        "INVARIANTS",
        "Person",
        "PersonReport",
        "Refusal",
        "StateReport",
        "Step",
        "TimelineReport",
        "UnusableInputError",
        "VerifyReport",
        "Violation",
        "diagnosis",
        "diagram",
        "person_graph",
        "state_report",
        "timeline",
        "verify_log",
    },
}


@pytest.mark.parametrize("package", sorted(EXPECTED_PUBLIC_NAMES))
def test_all_is_exactly_the_public_names(package: str) -> None:
    """Each package's __all__ is exactly its public names, without repeats, and each resolves."""
    module = importlib.import_module(package)
    names = list(module.__all__)
    assert (EXPECTED_PUBLIC_NAMES[package], len(names)) == (set(names), len(set(names)))
    unresolved = [name for name in names if not hasattr(module, name)]
    assert [] == unresolved


def test_no_idstitch_folder_at_the_repository_root() -> None:
    """idstitch is a namespace with no folder in the checkout, so nothing there can shadow it."""
    assert not (REPO / "idstitch").exists()
    namespace_paths = [Path(p) for p in idstitch.__path__]
    assert (None, False) == (getattr(idstitch, "__file__", None), REPO in namespace_paths)


def test_the_installed_package_is_imported_even_from_the_repository_root() -> None:
    """Run from the checkout (cwd first on sys.path), idstitch.events comes from the install."""
    script = (
        "import json, sys\n"
        "import idstitch.events\n"
        "print(json.dumps([idstitch.events.__file__, 'events' in sys.modules, sys.path[0]]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    file, plain_events_loaded, first_path = json.loads(result.stdout)
    expected = (("idstitch", "events", "__init__.py"), False, False, "")
    actual = (
        Path(file).parts[-3:],
        Path(file).is_relative_to(REPO / "events"),
        plain_events_loaded,
        first_path,
    )
    assert expected == actual
    assert not Path(idstitch.events.__file__ or "").is_relative_to(REPO / "events")


def test_every_code_folder_is_an_installed_subpackage() -> None:
    """Each root folder holding an __init__.py is installed as idstitch.<folder>, and no more."""
    folders = sorted(p.name for p in REPO.iterdir() if (p / "__init__.py").is_file())
    installed = sorted(m.name for m in pkgutil.iter_modules(idstitch.__path__) if m.ispkg)
    assert folders == installed


def test_every_installed_subpackage_ships_py_typed() -> None:
    """Each idstitch subpackage carries the PEP 561 marker, so type checkers read its hints."""
    subpackages = sorted(m.name for m in pkgutil.iter_modules(idstitch.__path__) if m.ispkg)
    assert {"events", "store", "audit"} <= set(subpackages)
    typed = [
        importlib.resources.files(f"idstitch.{name}").joinpath("py.typed").is_file()
        for name in subpackages
    ]
    assert [True] * len(subpackages) == typed


def test_the_console_script_prints_its_version() -> None:
    """`idstitch --version` exits 0 and prints the installed version, which is pyproject's."""
    script = shutil.which("idstitch", path=sysconfig.get_path("scripts"))
    assert script is not None
    result = subprocess.run(
        [script, "--version"], capture_output=True, text=True, check=False, timeout=60
    )
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert version == importlib.metadata.version("idstitch")
    expected = (0, f"idstitch {version}\n", "")
    assert expected == (result.returncode, result.stdout, result.stderr)


def test_the_console_script_has_help() -> None:
    """`idstitch --help` exits 0 and prints a usage line naming the program."""
    script = shutil.which("idstitch", path=sysconfig.get_path("scripts"))
    assert script is not None
    result = subprocess.run(
        [script, "--help"], capture_output=True, text=True, check=False, timeout=60
    )
    expected = (0, "usage: idstitch", "")
    assert expected == (result.returncode, result.stdout[: len("usage: idstitch")], result.stderr)


#: Each code folder's floor: a package may import its own floor and those below it only.
FLOORS = {
    "events": 0,
    "store": 1,
    "machine": 2,
    "service": 3,
    "delivery": 4,
    "adapters": 5,
    "audit": 6,
}


def _imported_packages(path: Path) -> list[tuple[str, int]]:
    """``(package, line)`` for each ``idstitch.<package>`` a module imports, anywhere in it."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "idstitch" and len(parts) > 1 and parts[1] in FLOORS:
                found.append((parts[1], node.lineno))
    return found


def test_no_package_imports_one_above_it() -> None:
    """Imports only go downward (style.md): events, store, machine, service, delivery,
    adapters, audit.
    The one exception is machine/__init__.py re-exporting IdentityStitch, the contract's
    name: lazily (PEP 562 __getattr__), and for type checkers only otherwise."""
    upward = []
    for folder, floor in FLOORS.items():
        for path in sorted((REPO / folder).glob("*.py")):
            for package, line in _imported_packages(path):
                allowed = path.name == "__init__.py" and (folder, package) == ("machine", "service")
                if FLOORS[package] > floor and not allowed:
                    upward.append(f"{folder}/{path.name}:{line} imports idstitch.{package}")
    assert [] == upward


def test_importing_the_machine_loads_nothing_above_it_and_opens_no_file() -> None:
    """idstitch.machine is pure: importing it loads only events and machine modules."""
    script = (
        "import sys, idstitch.machine\n"
        "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('idstitch.')}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert "['events', 'machine']" == done.stdout.strip()
