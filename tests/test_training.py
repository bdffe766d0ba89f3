"""Data, models, device choice and the training loops."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kdcourse import data, distillation_loss, models, training
from kdcourse.device import describe_device, pick_device


@pytest.fixture(scope="module")
def blobs():
    return data.make_overlapping_classes(n_classes=4, n_features=6, n_samples=800, overlap=0.8, seed=1)


@pytest.fixture(scope="module")
def trained_teacher(blobs):
    torch.manual_seed(0)
    teacher = models.make_mlp(blobs.num_features, blobs.num_classes, hidden=(64, 64))
    training.train(teacher, blobs, epochs=15, progress=False, device="cpu")
    return teacher


def test_datasets_are_deterministic_and_split():
    a = data.make_overlapping_classes(seed=3)
    b = data.make_overlapping_classes(seed=3)
    c = data.make_overlapping_classes(seed=4)
    torch.testing.assert_close(a.X_train, b.X_train)
    assert not torch.equal(a.X_train, c.X_train)
    assert a.sizes() == {"train": 1800, "val": 600, "test": 600}
    assert a.X_train.dtype == torch.float32 and a.y_train.dtype == torch.int64
    assert a.num_classes == 5 and a.num_features == 10


def test_overlap_controls_difficulty():
    from sklearn.linear_model import LogisticRegression

    scores = []
    for overlap in (0.3, 2.0):
        d = data.make_overlapping_classes(overlap=overlap, seed=0)
        clf = LogisticRegression(max_iter=500).fit(d.X_train.numpy(), d.y_train.numpy())
        scores.append(clf.score(d.X_test.numpy(), d.y_test.numpy()))
    assert scores[0] > 0.95 > scores[1]


def test_digits_are_bundled_and_standardised():
    d = data.load_digits_splits(seed=0)
    assert d.num_features == 64 and d.num_classes == 10
    assert sum(d.sizes().values()) == 1797
    assert d.X_train.mean().abs() < 1e-5


@pytest.mark.parametrize(
    "function, kwargs, error, pattern",
    [
        (data.make_overlapping_classes, dict(overlap=0), ValueError, r"overlap must be > 0 \(got 0.0\)"),
        (data.make_overlapping_classes, dict(n_classes=1), ValueError, r"n_classes must be >= 2 \(got 1\)"),
        (data.make_overlapping_classes, dict(n_classes=3.0), TypeError, r"n_classes must be an int, not float"),
        (data.make_overlapping_classes, dict(n_samples=20), ValueError, r"n_samples must be >= 50 \(got 20\)"),
        (data.make_overlapping_classes, dict(n_features=0), ValueError, r"n_features must be >= 1"),
        (data.make_overlapping_classes, dict(seed=-1), ValueError, r"seed must be in \[0, 4294967295\]"),
        (data.load_digits_splits, dict(val_fraction=0.6, test_fraction=0.5), ValueError,
         "val_fraction and test_fraction"),
        (data.load_digits_splits, dict(val_fraction=0.0), ValueError, r"val_fraction must be in \(0, 1\) \(got 0.0\)"),
        (data.load_digits_splits, dict(test_fraction="0.2"), TypeError, r"test_fraction must be a float"),
        (data.load_digits_splits, dict(seed=1.5), TypeError, r"seed must be an int, not float"),
    ],
)
def test_bad_data_arguments(function, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        function(**kwargs)


def test_make_mlp_shapes():
    model = models.make_mlp(5, 3, hidden=(7, 4))
    assert model(torch.zeros(2, 5)).shape == (2, 3)
    assert models.count_parameters(model) == 5 * 7 + 7 + 7 * 4 + 4 + 4 * 3 + 3
    assert models.count_parameters(models.make_mlp(5, 3, hidden=())) == 18
    with pytest.raises(ValueError, match=r"num_classes must be >= 1 \(got 0\)"):
        models.make_mlp(5, 0)
    with pytest.raises(ValueError, match=r"hidden\[1\] must be >= 1 \(got 0\)"):
        models.make_mlp(5, 3, hidden=(4, 0))
    with pytest.raises(TypeError, match=r"in_features must be an int, not float"):
        models.make_mlp(5.0, 3)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\) \(got 1.0\)"):
        models.make_mlp(5, 3, dropout=1.0)
    with pytest.raises(ValueError, match=r"width must be >= 1 \(got 0\)"):
        models.make_student(5, 3, width=0)
    assert models.count_parameters(models.make_student(5, 3, width=np.int64(4))) == 5 * 4 + 4 + 4 * 3 + 3


def test_device_choice(monkeypatch):
    monkeypatch.setenv("KDCOURSE_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    assert "KDCOURSE_DEVICE=cpu" in describe_device()
    monkeypatch.setenv("KDCOURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="device must be one of auto, cpu, cuda, mps"):
        pick_device()
    monkeypatch.delenv("KDCOURSE_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert pick_device().type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="'cuda' was requested but is not available"):
            pick_device("cuda")
        assert "no CUDA or MPS accelerator was found" in describe_device()


def test_training_is_deterministic_under_a_seed(blobs):
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        model = models.make_mlp(blobs.num_features, blobs.num_classes, hidden=(16,))
        history = training.train(model, blobs, epochs=3, progress=False, device="cpu", seed=2)
        runs.append((history.train_loss[1:], history.val_accuracy))
    assert runs[0] == runs[1]


def test_train_history_and_learning(blobs, trained_teacher):
    torch.manual_seed(1)
    model = models.make_mlp(blobs.num_features, blobs.num_classes, hidden=(16,))
    history = training.train(model, blobs, epochs=5, progress=False, device="cpu", reference=trained_teacher)
    assert len(history) == 6 and history.epoch == list(range(6))
    assert math.isnan(history.train_loss[0])
    assert history.val_accuracy[-1] > history.val_accuracy[0]
    assert history.train_loss[-1] < history.train_loss[1]
    assert not math.isnan(history.val_kl[-1])


def test_distilled_student_ends_closer_to_teacher(blobs, trained_teacher):
    torch.manual_seed(2)
    student = models.make_student(blobs.num_features, blobs.num_classes, width=8)
    teacher_state = {k: v.clone() for k, v in trained_teacher.state_dict().items()}
    history = training.distill(student, trained_teacher, blobs, epochs=10, lr=1e-2, temperature=2.0,
                               progress=False, device="cpu")
    assert history.val_kl[-1] < 0.5 * history.val_kl[0]
    assert history.val_agreement[-1] > history.val_agreement[0]
    assert history.val_agreement[-1] > 0.85
    for key, value in trained_teacher.state_dict().items():
        assert torch.equal(value, teacher_state[key]), f"teacher parameter {key} changed"


def test_reverse_distillation_and_alpha_run(blobs, trained_teacher):
    for kwargs in (dict(direction="reverse"), dict(direction="reverse", alpha=0.5), dict(alpha=0.5)):
        torch.manual_seed(3)
        student = models.make_student(blobs.num_features, blobs.num_classes, width=8)
        history = training.distill(student, trained_teacher, blobs, epochs=4, temperature=2.0,
                                   progress=False, device="cpu", **kwargs)
        assert history.val_kl[-1] < history.val_kl[0]


def test_evaluate_without_reference(blobs, trained_teacher):
    result = training.evaluate(trained_teacher, blobs.X_test, blobs.y_test)
    assert result["accuracy"] > 0.7 and math.isnan(result["kl"]) and math.isnan(result["agreement"])
    same = training.evaluate(trained_teacher, blobs.X_test, blobs.y_test, reference=trained_teacher)
    assert same["kl"] == pytest.approx(0.0, abs=1e-6) and same["agreement"] == 1.0


BAD_LOOP_ARGUMENTS = [
    (dict(epochs=-1), ValueError, r"epochs must be >= 0 \(got -1\)"),
    (dict(epochs=2.5), TypeError, r"epochs must be an int, not float \(2.5\)"),
    (dict(lr=0.0), ValueError, r"lr must be > 0 \(got 0.0\)"),
    (dict(lr="fast"), TypeError, r"lr must be a float \(a real number\), not str"),
    (dict(lr=math.inf), ValueError, r"lr must be finite"),
    (dict(batch_size=0), ValueError, r"batch_size must be >= 1 \(got 0\)"),
    (dict(batch_size="64"), TypeError, r"batch_size must be an int, not str"),
    (dict(seed=-1), ValueError, r"seed must be in \[0, 4294967295\] \(got -1\)"),
]


@pytest.mark.parametrize("kwargs, error, pattern", BAD_LOOP_ARGUMENTS)
def test_bad_training_arguments(blobs, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        training.train(models.make_mlp(blobs.num_features, blobs.num_classes), blobs, progress=False,
                       device="cpu", **kwargs)


@pytest.mark.parametrize("kwargs, error, pattern", BAD_LOOP_ARGUMENTS + [
    (dict(direction="sideways"), ValueError, r"direction must be one of 'forward', 'reverse' \(got 'sideways'\)"),
    (dict(temperature=0), ValueError, r"temperature must be > 0 \(got 0.0\)"),
    (dict(temperature="4"), TypeError, r"temperature must be a float \(a real number\), not str"),
    (dict(alpha=-0.1), ValueError, r"alpha must be in \[0, 1\] \(got -0.1\)"),
    (dict(alpha=True), TypeError, r"alpha must be a float \(a real number\), not bool"),
])
def test_bad_distill_arguments(blobs, trained_teacher, kwargs, error, pattern):
    student = models.make_student(blobs.num_features, blobs.num_classes)
    with pytest.raises(error, match=pattern):
        training.distill(student, trained_teacher, blobs, progress=False, device="cpu", **kwargs)


def test_seed_everything_validates_and_seeds():
    training.seed_everything(np.int64(7))
    a = (np.random.rand(), torch.rand(1).item())
    training.seed_everything(7)
    assert (np.random.rand(), torch.rand(1).item()) == a
    with pytest.raises(ValueError, match=r"seed must be in \[0, 4294967295\] \(got -3\)"):
        training.seed_everything(-3)
    with pytest.raises(TypeError, match=r"seed must be an int, not float"):
        training.seed_everything(1.0)


def test_progress_switch(monkeypatch):
    monkeypatch.setenv("KDCOURSE_PROGRESS", "0")
    assert training.progress_enabled() is False
    assert training.progress_enabled(True) is True
    monkeypatch.setenv("KDCOURSE_PROGRESS", "1")
    assert training.progress_enabled() is True


def test_progress_bar_goes_to_stderr_in_a_terminal(blobs, capsys):
    model = models.make_mlp(blobs.num_features, blobs.num_classes, hidden=(4,))
    training.train(model, blobs, epochs=2, progress=True, device="cpu")
    assert "train" in capsys.readouterr().err
    training.train(model, blobs, epochs=2, progress=False, device="cpu")
    assert capsys.readouterr().err == ""


class _RecordingOptimizer(torch.optim.Optimizer):
    """Stands in for Adam inside ``distill``: records each step's gradients and leaves the weights alone."""

    steps: list = []

    def __init__(self, params, lr=1e-3, **_ignored):
        super().__init__(params, {"lr": lr})
        _RecordingOptimizer.steps = []

    def step(self, closure=None):
        grads = [p.grad.detach().clone() for group in self.param_groups for p in group["params"]]
        _RecordingOptimizer.steps.append(grads)


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("temperature, alpha", [(1.0, 0.0), (3.0, 0.0), (4.0, 0.3), (10.0, 1.0), (0.5, 0.7)])
def test_distill_minimises_exactly_distillation_loss(blobs, trained_teacher, monkeypatch, direction, temperature,
                                                     alpha):
    """The loop's loss is the library's loss: same recorded value and same gradient in one full-batch step."""
    monkeypatch.setattr(torch.optim, "Adam", _RecordingOptimizer)  # distill builds its optimizer from this name
    torch.manual_seed(4)
    student = models.make_student(blobs.num_features, blobs.num_classes, width=8)
    reference = models.make_student(blobs.num_features, blobs.num_classes, width=8)
    reference.load_state_dict(student.state_dict())
    with torch.no_grad():
        v = trained_teacher.eval()(blobs.X_train)
    z = reference(blobs.X_train)
    expected = alpha * F.cross_entropy(z, blobs.y_train) + (1 - alpha) * distillation_loss(
        z, v, temperature, direction=direction)
    expected.backward()
    history = training.distill(student, trained_teacher, blobs, epochs=1, batch_size=100_000, temperature=temperature,
                               alpha=alpha, direction=direction, progress=False, device="cpu")
    assert history.train_loss[1] == pytest.approx(expected.item(), rel=1e-6)
    (recorded,) = _RecordingOptimizer.steps
    for grad, parameter in zip(recorded, reference.parameters()):
        torch.testing.assert_close(grad, parameter.grad, rtol=1e-5, atol=1e-7)
