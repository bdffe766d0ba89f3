"""Tests of the a02 judge: right answers pass, each misconception is named, keys and hidden inputs are used.

An answer is notebook source: it is run into a namespace named ``__main__`` (as a notebook cell defines
it), probed as the grading kernel probes it, sent through JSON and judged with the instructor file's
hidden inputs and keys (``graded=False``: as the student's own kernel judges, visible inputs only, no
keys). The same source is the code the judge's static checks read.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kdcourse.judge import a02_distillation_loss as judge_module

from fixtures.judging import course, judge_answers

AID = "a02_distillation_loss"
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks/assignments" / AID / f"{AID}.ipynb"
SPEC = course().spec(AID)

IMPORTS = "import numpy as np\nimport torch\nimport torch.nn.functional as F\n"
#: The test of each answer cell.
TEST_OF = {
    "softmax_with_temperature": "test_softmax_with_temperature",
    "distillation_loss": "test_distillation_loss",
    "distillation_gradient": "test_distillation_gradient",
    "kd_loss_fixed": "test_kd_loss_fixed",
    "combined_loss": "test_combined_loss",
    "alpha_to_one_answer": "test_alpha_to_one",
    "alpha_to_zero_answer": "test_alpha_to_zero",
    "without_t_squared_answer": "test_without_t_squared",
}
FUNCTIONS = ("softmax_with_temperature", "distillation_loss", "distillation_gradient", "kd_loss_fixed",
             "combined_loss")


def _solution_cells() -> dict[str, str]:
    """``grade_id -> source`` of the notebook's answer cells, with the solution markers removed."""
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cells = {}
    for cell in nb["cells"]:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("solution"):
            source = re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION\n?", "", "".join(cell["source"]), flags=re.M)
            cells[meta["grade_id"]] = source
    return cells


SOLUTION = _solution_cells()


def notebook_source(**replace: str) -> str:
    """The code of a notebook whose answer cells are the solution's, except those in ``replace``."""
    cells = dict(SOLUTION, **replace)
    return IMPORTS + "\n".join(cells.values())


def namespace(source: str) -> dict:
    ns = {"__name__": "__main__"}
    exec(compile(source, "<notebook>", "exec"), ns)  # noqa: S102 - the test's own answer source
    return ns


def verdict(grade_id: str, source: str, graded: bool = True):
    """The verdict on the answers of ``grade_id``, defined (and read) from ``source``."""
    ns = namespace(source)
    names = [a.name for a in _items()[grade_id].answers]
    return judge_answers(AID, grade_id, code=source, graded=graded, **{n: ns[n] for n in names})


def one_function(name: str, body: str, graded: bool = True):
    """The verdict on the solution notebook with the function ``name`` replaced by ``body``."""
    return verdict(TEST_OF[name], notebook_source(**{name: body}), graded)


def _items():
    return {item.grade_id: item for item in judge_module.ITEMS}


def assert_wrong(result, message: str) -> None:
    assert not result.passed and not result.unanswered, result
    assert message in result.message, result.message


# --- the solution passes; trivial answers fail ----------------------------------------------------------


@pytest.mark.parametrize("graded", [False, True])
@pytest.mark.parametrize("grade_id", list(TEST_OF.values()))
def test_the_solution_passes(grade_id, graded):
    result = verdict(grade_id, notebook_source(), graded)
    assert result.passed, result.message


@pytest.mark.parametrize("constant", [0.0, 0.5, 1.0986122886681098])
def test_constant_answers_fail(constant):
    loss = f"def distillation_loss(student_logits, teacher_logits, T):\n    return torch.tensor({constant}, requires_grad=True)\n"
    assert_wrong(one_function("distillation_loss", loss), "returned")
    kd = (f"def kd_loss_fixed(student_logits, teacher_logits, T):\n"
          f"    return torch.tensor({constant}, requires_grad=True) + 0 * F.kl_div(student_logits, teacher_logits)\n")
    assert_wrong(one_function("kd_loss_fixed", kd), "returned")
    assert_wrong(one_function("softmax_with_temperature",
                              f"def softmax_with_temperature(logits, T):\n    return torch.full_like(logits, {constant})\n"),
                 "returned")
    assert_wrong(one_function("distillation_gradient",
                              "def distillation_gradient(student_logits, teacher_logits, T):\n"
                              f"    return torch.full_like(student_logits, {constant})\n"), "returned")


def test_an_object_claiming_to_be_equal_is_not_a_tensor():
    body = ("class _Equal:\n    def __eq__(self, other):\n        return True\n"
            "def distillation_loss(student_logits, teacher_logits, T):\n    return _Equal()\n")
    assert_wrong(one_function("distillation_loss", body), "must return a torch tensor (got an object of type _Equal)")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_an_unwritten_function_is_unanswered(name):
    args = "logits, T" if name == "softmax_with_temperature" else "*args"
    result = one_function(name, f"def {name}({args}):\n    raise NotImplementedError()\n")
    assert result.unanswered and not result.passed, result
    assert f"{name} is not written yet" in result.message


def test_hidden_inputs_are_judged_only_when_graded():
    # right on every visible input (4 classes), wrong on the hidden ones (3 and 5 classes)
    body = ("def softmax_with_temperature(logits, T):\n"
            "    scaled = logits / T\n"
            "    exp = torch.exp(scaled - scaled.max(dim=-1, keepdim=True).values)\n"
            "    probs = exp / exp.sum(dim=-1, keepdim=True)\n"
            "    return probs if logits.shape[-1] == 4 else 0 * probs\n")
    assert one_function("softmax_with_temperature", body, graded=False).passed
    assert_wrong(one_function("softmax_with_temperature", body), "T=1.0) returned")


# --- every misconception of the instructor file is named by its test ------------------------------------

MISCONCEPTIONS = [m for m in SPEC.misconceptions if len(m.replace) == 1]


@pytest.mark.parametrize("misconception", MISCONCEPTIONS, ids=[m.name for m in MISCONCEPTIONS])
def test_each_misconception_gets_its_message(misconception):
    ((cell, source),) = misconception.replace.items()
    result = verdict(TEST_OF[cell], notebook_source(**{cell: source}))
    for expected in misconception.expected_messages:
        assert_wrong(result, expected)


def test_every_function_misconception_is_covered():
    names = {m.name for m in MISCONCEPTIONS}
    assert len(names) == len(SPEC.misconceptions) >= 28
    assert {"loss_missing_t_squared", "loss_t_squared_twice", "loss_temperature_student_only", "loss_reduction_mean",
            "loss_softmax_wrong_dim", "loss_item_breaks_graph", "loss_detach_student", "loss_numpy_round_trip",
            "loss_teacher_not_detached", "kl_div_probabilities_as_input", "softmax_delegates_to_torch",
            "gradient_uses_autograd"} <= names


# --- the softmax is written, not delegated ---------------------------------------------------------------


@pytest.mark.parametrize("body, found", [
    ("    return torch.softmax(logits / T, dim=-1)\n", "torch.softmax"),
    ("    return F.softmax(logits / T, dim=-1)\n", "F.softmax"),
    ("    return (logits / T).softmax(-1)\n", "softmax"),
    ("    z = logits / T\n    return z.softmax(dim=-1)\n", "z.softmax"),
    ("    return torch.log_softmax(logits / T, dim=-1).exp()\n", "torch.log_softmax"),
    ("    return torch.nn.Softmax(dim=-1)(logits / T)\n", "torch.nn.Softmax"),
    ("    from torch.nn.functional import softmax\n    return softmax(logits / T, -1)\n", "torch.nn.functional.softmax"),
])
def test_torch_softmax_inside_the_answer_is_rejected(body, found):
    for graded in (False, True):
        result = one_function("softmax_with_temperature", "def softmax_with_temperature(logits, T):\n" + body, graded)
        assert_wrong(result, f"softmax_with_temperature calls {found}")
        assert "write the formula yourself" in result.message


def test_softmax_through_an_alias_or_a_helper_is_rejected():
    aliased = "from torch.nn import Softmax\ndef softmax_with_temperature(logits, T):\n    return Softmax(-1)(logits / T)\n"
    assert_wrong(one_function("softmax_with_temperature", aliased), "Softmax (from torch.nn.Softmax)")
    helper = ("def _normalise(z):\n    return F.softmax(z, dim=-1)\n"
              "def softmax_with_temperature(logits, T):\n    return _normalise(logits / T)\n")
    assert_wrong(one_function("softmax_with_temperature", helper), "_normalise → F.softmax")


def test_an_own_helper_called_softmax_is_not_delegation():
    body = ("def softmax(z):\n"
            "    exp = torch.exp(z - z.max(dim=-1, keepdim=True).values)\n"
            "    return exp / exp.sum(dim=-1, keepdim=True)\n"
            "def softmax_with_temperature(logits, T):\n"
            "    softmax_values = softmax(logits / T)\n"
            "    return softmax_values\n")
    result = one_function("softmax_with_temperature", body)
    assert result.passed, result.message


# --- the losses: value, gradient, graph, teacher -----------------------------------------------------------


def test_a_loss_per_example_is_named():
    body = ("def distillation_loss(student_logits, teacher_logits, T):\n"
            "    log_p_s = torch.log_softmax(student_logits / T, dim=-1)\n"
            "    log_p_t = torch.log_softmax(teacher_logits.detach() / T, dim=-1)\n"
            "    return T ** 2 * (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1)\n")
    assert_wrong(one_function("distillation_loss", body), "you returned one value per example")


def test_a_backward_that_fails_is_reported():
    body = ("class _Boom(torch.autograd.Function):\n"
            "    @staticmethod\n    def forward(ctx, x):\n        return x.clone()\n"
            "    @staticmethod\n    def backward(ctx, g):\n        raise RuntimeError('boom')\n"
            "def distillation_loss(student_logits, teacher_logits, T):\n"
            "    log_p_s = torch.log_softmax(student_logits / T, dim=-1)\n"
            "    log_p_t = torch.log_softmax(teacher_logits.detach() / T, dim=-1)\n"
            "    return _Boom.apply(T ** 2 * (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1).mean())\n")
    assert_wrong(one_function("distillation_loss", body), "backward() raised RuntimeError: boom")


def test_a_right_value_with_a_wrong_gradient_is_named():
    # the value of the loss, but the student's gradient is doubled by a term whose value is 0
    body = ("def distillation_loss(student_logits, teacher_logits, T):\n"
            "    log_p_s = torch.log_softmax(student_logits / T, dim=-1)\n"
            "    log_p_t = torch.log_softmax(teacher_logits.detach() / T, dim=-1)\n"
            "    loss = T ** 2 * (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim=-1).mean()\n"
            "    return loss + (loss - loss.detach())\n")
    assert_wrong(one_function("distillation_loss", body), "the gradient with respect to the student logits is not")


def test_a_library_loss_in_a_helper_is_delegation():
    body = ("def _kd(a, b):\n    return F.kl_div(a, b, reduction='batchmean')\n"
            "def distillation_loss(student_logits, teacher_logits, T):\n"
            "    return T ** 2 * _kd(F.log_softmax(student_logits / T, -1), F.softmax(teacher_logits.detach() / T, -1))\n")
    assert_wrong(one_function("distillation_loss", body), "distillation_loss calls _kd → F.kl_div")


def test_kernel_warnings_do_not_reach_stderr(capsys):
    (wrong,) = [m for m in SPEC.misconceptions if m.name == "kl_div_reduction_mean"]  # F.kl_div warns on "mean"
    assert not verdict("test_kd_loss_fixed", notebook_source(**wrong.replace)).passed
    assert capsys.readouterr().err == ""


# --- the analytic gradient: formula, not autograd -------------------------------------------------------------


def test_a_local_variable_named_grad_is_not_autograd():
    body = ("def distillation_gradient(student_logits, teacher_logits, T):\n"
            "    grad = T * (softmax_with_temperature(student_logits, T) - softmax_with_temperature(teacher_logits, T))\n"
            "    return grad / student_logits.shape[0]\n")
    result = one_function("distillation_gradient", body)
    assert result.passed, result.message


@pytest.mark.parametrize("body", [
    "    z = student_logits.detach().requires_grad_(True)\n"
    "    distillation_loss(z, teacher_logits, T).backward()\n    return z.grad\n",
    "    z = student_logits.detach().requires_grad_(True)\n"
    "    loss = T * (softmax_with_temperature(z, T) * softmax_with_temperature(teacher_logits, T).log()).sum()\n"
    "    loss.backward()\n    return -z.grad / z.shape[0]\n",
    "    from torch.autograd import grad as derivative\n"
    "    z = student_logits.detach().requires_grad_(True)\n"
    "    return derivative(distillation_loss(z, teacher_logits, T), z)[0]\n",
])
def test_autograd_in_the_gradient_is_rejected(body):
    result = one_function("distillation_gradient", "def distillation_gradient(student_logits, teacher_logits, T):\n" + body)
    assert_wrong(result, "distillation_gradient calls ")
    assert "write the formula yourself" in result.message


# --- the F.kl_div exercise: the textbook fix is right, other losses are not the exercise ----------------------


@pytest.mark.parametrize("graded", [False, True])
def test_the_textbook_kl_div_fix_passes(graded):
    """The four bugs fixed, nothing else: the teacher is not detached, and that is fine here."""
    body = ("def kd_loss_fixed(student_logits, teacher_logits, T):\n"
            "    return T ** 2 * F.kl_div(F.log_softmax(student_logits / T, -1), F.softmax(teacher_logits / T, -1),\n"
            "                             reduction='batchmean')\n")
    result = one_function("kd_loss_fixed", body, graded)
    assert result.passed, result.message


@pytest.mark.parametrize("body", [
    "    return distillation_loss(student_logits, teacher_logits, T)\n",
    "    import kdcourse\n    return kdcourse.distillation_loss(student_logits, teacher_logits, temperature=T)\n",
])
def test_the_kl_div_exercise_rejects_other_losses(body):
    for graded in (False, True):
        result = one_function("kd_loss_fixed", "def kd_loss_fixed(student_logits, teacher_logits, T):\n" + body, graded)
        assert_wrong(result, "the exercise is to fix the F.kl_div call")
        assert "kd_loss_fixed calls" in result.message


def test_the_kl_div_exercise_needs_kl_div():
    body = ("def kd_loss_fixed(student_logits, teacher_logits, T):\n"
            "    lp_s, lp_t = F.log_softmax(student_logits / T, -1), F.log_softmax(teacher_logits.detach() / T, -1)\n"
            "    return T ** 2 * (lp_t.exp() * (lp_t - lp_s)).sum(-1).mean()\n")
    assert_wrong(one_function("kd_loss_fixed", body), "kd_loss_fixed does not call F.kl_div")


def test_distillation_loss_still_requires_a_detached_teacher():
    (wrong,) = [m for m in SPEC.misconceptions if m.name == "loss_teacher_not_detached"]
    assert_wrong(verdict("test_distillation_loss", notebook_source(**wrong.replace)), "the teacher logits received a gradient")


# --- the combined objective --------------------------------------------------------------------------------------


def test_combined_loss_may_reuse_a_delegating_distillation_loss():
    (delegating,) = [m for m in SPEC.misconceptions if m.name == "loss_delegates_to_kl_div"]
    source = notebook_source(**delegating.replace)
    assert not verdict("test_distillation_loss", source).passed
    result = verdict("test_combined_loss", source)
    assert result.passed, result.message


def test_combined_loss_may_not_call_kl_div_itself():
    body = ("def combined_loss(student_logits, teacher_logits, targets, alpha, T):\n"
            "    return alpha * F.cross_entropy(student_logits, targets) + (1 - alpha) * T ** 2 * F.kl_div(\n"
            "        F.log_softmax(student_logits / T, -1), F.softmax(teacher_logits / T, -1), reduction='batchmean')\n")
    assert_wrong(one_function("combined_loss", body), "combined_loss calls F.kl_div")


def test_combined_loss_must_be_a_scalar_in_the_graph():
    per_example = ("def combined_loss(student_logits, teacher_logits, targets, alpha, T):\n"
                   "    hard = F.cross_entropy(student_logits, targets, reduction='none')\n"
                   "    return alpha * hard + (1 - alpha) * distillation_loss(student_logits, teacher_logits, T)\n")
    assert_wrong(one_function("combined_loss", per_example), "combined_loss must return a scalar tensor (shape ())")
    detached = ("def combined_loss(student_logits, teacher_logits, targets, alpha, T):\n"
                "    z = student_logits.detach()\n"
                "    return alpha * F.cross_entropy(z, targets) + (1 - alpha) * distillation_loss(z, teacher_logits, T)\n")
    assert_wrong(one_function("combined_loss", detached), "no gradient flows to the student (the graph was cut)")


# --- multiple choice: format in the student's kernel, key when graded --------------------------------------------


def _choice(grade_id: str, name: str, answer, graded: bool = True):
    return judge_answers(AID, grade_id, graded=graded, **{name: answer})


def test_choices_are_checked_for_format_and_marked_with_the_key():
    assert _choice("test_alpha_to_one", "alpha_to_one", None).unanswered
    assert_wrong(_choice("test_alpha_to_one", "alpha_to_one", "e", graded=False), "should be one of")
    assert_wrong(_choice("test_alpha_to_one", "alpha_to_one", 1, graded=False), "as a string")
    assert _choice("test_alpha_to_one", "alpha_to_one", "a").passed
    assert_wrong(_choice("test_alpha_to_one", "alpha_to_one", "b"), "that is alpha → 0")


@pytest.mark.parametrize("grade_id, name", [("test_alpha_to_one", "alpha_to_one"), ("test_alpha_to_zero", "alpha_to_zero"),
                                            ("test_without_t_squared", "without_t_squared")])
def test_the_student_kernel_does_not_reveal_the_key(grade_id, name):
    messages = {_choice(grade_id, name, option, graded=False).message for option in "abcd"}
    assert all(_choice(grade_id, name, option, graded=False).passed for option in "abcd")
    assert messages == {f"{name}: answer recorded"}


def test_the_t_squared_explanation_gives_the_right_rates():
    reason = SPEC.keys["test_without_t_squared"]["without_t_squared"]["why_wrong"]["a"]
    assert "1/T²" in reason and "shrinks like 1/T," in reason
    assert_wrong(_choice("test_without_t_squared", "without_t_squared", "a"), "the KL between them")
