"""What a detection run returns; it serialises to the JSON the detect step publishes."""

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from pixtools_contracts import DetectedObject

# The published contract is the single definition of a detection.
Detection = DetectedObject


class DetectionResult(BaseModel):
    """Detections on one image, their per-class counts, and the model that produced them."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    detections: list[Detection] = Field(description="Detections, best score first.")
    counts: dict[str, int] = Field(description="Number of detections per class name; absent classes are omitted.")
    model_id: str = Field(description="Model name, for example 'yolox_nano'.")
    model_sha256: str = Field(description="Hex SHA-256 of the model file.")
    width: int = Field(description="Image width in pixels.")
    height: int = Field(description="Image height in pixels.")
    slices: int = Field(description="Forward passes run for this image: slices plus the whole frame.")

    def to_json(self) -> dict[str, JsonValue]:
        """The result as plain JSON values, for StepCompleted.result."""
        return self.model_dump(mode="json")


def count_classes(detections: list[Detection]) -> dict[str, int]:
    """Per-class counts, most frequent first."""
    counts: dict[str, int] = {}
    for detection in detections:
        counts[detection.class_name] = counts.get(detection.class_name, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
