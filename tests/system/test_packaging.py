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
from support import REPO

EXPECTED_PUBLIC_NAMES: dict[str, set[str]] = {
    "idstitch": {
        "__version__",
        "open",
        "IdentityStitch",
        "State",
        "Runtime",
        "detect_runtime",
        "Command",
        "TelemetryStatus",
        # the telemetry commands
        "click_telemetry",
        "typer_telemetry",
        # sinks
        "Sink",
        "NullSink",
        "PostHogSink",
        "PrintSink",
        "RecordingSink",
        "SpoolSink",
        # whole-app wiring (click, typer)
        "instrument",
        # HTTP hooks
        "httpx_async_hooks",
        "httpx_hooks",
        "requests_hook",
        "user_id_from",
        # errors
        "IdentityError",
        "IllegalUserIdError",
        "LogDamagedError",
        "NewerFormatError",
        "TransitionError",
    },
    "idstitch.machine": {
        # the table and its step
        "EVENTS",
        "INITIAL",
        "TRANSITIONS",
        "USER_EVENTS",
        "State",
        "Transition",
        "guard_of",
        "step",
        "mermaid",
        # replay
        "Identity",
        "ReplayResult",
        "fold",
        "replay",
        # the service, re-exported lazily (the contract's path), and the errors
        "IdentityStitch",
        "TelemetryStatus",
        "IdentityError",
        "IllegalUserIdError",
        "LogDamagedError",
        "NewerFormatError",
        "TransitionError",
    },
    "idstitch.adapters": set(),  # each adapter is imported on its own, for what it costs
    "idstitch.adapters.http": {
        "Extractor",
        "httpx_async_hooks",
        "httpx_hooks",
        "requests_hook",
        "user_id_from",
    },
    "idstitch.adapters.sinks": {
        "NullSink",
        "PostHogSink",
        "PrintSink",
        "RecordedAlias",
        "RecordedCapture",
        "RecordingSink",
        "Sink",
        "SpoolSink",
    },
    "idstitch.adapters.runtime": {
        "CI_PROVIDERS",
        "CI_VARIABLES",
        "DEV_ENVIRONMENTS",
        "RUNTIME_REASONS",
        "Runtime",
        "RuntimeVerdict",
        "detect_runtime",
        "is_truthy",
        "runtime_override",
        "runtime_verdict",
    },
    "idstitch.adapters.capture_server": {"CaptureServer"},
    "idstitch.adapters.telemetry": {"click_telemetry", "typer_telemetry"},
    "idstitch.audit.cli": {"READER_GONE", "build_parser", "main"},
    "idstitch.conformance": {
        "SCHEMA_VERSION",
        "WIRE_CHECKS",
        "DriverUnusableError",
        "Report",
        "VectorResult",
        "load_vectors",
        "run_vectors",
        "subprocess_sessions",
    },
    "idstitch.conformance.driver": {"Driver", "main"},
    "idstitch.events": {
        # what a log holds: kinds, the format's version, runtimes, id rules
        "FORMAT_VERSION",
        "KINDS",
        "MAX_ID_LENGTH",
        "RUNTIMES",
        "check_device_id",
        "check_user_id",
        "user_id_problem",
        # errors
        "IdentityError",
        "IllegalUserIdError",
        "LogDamagedError",
        "NewerFormatError",
        "TransitionError",
        # reading and writing records
        "START",
        "Checkpoint",
        "Record",
        "RecordReader",
        "encode_record",
        # the models, one per kind
        "AliasDropped",
        "Consent",
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
        "SPOOL_NAME",
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
        "kept_names",
        "line_hash",
        "pending_names",
        "publish",
        "read_snapshot",
        "sweep_state_dir",
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
        "OpenReport",
        "Runtime",
        "Storage",
        "TelemetryStatus",
        "detect_runtime",
        "diagnose",
        "open_report",
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
    "idstitch.fleet": {
        "DIALECTS",
        "FlaggedPerson",
        "FleetReport",
        "IllegalId",
        "Join",
        "SharedDevice",
        "fleet_audit",
        "render_sql",
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
    """The front door's folder is not named idstitch: the installed __init__.py is the one used."""
    assert not (REPO / "idstitch").exists()
    file = Path(idstitch.__file__ or "")
    expected = (("idstitch", "__init__.py"), False, [str(file.parent)])
    actual = (file.parts[-2:], file.is_relative_to(REPO / "front"), list(idstitch.__path__))
    assert expected == actual


@pytest.mark.processes
def test_a_folder_named_idstitch_in_the_working_directory_does_not_replace_the_install(
    tmp_path: Path,
) -> None:
    """A clone named idstitch, run from its parent (cwd first on sys.path), is not imported."""
    clone = tmp_path / "idstitch"
    for folder in ("front", "events", "machine", "audit"):
        (clone / folder).mkdir(parents=True)
        (clone / folder / "__init__.py").write_text("raise SystemExit('the clone was imported')\n")
    (clone / "pyproject.toml").write_text("[project]\nname = 'idstitch'\n")
    script = (
        "import json, idstitch, idstitch.events, idstitch.machine\n"
        "print(json.dumps([idstitch.__file__, idstitch.events.__file__,"
        " idstitch.machine.__file__, idstitch.__version__]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert (0, "") == (result.returncode, result.stderr)
    files = json.loads(result.stdout)
    expected = [idstitch.__file__, idstitch.events.__file__, idstitch.machine.__file__]
    assert [*expected, idstitch.__version__] == files


def test_the_front_door_opens_the_same_service_as_the_long_paths(tmp_path: Path) -> None:
    """idstitch.open is IdentityStitch.open, and each front-door name is the subpackages' object."""
    from idstitch.adapters import http, runtime, sinks
    from idstitch.machine import IdentityError, IdentityStitch, State

    expected = (IdentityStitch, State, IdentityError, sinks.SpoolSink, runtime.Runtime)
    actual = (idstitch.IdentityStitch, idstitch.State, idstitch.IdentityError)
    assert expected == (*actual, idstitch.SpoolSink, idstitch.Runtime)
    assert http.httpx_hooks is idstitch.httpx_hooks
    assert IdentityStitch.open == idstitch.open
    sink = idstitch.RecordingSink()
    stitch = idstitch.open(
        state_dir=str(tmp_path), runtime=idstitch.Runtime.PERSISTENT, sink=sink, env={}
    )
    assert stitch.observe_authenticated_response("user-1")
    expected_alias = [sinks.RecordedAlias(user_id="user-1", device_id=stitch.device_id)]
    assert (idstitch.State.ALIASED, expected_alias) == (stitch.state, sink.aliases)
    stitch.close()


@pytest.mark.processes
def test_importing_idstitch_loads_only_the_vocabulary() -> None:
    """`import idstitch` is free: the front door loads its names on first access."""
    script = (
        "import sys, idstitch\n"
        "heavy = {'posthog', 'pydantic', 'transitions', 'orjson'}\n"
        "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('idstitch.')}),"
        " sorted(heavy & set(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert "['events'] []" == done.stdout.strip()


@pytest.mark.processes
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
    folders = sorted(
        p.name for p in REPO.iterdir() if (p / "__init__.py").is_file() and p.name != "front"
    )
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
    assert importlib.resources.files("idstitch").joinpath("py.typed").is_file()


@pytest.mark.processes
def test_the_console_script_prints_its_version() -> None:
    """`idstitch --version` exits 0 and prints the installed version, which is pyproject's."""
    script = shutil.which("idstitch", path=sysconfig.get_path("scripts"))
    assert script is not None
    result = subprocess.run(
        [script, "--version"], capture_output=True, text=True, check=False, timeout=60
    )
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert (["version"], {"attr": "idstitch.__version__"}) == (
        project["project"]["dynamic"],
        project["tool"]["setuptools"]["dynamic"]["version"],
    )
    version = idstitch.__version__
    assert version == importlib.metadata.version("idstitch")
    expected = (0, f"idstitch {version}\n", "")
    assert expected == (result.returncode, result.stdout, result.stderr)


@pytest.mark.processes
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
    "conformance": 6,  # beside audit: the runner and driver may use every floor below
    "fleet": 6,  # beside audit: the fleet audit, reached by its command only
    "front": 7,  # idstitch/__init__.py, the front door: it may name any floor
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


@pytest.mark.processes
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
