"""The cancelled-jobs set stays bounded: by the stream's retention and by a count."""

import uuid
from datetime import UTC, datetime, timedelta

from pixtools_platform.broker import Topology
from pixtools_platform.cancellations import CancelledJobs


def test_oldest_cancellations_are_forgotten_beyond_the_limit() -> None:
    jobs = CancelledJobs(Topology("t"), limit=3)
    ids = [uuid.uuid4() for _ in range(5)]
    for job_id in ids:
        jobs.add(job_id, datetime.now(UTC))
    assert [job_id in jobs for job_id in ids] == [False, False, True, True, True]
    assert len(jobs) == 3


def test_cancellations_older_than_the_retention_are_forgotten() -> None:
    jobs = CancelledJobs(Topology("t"), limit=100, max_age=timedelta(days=7))
    old, recent = uuid.uuid4(), uuid.uuid4()
    jobs.add(old, datetime.now(UTC) - timedelta(days=8))
    jobs.add(recent, datetime.now(UTC) - timedelta(days=6))
    assert old not in jobs
    assert recent in jobs
