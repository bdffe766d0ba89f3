"""Data, models, device choice and the training loops."""

import math

import pytest
import torch

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


def test_bad_data_arguments():
    with pytest.raises(ValueError, match="overlap must be > 0"):
        data.make_overlapping_classes(overlap=0)
    with pytest.raises(ValueError, match="n_classes must be at least 2"):
        data.make_overlapping_classes(n_classes=1)
    with pytest.raises(ValueError, match="val_fraction and test_fraction"):
        data.load_digits_splits(val_fraction=0.6, test_fraction=0.5)


def test_make_mlp_shapes():
    model = models.make_mlp(5, 3, hidden=(7, 4))
    assert model(torch.zeros(2, 5)).shape == (2, 3)
    assert models.count_parameters(model) == 5 * 7 + 7 + 7 * 4 + 4 + 4 * 3 + 3
    assert models.count_parameters(models.make_mlp(5, 3, hidden=())) == 18
    with pytest.raises(ValueError, match="layer sizes must be positive integers"):
        models.make_mlp(5, 0)
    with pytest.raises(ValueError, match="dropout must be in"):
        models.make_mlp(5, 3, dropout=1.0)


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


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(epochs=-1), "epochs must be a non-negative integer"),
        (dict(lr=0.0), "lr must be > 0"),
        (dict(batch_size=0), "batch_size must be a positive integer"),
    ],
)
def test_bad_training_arguments(blobs, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        training.train(models.make_mlp(blobs.num_features, blobs.num_classes), blobs, progress=False,
                       device="cpu", **kwargs)


def test_bad_distill_arguments(blobs, trained_teacher):
    student = models.make_student(blobs.num_features, blobs.num_classes)
    with pytest.raises(ValueError, match="direction must be one of 'forward', 'reverse'"):
        training.distill(student, trained_teacher, blobs, direction="sideways", progress=False)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        training.distill(student, trained_teacher, blobs, temperature=0, progress=False)
    with pytest.raises(ValueError, match=r"alpha must be a number in \[0, 1\]"):
        training.distill(student, trained_teacher, blobs, alpha=-0.1, progress=False)


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


@pytest.mark.parametrize("direction, alpha", [("forward", 0.0), ("forward", 0.3), ("reverse", 0.0)])
def test_recorded_training_loss_is_the_objective(blobs, trained_teacher, direction, alpha):
    # One full-batch step with a negligible learning rate: the recorded loss is the objective at the start.
    torch.manual_seed(4)
    student = models.make_student(blobs.num_features, blobs.num_classes, width=8)
    with torch.no_grad():
        z, v = student(blobs.X_train), trained_teacher.eval()(blobs.X_train)
        soft = distillation_loss(z, v, 3.0, direction=direction)
        expected = alpha * torch.nn.functional.cross_entropy(z, blobs.y_train) + (1 - alpha) * soft
    history = training.distill(student, trained_teacher, blobs, epochs=1, lr=1e-12, batch_size=100_000,
                               temperature=3.0, alpha=alpha, direction=direction, progress=False, device="cpu")
    assert history.train_loss[1] == pytest.approx(expected.item(), rel=1e-5)
