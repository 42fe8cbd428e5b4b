"""Gateway integration fixtures: a session factory on the test database."""

import pytest

from pixtools_db import create_engine, session_factory


@pytest.fixture
async def db(database_url):
    engine = create_engine(database_url, pool_size=2)
    yield session_factory(engine)
    await engine.dispose()
