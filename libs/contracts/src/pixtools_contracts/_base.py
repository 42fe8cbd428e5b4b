"""Base model shared by every contract: frozen, tolerant readers."""

from pydantic import BaseModel, ConfigDict


class Contract(BaseModel):
    """A frozen model whose readers ignore unknown fields, so additive changes stay compatible."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class Params(BaseModel):
    """Operation parameters: frozen and strict about unknown keys, so typos fail loudly."""

    model_config = ConfigDict(frozen=True, extra="forbid")
