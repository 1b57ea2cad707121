"""The zoo: every model through ``q4sdk check``; the ones whose ops are all supported end to end.

The check's list of unsupported op types must be exactly the op types of the model's activation
nodes that the importer has no rule for -- so when an op is added to the importer, its zoo models
stop being "unsupported" here and must then pass end to end (W4A8 from the ONNX file, W4A4 from
the PyTorch module through ``q4sdk.quantize``'s loader; default recipe; C bit-exact with the oracle
on every tensor)."""

from __future__ import annotations

import numpy as np
import pytest

from q4sdk.check.model_check import check_model
from q4sdk.frontend.onnx_import import supported_op_types
from q4sdk.ptq.recipe import preset
from tests.zoo.e2e import run_end_to_end
from tests.zoo.models import ZOO, build, random_inputs, zoo_onnx

CALIB, TEST = 32, 4


def activation_op_types(model) -> set[str]:
    """Op types of the nodes that read an activation (not only constants and shapes)."""
    acts = {i.name for i in model.graph.input} - {t.name for t in model.graph.initializer}
    found = set()
    for node in model.graph.node:
        if any(t in acts for t in node.input):
            found.add(node.op_type)
            if node.op_type != "Shape":
                acts.update(node.output)
    return found


@pytest.mark.parametrize("name", ZOO)
def test_zoo_model(name, tmp_path):
    model = zoo_onnx(name)
    c = check_model(model)
    assert c.unsupported_op_types == sorted(activation_op_types(model) - set(supported_op_types()))
    assert c.parameters > 0 and c.macs > 0 and c.weight_bytes > 0 and c.arena_bytes_a8 > 0
    if c.issues:
        assert not c.supported
        names = {n.name for n in model.graph.node} | {i.name for i in model.graph.input}
        assert all(i["node"] in names and f"'{i['node']}'" in i["message"] for i in c.issues)
        return
    calib = random_inputs(name, CALIB, seed=1).numpy()
    test = random_inputs(name, TEST, seed=2).numpy()
    a8 = run_end_to_end(model, calib, test, tmp_path, bits=8, name="zoo")
    a4 = run_end_to_end(build(name), calib, test, tmp_path, bits=4, name="zoo")
    # random weights: at W4A8 the signal must survive -- the integer output follows the float one
    # (a deep random net such as MobileNetV3's 50 layers keeps a correlation of about 0.5 but may
    # lose its scale, so SQNR alone can be below 0 dB); at W4A4 such a net keeps about none of it,
    # so only the bit-exact run and finite outputs are asserted
    corr = np.corrcoef(a8.float_out.ravel(), a8.int_out.ravel())[0, 1]
    assert np.isfinite(a8.int_out).all() and corr > 0.3, (corr, a8.sqnr_db)
    assert np.isfinite(a4.int_out).all(), a4.sqnr_db
    # the default's sensitivity-chosen dual layers add at most its budget's share to the plan's MACs
    budget = preset("default", 8).sensitivity_budget or 0.0
    assert c.macs <= a8.generate_report.macs <= c.macs * (1 + budget)
    assert a8.generate_report.arena_bytes == c.arena_bytes_a8
