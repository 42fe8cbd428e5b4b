"""Batch documents: what a finished batch tells its webhook, and the per-state counts of its jobs."""

from collections.abc import Mapping
from datetime import datetime
from typing import Literal
from uuid import UUID, uuid4

from pydantic import Field

from pixtools_contracts._base import Contract
from pixtools_contracts._states import FinishedBatchState, JobState


class BatchTotals(Contract):
    """How many of a batch's jobs are in each state."""

    queued: int = Field(ge=0, description="Jobs accepted and not started yet.")
    running: int = Field(ge=0, description="Jobs in progress.")
    succeeded: int = Field(ge=0, description="Jobs whose every output was produced.")
    partially_failed: int = Field(ge=0, description="Jobs that produced some outputs and failed others.")
    failed: int = Field(ge=0, description="Jobs that produced no output.")
    cancelled: int = Field(ge=0, description="Jobs cancelled before they finished.")
    total: int = Field(ge=0, description="Jobs in the batch.")

    @classmethod
    def from_counts(cls, counts: Mapping[str, int]) -> "BatchTotals":
        """Totals from the jobs counted by job state; 'queued' is the jobs still accepted."""
        return cls(
            queued=counts.get(JobState.ACCEPTED, 0),
            running=counts.get(JobState.RUNNING, 0),
            succeeded=counts.get(JobState.SUCCEEDED, 0),
            partially_failed=counts.get(JobState.PARTIALLY_FAILED, 0),
            failed=counts.get(JobState.FAILED, 0),
            cancelled=counts.get(JobState.CANCELLED, 0),
            total=sum(counts.values()),
        )

    def finished_state(self, *, cancelled: bool) -> FinishedBatchState:
        """The terminal state of a batch whose jobs are all terminal."""
        if cancelled:
            return JobState.CANCELLED
        if self.succeeded == self.total:
            return JobState.SUCCEEDED
        if self.succeeded + self.partially_failed == 0:
            return JobState.FAILED
        return JobState.PARTIALLY_FAILED

    def unfinished_state(self) -> JobState:
        """The state of a batch some of whose jobs are unfinished: accepted until one starts, then running."""
        return JobState.ACCEPTED if self.queued == self.total else JobState.RUNNING


class BatchFinished(Contract):
    """Every job of a batch is terminal: the one webhook message a batch sends. Not a broker event."""

    type: Literal["batch.finished.v1"] = "batch.finished.v1"
    id: UUID = Field(default_factory=uuid4, description="Unique id of this message; receivers dedupe on it.")
    batch_id: UUID = Field(description="The batch that finished.")
    tenant_id: UUID = Field(description="The tenant that owns the batch.")
    state: FinishedBatchState = Field(
        description="'cancelled' when the batch was cancelled, 'succeeded' when every job succeeded, "
        "'failed' when no job produced an output, 'partially_failed' otherwise."
    )
    totals: BatchTotals = Field(description="The batch's jobs counted by state.")
    created_at: datetime = Field(description="When the batch was accepted.")
    finished_at: datetime = Field(description="When its last job became terminal.")
