"""The pipeline vocabulary: steps, parallel forks, validation limits and the routing slip."""

from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import Discriminator, Field, RootModel, Tag, model_validator

from pixtools_contracts._base import Contract
from pixtools_contracts._operations import (
    ConvertParams,
    DenoiseParams,
    DetectParams,
    MetadataParams,
    ResizeParams,
)

MAX_STEPS = 32
MAX_DEPTH = 4
MAX_BRANCHES = 8


class ResizeStep(Contract):
    """Resize the image."""

    op: Literal["resize"] = Field(description="Operation name.")
    params: ResizeParams = Field(description="Resize parameters.")


class ConvertStep(Contract):
    """Encode the image to another format."""

    op: Literal["convert"] = Field(description="Operation name.")
    params: ConvertParams = Field(description="Convert parameters.")


class MetadataStep(Contract):
    """Extract metadata as JSON; the image passes through unchanged."""

    op: Literal["metadata"] = Field(description="Operation name.")
    params: MetadataParams = Field(default_factory=MetadataParams, description="Metadata parameters.")


class DenoiseStep(Contract):
    """Denoise the image with DnCNN."""

    op: Literal["denoise"] = Field(description="Operation name.")
    params: DenoiseParams = Field(default_factory=DenoiseParams, description="Denoise parameters.")


class DetectStep(Contract):
    """Detect and count objects; the image passes through unchanged."""

    op: Literal["detect"] = Field(description="Operation name.")
    params: DetectParams = Field(default_factory=DetectParams, description="Detect parameters.")


Step = Annotated[
    ResizeStep | ConvertStep | MetadataStep | DenoiseStep | DetectStep,
    Field(discriminator="op"),
]


class Parallel(Contract):
    """A fork into branches that run independently; only allowed as the last element."""

    parallel: list["Pipeline"] = Field(
        min_length=2, max_length=MAX_BRANCHES, description="The branches, each itself a pipeline."
    )


def _node_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return "parallel" if "parallel" in value else "step"
    return "parallel" if isinstance(value, Parallel) else "step"


Node = Annotated[
    Annotated[Step, Tag("step")] | Annotated[Parallel, Tag("parallel")],
    Discriminator(_node_kind),
]


class Pipeline(RootModel[list[Node]]):
    """A list of steps whose last element may fork into parallel branches."""

    root: list[Node] = Field(min_length=1, description="Steps in order; the last may be a parallel fork.")

    @model_validator(mode="after")
    def _parallel_only_last(self) -> Self:
        for index, node in enumerate(self.root[:-1]):
            if isinstance(node, Parallel):
                raise ValueError(f"element {index}: a parallel fork must be the last element of its pipeline")
        return self

    def step_count(self) -> int:
        """Count the steps in the whole tree."""
        return sum(1 for _ in _iter_steps(self))

    def depth(self) -> int:
        """Nesting depth of parallel forks (a flat pipeline has depth 0)."""
        last = self.root[-1]
        if isinstance(last, Parallel):
            return 1 + max(branch.depth() for branch in last.parallel)
        return 0


def _iter_steps(pipeline: Pipeline) -> Iterator[Step]:
    for node in pipeline.root:
        if isinstance(node, Parallel):
            for branch in node.parallel:
                yield from _iter_steps(branch)
        else:
            yield node


class PipelineTooLarge(ValueError):
    """The pipeline has too many steps or is nested too deeply."""


def check_limits(pipeline: Pipeline, *, max_steps: int = MAX_STEPS, max_depth: int = MAX_DEPTH) -> None:
    """Raise PipelineTooLarge when a pipeline exceeds the step or depth limits."""
    if (count := pipeline.step_count()) > max_steps:
        raise PipelineTooLarge(f"pipeline has {count} steps; the limit is {max_steps}")
    if (depth := pipeline.depth()) > max_depth:
        raise PipelineTooLarge(f"pipeline nests parallel forks {depth} deep; the limit is {max_depth}")


# --- The routing slip: the same tree with a stable id on every step. ---


class PlannedStep(Contract):
    """A step with its id in the job tree."""

    id: str = Field(description="Dotted path of the step in the tree, for example '0' or '1.2.0'.")
    spec: Step = Field(description="The operation and its parameters.")


class PlannedParallel(Contract):
    """A parallel fork of planned branches."""

    branches: list[list["SlipNode"]] = Field(description="Planned branches.")


def _slip_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "parallel" if "branches" in value else "step"
    return "parallel" if isinstance(value, PlannedParallel) else "step"


SlipNode = Annotated[
    Annotated[PlannedStep, Tag("step")] | Annotated[PlannedParallel, Tag("parallel")],
    Discriminator(_slip_kind),
]


def plan(pipeline: Pipeline, prefix: str = "") -> list[SlipNode]:
    """Assign every step its dotted id: top-level steps are '0', '1'; branch b of fork p holds 'p.b.0'."""
    nodes: list[SlipNode] = []
    for index, node in enumerate(pipeline.root):
        node_id = f"{prefix}{index}"
        if isinstance(node, Parallel):
            nodes.append(
                PlannedParallel(branches=[plan(branch, f"{node_id}.{b}.") for b, branch in enumerate(node.parallel)])
            )
        else:
            nodes.append(PlannedStep(id=node_id, spec=node))
    return nodes


def first_steps(slip: list[SlipNode]) -> list[tuple[PlannedStep, list[SlipNode]]]:
    """The steps to request next from a slip, each with the rest of its own slip."""
    if not slip:
        return []
    head, rest = slip[0], slip[1:]
    if isinstance(head, PlannedParallel):
        return [pair for branch in head.branches for pair in first_steps(branch)]
    return [(head, rest)]


def resume_at(slip: list[SlipNode], step_id: str) -> tuple[PlannedStep, list[SlipNode]] | None:
    """The planned step with this id and the rest of its own slip, to request it again; None when absent."""
    for index, node in enumerate(slip):
        if isinstance(node, PlannedParallel):
            for branch in node.branches:
                found = resume_at(branch, step_id)
                if found is not None:
                    return found
        elif node.id == step_id:
            return node, slip[index + 1 :]
    return None


class PlannedStepInfo(Contract):
    """A flattened view of one planned step: its parent and whether it is a leaf."""

    id: str = Field(description="Step id.")
    parent_id: str | None = Field(description="Id of the step whose output feeds this one.")
    is_leaf: bool = Field(description="True when nothing runs after this step.")
    spec: Step = Field(description="Operation and parameters.")


def flatten(slip: list[SlipNode], parent_id: str | None = None) -> list[PlannedStepInfo]:
    """List every planned step with its parent and leaf flag, in tree order."""
    steps: list[PlannedStepInfo] = []
    for index, node in enumerate(slip):
        if isinstance(node, PlannedParallel):
            for branch in node.branches:
                steps.extend(flatten(branch, parent_id))
            continue
        rest = slip[index + 1 :]
        steps.append(PlannedStepInfo(id=node.id, parent_id=parent_id, is_leaf=not rest, spec=node.spec))
        parent_id = node.id
    return steps


def descendants(parents: Mapping[str, str | None], step_id: str) -> set[str]:
    """Ids of every step fed, directly or not, by `step_id`, given each step's parent."""
    children: dict[str | None, list[str]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    found: set[str] = set()
    frontier = list(children.get(step_id, []))
    while frontier:
        current = frontier.pop()
        found.add(current)
        frontier.extend(children.get(current, []))
    return found


Parallel.model_rebuild()
PlannedParallel.model_rebuild()
