"""The worked example of docs/algorithm.md: its table is what the library (and the reference) compute."""

import re
from pathlib import Path

import numpy as np
import pytest

from proxmo.advantage import AdvantageConfig, compute_advantages
from tests.proxmo.advantage.conftest import rows_of
from tests.proxmo.advantage.reference import reference_advantages

DOC = (Path(__file__).resolve().parents[2] / "docs" / "algorithm.md").read_text()


def worked_example():
    code = re.search(r"<!-- worked-example:batch -->\s*```python\n(.*?)```", DOC, re.S).group(1)
    namespace: dict = {}
    exec(code, namespace)
    table = re.search(r"<!-- worked-example:table -->\n(.*?)<!-- worked-example:end -->", DOC, re.S).group(1)
    lines = [line for line in table.strip().splitlines() if not line.startswith("|---")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    values = np.array([[float(cell) for cell in line.strip("|").split("|")] for line in lines[1:]])
    return namespace["batch"], header, values


def test_the_table_has_every_estimator_and_preset():
    _, header, values = worked_example()
    assert header[1:] == [f"{e} {p}" for e in ("grpo", "gigpo", "proxmo") for p in ("paper", "official")]
    assert values.shape == (12, 7)


@pytest.mark.parametrize("column", range(1, 7))
def test_the_numbers_in_the_doc_are_computed(column):
    batch, header, values = worked_example()
    estimator, preset = header[column].split()
    config = AdvantageConfig(estimator=estimator, preset=preset)
    np.testing.assert_allclose(compute_advantages(batch, config).advantages, values[:, column], atol=6e-5)
    np.testing.assert_allclose(reference_advantages(rows_of(batch), config)["advantages"], values[:, column], atol=6e-5)


def test_the_walkthrough_numbers():
    batch, _, _ = worked_example()
    proxmo = compute_advantages(batch, AdvantageConfig())
    assert proxmo.step[2] == pytest.approx(0.027, abs=5e-4)
    official = compute_advantages(batch, AdvantageConfig(preset="official"))
    assert official.diagnostics["success_rate_mean"] == 1.0 and official.diagnostics["modulation_weight_min"] == pytest.approx(0.95)
