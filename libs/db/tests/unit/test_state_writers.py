"""One writer and one vocabulary: a scan of every service's and library's source for state writes and spellings.

Job, step and batch state is written only by `pixtools_db.lifecycle`, and spelled only in `pixtools_contracts`.
The scan reads the syntax tree, so it sees the patterns the code really uses: assignments to `<row>.state`,
`.values(state=...)` in UPDATE statements, `Job(state=...)` and friends, and comparisons of a state with a
string literal. Webhook deliveries have a state of their own vocabulary (`row.state`, `attempt.state`) and are
not job state.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

from pixtools_contracts import JobState, StepState

ROOT = Path(__file__).resolve().parents[4]
SOURCES = [*ROOT.glob("libs/*/src"), *ROOT.glob("services/*/src"), *ROOT.glob("tools/*/src")]
WRITER = ROOT / "libs/db/src/pixtools_db/lifecycle.py"
# The vocabulary's home, and migrations: history is frozen, so it spells the states of its day.
SPELLERS = (ROOT / "libs/contracts/src", ROOT / "libs/db/src/pixtools_db/migrations")
STATE_NAMES = {state.value for state in JobState} | {state.value for state in StepState}
ROWS = {"job", "step", "batch", "other", "Job", "Step", "Batch"}
"""The names job, step and batch rows (and their mapped classes) go by in the code."""


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for source in SOURCES:
        for path in sorted(source.rglob("*.py")):
            yield path, ast.parse(path.read_text(), filename=str(path))


def _is_row_state(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "state"
        and isinstance(node.value, ast.Name)
        and node.value.id in ROWS
    )


def _state_writes(tree: ast.Module) -> Iterator[int]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_is_row_state(target) for target in targets):
                yield node.lineno
        if isinstance(node, ast.Call) and _is_values(node) and any(keyword.arg == "state" for keyword in node.keywords):
            yield node.lineno


def _literals(node: ast.AST) -> Iterator[str]:
    for child in ast.walk(node):
        if isinstance(child, ast.Constant) and isinstance(child.value, str) and child.value in STATE_NAMES:
            yield child.value


def _state_spellings(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(_is_row_state(side) for side in [node.left, *node.comparators]):
            yield from ((node.lineno, literal) for literal in _literals(node))
        if isinstance(node, ast.Call):
            is_in = isinstance(node.func, ast.Attribute) and node.func.attr == "in_" and _is_row_state(node.func.value)
            is_row = isinstance(node.func, ast.Name) and node.func.id in ROWS
            if is_in:
                yield from ((node.lineno, literal) for arg in node.args for literal in _literals(arg))
            for keyword in node.keywords:
                if keyword.arg == "state" and (is_row or _is_values(node)):
                    yield from ((node.lineno, literal) for literal in _literals(keyword.value))


def _is_values(node: ast.Call) -> bool:
    return isinstance(node.func, ast.Attribute) and node.func.attr == "values"


def test_only_the_lifecycle_module_writes_job_step_or_batch_state():
    writers = [
        f"{path.relative_to(ROOT)}:{line}"
        for path, tree in _modules()
        if path != WRITER
        for line in _state_writes(tree)
    ]
    assert writers == []


def test_the_lifecycle_module_is_seen_writing_state():
    """The scan finds writes where they are: were it blind, the test above would pass for nothing."""
    tree = ast.parse(WRITER.read_text())
    assert len(list(_state_writes(tree))) >= 8


def test_no_source_outside_the_contracts_spells_a_state():
    spelled = [
        f"{path.relative_to(ROOT)}:{line}: {literal!r}"
        for path, tree in _modules()
        if not path.is_relative_to(SPELLERS[0]) and not path.is_relative_to(SPELLERS[1])
        for line, literal in _state_spellings(tree)
    ]
    assert spelled == []


def test_the_spelling_scan_catches_the_patterns_it_looks_for():
    code = """
if job.state == "cancelled": pass
rows = select(Job).where(Step.state.in_(("failed", "skipped")))
job = Job(id=1, state="accepted")
update(Batch).values(state="running")
if attempt.state == "failed": pass
"""
    found = sorted(literal for _, literal in _state_spellings(ast.parse(code)))
    assert found == ["accepted", "cancelled", "failed", "running", "skipped"]
