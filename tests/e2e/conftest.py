"""The e2e tests' daemon: started per test, every pod deleted at the end, and what deleting left
behind reported as a failure."""

import pytest

from tests.e2e.daemon import Daemon


@pytest.fixture
def d(tmp_path):
    daemon = Daemon(tmp_path).start()
    yield daemon
    leaks = daemon.cleanup()
    assert leaks == [], leaks
