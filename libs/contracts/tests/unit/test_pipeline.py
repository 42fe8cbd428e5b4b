"""Pipeline validation and the routing slip."""

import pytest
from pydantic import ValidationError

from pixtools_contracts import (
    MAX_STEPS,
    ConvertStep,
    Pipeline,
    PipelineTooLarge,
    PlannedParallel,
    StepRequested,
    check_limits,
    descendants,
    first_steps,
    flatten,
    next_requests,
    plan,
)

EXAMPLE = [
    {"op": "resize", "params": {"width": 256}},
    {
        "parallel": [
            [{"op": "convert", "params": {"format": "webp", "quality": 80}}],
            [{"op": "convert", "params": {"format": "avif"}}],
            [{"op": "metadata"}],
        ]
    },
]


def _messages(raw: object) -> str:
    with pytest.raises(ValidationError) as caught:
        Pipeline.model_validate(raw)
    return str(caught.value)


def test_example_pipeline_validates_into_typed_steps() -> None:
    pipeline = Pipeline.model_validate(EXAMPLE)
    assert pipeline.step_count() == 4
    assert pipeline.depth() == 1
    branch = pipeline.root[1].parallel[0].root[0]  # type: ignore[union-attr]
    assert isinstance(branch, ConvertStep)
    assert branch.params.quality == 80


def test_unknown_op_names_the_known_ones() -> None:
    message = _messages([{"op": "blur"}])
    assert "'blur'" in message
    assert "'resize'" in message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ([{"op": "resize", "params": {}}], "resize needs width, height or both"),
        ([{"op": "resize", "params": {"width": 0}}], "greater than or equal to 1"),
        ([{"op": "resize", "params": {"width": 10, "fit": "squash"}}], "'contain'"),
        ([{"op": "convert", "params": {"format": "gif"}}], "'jpeg'"),
        ([{"op": "convert", "params": {"format": "png", "qualty": 3}}], "Extra inputs are not permitted"),
        ([{"op": "detect", "params": {"confidence": 2}}], "less than or equal to 1"),
        ([], "at least 1 item"),
        ([{"parallel": [[{"op": "metadata"}], [{"op": "metadata"}]]}, {"op": "metadata"}], "must be the last"),
        ([{"parallel": [[{"op": "metadata"}]]}], "at least 2 items"),
        ([{"parallel": [[{"op": "metadata"}], []]}], "at least 1 item"),
    ],
)
def test_bad_pipelines_fail_with_a_clear_reason(raw: object, fragment: str) -> None:
    assert fragment in _messages(raw)


def test_too_many_steps_is_rejected() -> None:
    pipeline = Pipeline.model_validate([{"op": "metadata"}] * (MAX_STEPS + 1))
    with pytest.raises(PipelineTooLarge, match="steps"):
        check_limits(pipeline)


def test_too_deep_nesting_is_rejected() -> None:
    raw: list[object] = [{"op": "metadata"}]
    for _ in range(5):
        raw = [{"op": "metadata"}, {"parallel": [raw, [{"op": "metadata"}]]}]
    with pytest.raises(PipelineTooLarge, match="deep"):
        check_limits(Pipeline.model_validate(raw))


def test_plan_gives_every_step_a_path_id_and_marks_leaves() -> None:
    steps = flatten(plan(Pipeline.model_validate(EXAMPLE)))
    assert [(step.id, step.parent_id, step.is_leaf) for step in steps] == [
        ("0", None, False),
        ("1.0.0", "0", True),
        ("1.1.0", "0", True),
        ("1.2.0", "0", True),
    ]
    parents = {step.id: step.parent_id for step in steps}
    assert descendants(parents, "0") == {"1.0.0", "1.1.0", "1.2.0"}
    assert descendants(parents, "1.0.0") == set()


def test_slip_after_the_first_step_fans_out_to_every_branch() -> None:
    slip = plan(Pipeline.model_validate(EXAMPLE))
    [(first, rest)] = first_steps(slip)
    assert first.id == "0"
    assert isinstance(rest[0], PlannedParallel)
    assert [step.id for step, _ in first_steps(rest)] == ["1.0.0", "1.1.0", "1.2.0"]


def test_next_requests_route_each_step_to_its_service() -> None:
    import uuid

    from pixtools_contracts import ObjectRef

    pipeline = Pipeline.model_validate([{"op": "denoise"}, {"op": "detect"}])
    [(first, rest)] = first_steps(plan(pipeline))
    image = ObjectRef(key="k", content_type="image/png", bytes=1, sha256="0" * 64)
    request = StepRequested(
        job_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        correlation_id="c",
        producer="gateway",
        service="denoise",
        input=image,
        step=first,
        remaining=rest,
    )
    [following] = next_requests(request, image, "denoise")
    assert following.routing_key() == "step.requested.v1.detect"
    assert following.remaining == []
    assert following.job_id == request.job_id


def test_slip_survives_a_json_round_trip() -> None:
    slip = plan(Pipeline.model_validate(EXAMPLE))
    [(first, rest)] = first_steps(slip)
    import uuid

    from pixtools_contracts import ObjectRef, parse_event

    request = StepRequested(
        job_id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        correlation_id="c",
        producer="gateway",
        service="ingest",
        input=ObjectRef(key="k", content_type="image/png", bytes=1, sha256="0" * 64),
        step=first,
        remaining=rest,
    )
    decoded = parse_event(request.model_dump_json())
    assert decoded == request
