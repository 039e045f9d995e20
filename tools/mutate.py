"""Mutation testing of the core: ``make mutate`` (docs/testing.md).

Each mutant is one small change to one source file (a flipped comparison or
boolean, a dropped statement, a constant off by one, ``is``/``is not``,
``return None``, a state swapped for another). It is run against the test
files that exercise its module (:data:`TESTS`), fast tests only, stopping at
the first failure. A mutant no test notices *survives*: either a test is
missing, or the mutant is equivalent (it changes nothing observable) and is
listed, with its reason, in ``tests/mutation-equivalents.txt``.

Why not mutmut or cosmic-ray: mutmut 3 runs the tests in a copied tree
(``mutants/``), which a strict editable install never imports (its link tree
points at the real files); cosmic-ray mutates in place but runs one test
command per session and one mutant at a time per checkout. Here each worker
holds its own copy of the installed package (the link tree, dereferenced) and
puts it first on ``PYTHONPATH``: the real files are never touched, so an
interrupted run leaves nothing to restore, and workers run side by side.

Usage: ``python tools/mutate.py [--jobs N] [--sample F] [--seed S] [--list]
[--only FILE:LINE] [FILE_OR_FOLDER ...]`` (default: machine/ store/ events/).
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "tests" / "mutation-equivalents.txt"
DEFAULT_TARGETS = ("machine", "store", "events")

#: Source folder (or file) -> the test files that exercise it; the longest match wins.
TESTS: dict[str, tuple[str, ...]] = {
    "machine": ("tests/unit/machine",),
    "store": ("tests/unit/store",),
    "events": ("tests/unit/events",),
    "service": ("tests/unit/service",),
}

#: Modules whose contract is between processes: their tests marked ``processes`` run too.
BETWEEN_PROCESSES = frozenset(
    {
        "events/_canonical.py",  # json's C scanner in a fresh process
        "events/_codec.py",  # a strict read of a sound log leaves pydantic unimported
        "store/_files.py",
        "store/_lock.py",
        "store/_log.py",
    }
)

PYTEST = ("-m", "pytest", "-q", "-x", "-p", "no:cacheprovider")

#: A comparison and the one that negates it.
_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.GtE,
    ast.GtE: ast.Lt,
    ast.Gt: ast.LtE,
    ast.LtE: ast.Gt,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_STATES = ("ANONYMOUS", "STAMPED", "ALIASED", "RESET")
#: Statements a mutant may drop (inside functions only: dropping a module's name is a NameError).
_DROPPABLE = (
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.Expr,
    ast.Raise,
    ast.Delete,
    ast.Break,
    ast.Continue,
)


@dataclass(frozen=True)
class Mutant:
    """One change: the bytes ``start:end`` of ``path`` become ``new``."""

    path: str  # relative to the project root
    line: int
    col: int
    what: str
    start: int
    end: int
    new: bytes

    @property
    def key(self) -> tuple[str, int, int, str]:
        """How the equivalents file names this mutant."""
        return (self.path, self.line, self.col, self.what)

    def apply(self, source: bytes) -> bytes:
        """``source`` with this change made."""
        return source[: self.start] + self.new + source[self.end :]


def _snippet(node: ast.AST) -> str:
    text = ast.unparse(node).replace("\n", " ")
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class _Finder(ast.NodeVisitor):
    """Collects the mutants of one module."""

    path: str
    source: bytes
    mutants: list[Mutant] = field(default_factory=list)
    _depth: int = 0  # how many functions we are inside

    def __post_init__(self) -> None:
        self._starts = [0]
        for line in self.source.splitlines(keepends=True):
            self._starts.append(self._starts[-1] + len(line))

    def _span(self, node: ast.AST) -> tuple[int, int]:
        start = self._starts[node.lineno - 1] + node.col_offset  # type: ignore[attr-defined]
        end = self._starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[attr-defined]
        return start, end

    def _add(self, node: ast.AST, what: str, new: str, *, expression: bool = True) -> None:
        start, end = self._span(node)
        text = f"({new})" if expression else new
        line, col = node.lineno, node.col_offset  # type: ignore[attr-defined]
        self.mutants.append(Mutant(self.path, line, col, what, start, end, text.encode()))

    # --- what is never mutated ----------------------------------------------------------

    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return  # imports for the type checker only
        self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        return  # message text

    def visit_Assert(self, node: ast.Assert) -> None:
        return  # a check of the caller, which the tests do not call wrongly

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._statement(node)
        if node.value is not None:
            self.visit(node.value)

    def visit_arguments(self, node: ast.arguments) -> None:
        for default in [*node.defaults, *node.kw_defaults]:
            if default is not None:
                self.visit(default)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.name == "__repr__":
            return  # how a value prints
        for decorator in node.decorator_list:
            self.visit(decorator)
        self.visit(node.args)
        self._depth += 1
        for statement in node.body:
            self.visit(statement)
        self._depth -= 1

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node)

    def visit_Assign(self, node: ast.Assign) -> None:
        names = {target.id for target in node.targets if isinstance(target, ast.Name)}
        if names & {"TYPE_CHECKING", "__all__", "__slots__"}:
            return
        self._statement(node)
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str | type(...)):
            return  # a docstring, or the ``...`` body of a protocol's method
        self._statement(node)
        self.generic_visit(node)

    # --- the operators ------------------------------------------------------------------

    def _statement(self, node: ast.stmt) -> None:
        if self._depth and isinstance(node, _DROPPABLE):
            self._add(node, f"drop {_snippet(node)}", "pass", expression=False)

    def generic_visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.stmt) and not isinstance(node, (ast.Assign, ast.Expr)):
            self._statement(node)
        super().generic_visit(node)

    def visit_Return(self, node: ast.Return) -> None:
        value = node.value
        if value is not None and not (isinstance(value, ast.Constant) and value.value is None):
            self._add(node, f"return None for {_snippet(value)}", "return None", expression=False)
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        for i, op in enumerate(node.ops):
            flipped = _FLIP.get(type(op))
            if flipped is None:
                continue
            ops = [*node.ops]
            ops[i] = flipped()
            mutant = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
            self._add(node, f"{_snippet(node)}: {_op(op)} -> {_op(flipped())}", ast.unparse(mutant))
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        mutant = ast.BoolOp(op=other, values=node.values)
        self._add(node, f"{_snippet(node)}: {_op(node.op)} -> {_op(other)}", ast.unparse(mutant))
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self._add(node, f"drop not in {_snippet(node)}", ast.unparse(node.operand))
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            self._add(node, f"{value} -> {not value}", repr(not value))
        elif isinstance(value, int):
            self._add(node, f"{value} -> {value + 1}", repr(value + 1))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id == "State" and node.attr in _STATES:
            swapped = _STATES[(_STATES.index(node.attr) + 1) % len(_STATES)]
            self._add(node, f"State.{node.attr} -> State.{swapped}", f"State.{swapped}")
        self.generic_visit(node)


def _op(op: ast.AST) -> str:
    names = {
        ast.Eq: "==",
        ast.NotEq: "!=",
        ast.Lt: "<",
        ast.GtE: ">=",
        ast.Gt: ">",
        ast.LtE: "<=",
        ast.Is: "is",
        ast.IsNot: "is not",
        ast.In: "in",
        ast.NotIn: "not in",
        ast.And: "and",
        ast.Or: "or",
    }
    return names[type(op)]


def mutants_of(path: str) -> list[Mutant]:
    """Every mutant of the module at ``path`` (relative to the root), in source order."""
    source = (ROOT / path).read_bytes()
    finder = _Finder(path, source)
    finder.visit(ast.parse(source))
    found = sorted(finder.mutants, key=lambda m: (m.line, m.col, m.what))
    for mutant in found:  # every mutant must still be Python
        ast.parse(mutant.apply(source))
    return found


def tests_for(path: str) -> tuple[str, ...]:
    """The pytest arguments for the module at ``path``: a marker expression (fast tests only,
    and those that start processes for :data:`BETWEEN_PROCESSES`), then the test files and
    folders that exercise it."""
    matches = [key for key in TESTS if path == key or path.startswith(key.rstrip("/") + "/")]
    if not matches:
        raise SystemExit(f"no tests mapped for {path}: add it to TESTS in tools/mutate.py")
    marker = "not slow" if path in BETWEEN_PROCESSES else "not slow and not processes"
    return ("-m", marker, *TESTS[max(matches, key=len)])


def read_equivalents(file: Path = EQUIVALENTS) -> dict[tuple[str, int, int, str], str]:
    """``file:line:col | mutation | reason`` lines -> reason (``#`` starts a comment line)."""
    found: dict[tuple[str, int, int, str], str] = {}
    for number, raw in enumerate(file.read_text().splitlines(), 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        # The mutation may hold " | " itself (a type union): the reason is after the last one.
        where, _, rest = text.partition(" | ")
        parts = [where.strip(), *(part.strip() for part in rest.rsplit(" | ", 1))]
        if len(parts) != 3 or not parts[2]:
            raise SystemExit(f"{file.name}:{number}: want 'file:line:col | mutation | reason'")
        where, what, reason = parts
        path, line, col = where.rsplit(":", 2)
        found[(path, int(line), int(col), what)] = reason
    return found


def _link_tree() -> Path:
    trees = sorted((ROOT / "build").glob("__editable__.idstitch-*"))
    if not trees:
        raise SystemExit("no editable install: run `make install` first")
    return trees[-1]


class Worker:
    """A private copy of the installed package, first on ``PYTHONPATH`` for its test runs."""

    def __init__(self, home: Path) -> None:
        self.home = home
        shutil.copytree(_link_tree(), home, ignore=shutil.ignore_patterns("__pycache__"))
        #: Source path (relative to the root) -> its copy in this worker.
        self.copies: dict[str, Path] = {}
        for copy in home.rglob("*.py"):
            real = (_link_tree() / copy.relative_to(home)).resolve()
            if real.is_relative_to(ROOT):
                self.copies[str(real.relative_to(ROOT))] = copy

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.home), env.get("PYTHONPATH")]))
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # a mutant's bytecode must never be reused
        env.setdefault("IDSTITCH_HYPOTHESIS", "check")
        return env

    def run(self, tests: tuple[str, ...], timeout: float) -> str:
        """``killed``, ``survived`` or ``timeout``: how the tests took this copy."""
        try:
            done = subprocess.run(  # noqa: S603 - this interpreter, our own arguments
                [sys.executable, *PYTEST, *tests],
                cwd=ROOT,
                env=self.env(),
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return "timeout"
        if done.returncode == 5:
            raise SystemExit(f"no tests collected from {tests}")
        return "survived" if done.returncode == 0 else "killed"

    def trial(self, mutant: Mutant, timeout: float) -> str:
        copy = self.copies[mutant.path]
        original = copy.read_bytes()
        copy.write_bytes(mutant.apply(original))
        try:
            return self.run(tests_for(mutant.path), timeout)
        finally:
            copy.write_bytes(original)


def _sources(targets: list[str]) -> list[str]:
    found = []
    for target in targets:
        path = ROOT / target
        files = sorted(path.glob("*.py")) if path.is_dir() else [path]
        found += [str(f.relative_to(ROOT)) for f in files if f.name != "__init__.py"]
    return found


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", default=list(DEFAULT_TARGETS))
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--sample", type=float, default=1.0, help="the share of each file's mutants"
    )
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--timeout", type=float, default=0, help="per mutant; 0: 5x the baseline")
    parser.add_argument("--only", action="append", default=[], help="FILE:LINE, repeatable")
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument(
        "--tests",
        nargs="+",
        help="run these tests instead of the mapped ones (does a new test kill?)",
    )
    parser.add_argument("--report", default=str(ROOT / ".venv" / "mutation-report.txt"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)

    equivalents = read_equivalents()
    if args.tests:
        TESTS.update(dict.fromkeys(TESTS, tuple(args.tests)))
    chosen: list[Mutant] = []
    every: set[tuple[str, int, int, str]] = set()
    pick = random.Random(args.seed)
    for path in _sources(args.targets):
        found = mutants_of(path)
        every |= {m.key for m in found}
        if args.only:
            found = [m for m in found if f"{m.path}:{m.line}" in args.only]
        elif args.sample < 1:
            found = sorted(pick.sample(found, round(len(found) * args.sample)), key=found.index)
        chosen += found
    if args.list:
        for m in chosen:
            mark = "  (equivalent)" if m.key in equivalents else ""
            print(f"{m.path}:{m.line}:{m.col} | {m.what}{mark}")
        return 0

    to_run = [m for m in chosen if m.key not in equivalents]
    outcome: dict[Mutant, str] = {m: "equivalent" for m in chosen if m.key in equivalents}
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        workers: queue.Queue[Worker] = queue.Queue()
        for i in range(max(1, args.jobs)):
            workers.put(Worker(Path(tmp) / f"w{i}"))
        timeouts = _baselines(workers, {tests_for(m.path) for m in to_run}, args.timeout)
        began = time.monotonic()

        def trial(mutant: Mutant) -> str:
            worker = workers.get()
            try:
                return worker.trial(mutant, timeouts[tests_for(mutant.path)])
            finally:
                workers.put(worker)

        with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
            futures = {pool.submit(trial, m): m for m in to_run}
            for n, future in enumerate(concurrent.futures.as_completed(futures), 1):
                mutant = futures[future]
                outcome[mutant] = future.result()
                if outcome[mutant] == "survived":
                    print(f"[{n}/{len(to_run)}] survived {mutant.path}:{mutant.line}", flush=True)
        minutes = (time.monotonic() - began) / 60

    report = _report(outcome, equivalents, every, minutes, args)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(report)
    print(report, end="")
    return 1 if "survived" in outcome.values() else 0


def _baselines(
    workers: queue.Queue[Worker], groups: set[tuple[str, ...]], fixed: float
) -> dict[tuple[str, ...], float]:
    """Run each group of tests once unmutated (they must pass); the per-mutant timeouts."""
    worker = workers.get()
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import idstitch.events as e; print(e.__file__)"],
            env=worker.env(),
            capture_output=True,
            text=True,
            check=True,
        )
        if not probe.stdout.startswith(str(worker.home)):
            raise SystemExit(f"the tests would not import the copy: {probe.stdout.strip()}")
        timeouts = {}
        for tests in sorted(groups):
            began = time.monotonic()
            if worker.run(tests, timeout=600) != "survived":
                raise SystemExit(f"the unmutated code fails {' '.join(tests)}: fix that first")
            timeouts[tests] = fixed or max(30.0, 5 * (time.monotonic() - began))
        return timeouts
    finally:
        workers.put(worker)


def _report(
    outcome: dict[Mutant, str],
    equivalents: dict[tuple[str, int, int, str], str],
    every: set[tuple[str, int, int, str]],
    minutes: float,
    args: argparse.Namespace,
) -> str:
    lines = [f"mutation run: {len(outcome)} mutants, {minutes:.1f} min, {args.jobs} jobs"]
    if args.sample < 1:
        lines[0] += f", a {args.sample:.0%} sample (seed {args.seed})"
    lines += ["", f"{'file':28} {'mutants':>7} {'killed':>6} {'equiv':>5} {'survived':>8} score"]
    totals = [0, 0, 0, 0]
    for path in sorted({m.path for m in outcome}):
        mine = [o for m, o in outcome.items() if m.path == path]
        row = [len(mine), mine.count("killed") + mine.count("timeout"), mine.count("equivalent")]
        row.append(mine.count("survived"))
        totals = [a + b for a, b in zip(totals, row, strict=True)]
        lines.append(f"{path:28} {row[0]:7} {row[1]:6} {row[2]:5} {row[3]:8} {_score(row)}")
    lines.append(f"{'total':28} {totals[0]:7} {totals[1]:6} {totals[2]:5} {totals[3]:8} ")
    lines[-1] += _score(totals)
    survivors = sorted((m for m, o in outcome.items() if o == "survived"), key=lambda m: m.key)
    if survivors:
        lines += [
            "",
            "survivors (kill each with a test, or list it in tests/mutation-equivalents.txt):",
        ]
        lines += [f"{m.path}:{m.line}:{m.col} | {m.what}" for m in survivors]
    stale = sorted(
        key for key in equivalents if key[0] in {m.path for m in outcome} and key not in every
    )
    if stale:
        lines += ["", "equivalents that name no mutant any more (the code moved: update them):"]
        lines += [f"{p}:{line}:{col} | {what}" for p, line, col, what in stale]
    return "\n".join(lines) + "\n"


def _score(row: list[int]) -> str:
    """Killed over killed + survived (equivalents count on neither side)."""
    decided = row[1] + row[3]
    return f"{100 * row[1] / decided:5.1f}%" if decided else "    -"


if __name__ == "__main__":
    sys.exit(main())
