"""The grading boundary's parts, without a kernel: the plain answer format, the probes, the checks of
submitted code as text, and the judge's handling of missing, malformed and forged records."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from kdcourse.answers.plain import MAX_ELEMENTS, MalformedAnswer, decode, encode
from kdcourse.answers.probes import MISSING, run_probe
from kdcourse.judge import judge_record
from kdcourse.judge.static import NotebookCode, tampering

AID = "a01_kl_divergence"


def _through_json(value):
    return decode(json.loads(json.dumps(encode(value), allow_nan=False)))


# --- the plain format ------------------------------------------------------------------------------


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_floats_survive_the_trip(x):
    back = _through_json(x)
    assert back.kind == "float"
    assert (math.isnan(back.data) and math.isnan(x)) or back.data == x


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20), st.sampled_from([np.float64, np.float32]))
def test_arrays_survive_the_trip_with_shape_and_dtype(values, dtype):
    array = np.asarray(values, dtype=dtype).reshape(-1, 1)
    back = _through_json(array)
    assert back.kind == "ndarray" and back.data.shape == array.shape and back.dtype == str(array.dtype)
    np.testing.assert_array_equal(back.data, array.astype(np.float64))


def test_tensors_keep_their_graph_facts():
    z = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    back = _through_json((z * 2).sum())
    assert back.kind == "tensor" and back.requires_grad and back.grad_fn and back.data.shape == ()
    assert not _through_json(z.detach()).requires_grad


def test_impostors_are_opaque_objects():
    class LooksLikeAFloat(float):
        def __eq__(self, other):
            return True

    class Anything:
        def __eq__(self, other):
            return True

        def __getattr__(self, name):
            raise RuntimeError("no")

    assert _through_json(LooksLikeAFloat(1.0)).kind == "object"
    assert _through_json(Anything()).kind == "object"
    assert _through_json(np.zeros(MAX_ELEMENTS + 1)).kind == "object"  # too large to carry
    assert _through_json(np.array(["a"])).kind == "object"


@pytest.mark.parametrize("bad", [
    None, [], {"t": "float", "v": "1e9999"}, {"t": "ndarray", "shape": [2], "v": [1.0]},
    {"t": "int", "v": 1.5}, {"t": "list", "v": "no"}, {"t": "code", "v": "import os"},
    {"t": "ndarray", "shape": [-1], "v": []}, {"t": "str", "v": 3},
])
def test_malformed_plain_answers_are_refused(bad):
    with pytest.raises(MalformedAnswer):
        decode(bad)


# --- probes -----------------------------------------------------------------------------------------


def test_call_probe_records_results_and_exceptions():
    probe = {"probe": "call", "args": ["array"], "cases": [[[0.5, 0.5]], [[1.0, 0.0]]]}
    record = run_probe(probe, lambda p: 1.0 / p[1])
    assert record["results"][0]["returned"]["v"] == 2.0
    assert record["results"][1]["returned"]["v"] == "inf"
    record = run_probe(probe, lambda p: {}[p])
    assert record["results"][0]["raised"]["type"] == "TypeError"


def test_loss_probe_collects_gradients_of_the_chosen_arguments():
    probe = {"probe": "loss", "args": ["tensor_grad", "tensor_grad", "float"], "grads": [0, 1],
             "cases": [[[[1.0, 2.0]], [[0.0, 0.0]], 1.0]]}
    record = run_probe(probe, lambda z, v, T: (z * z).sum() + 0 * v.sum())
    grads = record["results"][0]["grads"]
    assert decode(grads["0"]).data.tolist() == [[2.0, 4.0]] and decode(grads["1"]).data.tolist() == [[0.0, 0.0]]
    assert "skipped" in run_probe(probe, lambda z, v, T: 1.0)["results"][0]["grads"]


def test_missing_and_uncallable_answers():
    assert run_probe({"probe": "value"}, MISSING) == {"probe": "missing"}
    assert "not_callable" in run_probe({"probe": "call", "args": [], "cases": [[]]}, 3)


# --- the code, read as text ------------------------------------------------------------------------

DELEGATING = {
    "import inside": "def kl(p, q):\n    import scipy.special\n    return scipy.special.rel_entr(p, q).sum()\n",
    "from import": "from scipy.special import rel_entr\ndef kl(p, q):\n    return rel_entr(p, q).sum()\n",
    "helper": "from scipy import stats\ndef _h(p):\n    return stats.entropy(p)\ndef kl(p, q):\n    return _h(p)\n",
    "alias": "import torch.nn.functional as F\nk = F.kl_div\ndef kl(p, q):\n    return k(p, q)\n",
    "default argument": "import torch.nn.functional as F\ndef kl(p, q, f=F.kl_div):\n    return f(p, q)\n",
    "method": "def kl(p, q):\n    return (p / q).softmax(-1)\n",
    "dunder import": "def kl(p, q):\n    return __import__('scipy').special.rel_entr(p, q)\n",
    "eval": "def kl(p, q):\n    return eval('sum(p)')\n",
    "computed getattr": "import numpy as np\ndef kl(p, q):\n    return getattr(np, 'lo' + 'g')(p)\n",
    "lambda": "from scipy.special import rel_entr\nkl = lambda p, q: rel_entr(p, q).sum()\n",
}


@pytest.mark.parametrize("name", sorted(DELEGATING))
def test_delegation_is_found_however_it_hides(name):
    code = NotebookCode([DELEGATING[name]])
    assert code.delegation("kl", banned_names=("kl_div", "rel_entr", "softmax"), banned_packages=("scipy",))


def test_honest_code_is_not_accused():
    source = ("import numpy as np\nreference = np.array([0.7, 0.2, 0.1])\n"
              "def entropy(p):\n    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), -1)\n"
              "def kl(p, q):\n    return cross(p, q) - entropy(p)\n"
              "def cross(p, q):\n    return -np.sum(p * np.log(q), -1)\n")
    code = NotebookCode([source, "%matplotlib inline\nx = 1\n", "def broken(:\n"])
    assert code.delegation("kl", ("kl_div", "rel_entr"), ("scipy", "kdcourse"), allowed=("entropy",)) is None


@pytest.mark.parametrize("source, words", [
    ("check = lambda *a, **k: None", "rebinds check"),
    ("def check(*a, **k):\n    pass", "rebinds check"),
    ("get_ipython().events.register('post_run_cell', print)", "get_ipython"),
    ("ip = get_ipython()\nip.input_transformers_post.append(lambda lines: lines)", "input transformers"),
    ("import numpy as np\nnp.allclose = lambda *a: True", "replaces np.allclose"),
    ("import sys\nsys.modules['numpy'] = None", "sys.modules"),
    ("import builtins\nbuiltins.zip = None", "imports builtins"),
    ("exec('x = 1')", "exec"),
    ("display({'application/vnd.kdcourse.answers+json': {}}, raw=True)", "publishes answer records"),
])
def test_tampering_is_reported_with_the_cell(source, words):
    found = tampering([(7, source)])
    assert found and found[0].startswith("cell 7:") and words in found[0], found


def test_ordinary_cells_are_not_tampering():
    assert tampering([(1, "import numpy as np\nx = np.ones(3)\nprint(x.sum())\n"),
                      (2, "def kl(p, q):\n    return float(np.sum(p * np.log(p / q)))\n")]) == []


# --- records the judge refuses -----------------------------------------------------------------------


@pytest.mark.parametrize("record, words", [
    (None, "no answers were recorded"),
    ("a string", "could not be read"),
    ({"format": 1, "assignment": AID, "item": "test_guided", "answers": {}}, "did not collect best_guided"),
    ({"format": 1, "assignment": AID, "item": "test_replica", "answers": {}}, "belongs to another test"),
    ({"format": 1, "assignment": AID, "item": "test_guided",
      "answers": {"best_guided": {"probe": "call", "results": []}}}, "collected as 'call'"),
    ({"format": 1, "assignment": AID, "item": "test_guided",
      "answers": {"best_guided": {"probe": "value", "value": {"t": "pickle", "v": "gASV"}}}}, "unknown kind"),
])
def test_missing_or_malformed_records_score_zero_with_a_reason(record, words):
    verdict = judge_record(AID, "test_guided", record)
    assert not verdict.passed and words in verdict.message, verdict.message


def test_a_forged_record_must_hold_right_answers_on_the_inputs_the_judge_chose():
    from fixtures.judging import course, record_of

    spec = course().spec(AID)
    honest = record_of(AID, "test_kl_divergence", {"kl_divergence": lambda p, q: 0.006577118099991286})
    verdict = judge_record(AID, "test_kl_divergence", honest, spec=spec, spec_dir=course().spec_dir)
    assert not verdict.passed  # the same number for every input cannot be right on all of them
