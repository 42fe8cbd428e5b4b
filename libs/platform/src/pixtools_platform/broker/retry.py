"""Exponential backoff with jitter, through fixed delay tiers."""

import random

from pydantic import BaseModel, Field


class RetryPolicy(BaseModel):
    """How often and how late a failed message is tried again."""

    max_attempts: int = Field(default=5, ge=1, le=20, description="Deliveries before dead-lettering.")
    base_delay_s: float = Field(default=1.0, gt=0, description="Delay before the second attempt.")
    factor: float = Field(default=4.0, ge=1.0, description="Growth of the delay per attempt.")
    jitter: float = Field(default=0.5, ge=0.0, le=1.0, description="Fraction of each delay drawn at random.")

    def tiers_ms(self) -> list[int]:
        """The delay queue TTLs, one per retry, in milliseconds."""
        return [round(self.base_delay_s * self.factor**k * 1000) for k in range(self.max_attempts - 1)]

    def delay_ms(self, attempt: int, rng: random.Random | None = None) -> tuple[int, int]:
        """Pick (tier, jittered delay) for the retry after `attempt` (1-based) failed attempts."""
        tier = self.tiers_ms()[attempt - 1]
        draw = (rng or random).random()
        # The jittered delay never exceeds its tier's TTL, so a message waits at most one tier behind another.
        return tier, max(1, round(tier * (1 - self.jitter * draw)))
