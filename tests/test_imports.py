"""Imports cost only what is used: each statement runs in a fresh interpreter and reports what it loaded."""

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "sklearn", "scipy", "matplotlib")


def loaded_after(code: str) -> set[str]:
    """The heavy top-level packages present in ``sys.modules`` after running ``code`` in a new Python."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(result.stdout.strip().splitlines()[-1])) & set(HEAVY)


@pytest.mark.parametrize(
    "code, allowed",
    [
        ("import kdcourse; kdcourse.__version__; dir(kdcourse)", set()),
        ("import kdcourse._validation", set()),
        ("from kdcourse import kl_divergence, entropy, softmax, js_divergence, cross_entropy\n"
         "kl_divergence([0.7, 0.3], [0.5, 0.5]); entropy([1.0, 0.0]); softmax([1.0, 2.0], 2.0)\n"
         "js_divergence([0.7, 0.3], [0.5, 0.5]); cross_entropy([0.7, 0.3], [0.5, 0.5])", set()),
        ("import kdcourse.losses; kdcourse.losses.DIRECTIONS", set()),
        ("import kdcourse.token_losses; kdcourse.token_losses.TOKEN_REDUCTIONS", set()),
        ("import kdcourse.fits", set()),
        ("import kdcourse.plots", {"matplotlib"}),
        ("import kdcourse.explorers", {"matplotlib"}),
        ("from kdcourse.explorers import temperature_view; temperature_view(temperature=2.0)", {"matplotlib"}),
        ("import kdcourse.training", {"torch"}),
    ],
)
def test_imports_load_only_what_they_need(code, allowed):
    assert loaded_after(code) <= allowed


def test_a_lazy_name_loads_its_module_on_first_use():
    assert loaded_after("import kdcourse; kdcourse.seed_everything") == {"torch"}
    assert loaded_after("import kdcourse; kdcourse.distillation_loss") == set()  # torch comes with the first call
