"""Every task adapter wired in conf/task/ passes the same contract checks on its own fixture
(`encdec.testing.check_adapter_contract`, which an out-of-tree package runs on its own
adapters). A new adapter is covered here the day its yaml lands."""

import pytest

from conftest import CONF_DIR
from encdec.testing import check_adapter_contract

TASKS = sorted(p.stem for p in (CONF_DIR / "task").glob("*.yaml"))


@pytest.mark.parametrize("task", TASKS)
def test_adapter_contract(task, tmp_path):
    check_adapter_contract(task, tmp_path)
