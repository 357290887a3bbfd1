"""Network builders, training on real faces and photos, saving, fine-tuning and plots."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from emodetect.training.architectures import build_architecture, list_architectures
from emodetect.training.data import FileDataset, load_arrays
from emodetect.training.evaluate import evaluate_arrays
from emodetect.training.train import TrainingConfig, freeze_feature_layers, train_classifier

# Layer output shapes of the paper's Fig. 1 network at 256x256x3 ('valid' 3x3 convolutions, 2x2 pooling).
FIG1_SHAPES = {
    "conv1": (254, 254, 16),
    "pool1": (127, 127, 16),
    "conv2": (125, 125, 32),
    "pool2": (62, 62, 32),
    "conv3": (60, 60, 16),
    "pool3": (30, 30, 16),
    "flatten": (14400,),
    "dense": (256,),
    "probability": (1,),
}


@pytest.fixture(scope="module")
def faces_and_photos(shared_dir: Path) -> tuple[FileDataset, FileDataset]:
    """Two clearly different real classes: 40 FER2013 face crops and the 40 smallest paper photos.

    Returns 30 + 30 training files and 10 + 10 held-out files.
    """
    faces = sorted((shared_dir / "data" / "fer2013" / "val" / "happy").iterdir())[:40]
    photos = sorted((shared_dir / "data" / "paper-happy-sad").glob("*/*"), key=lambda path: path.stat().st_size)[:40]
    dataset = FileDataset(faces + photos, np.array([0] * 40 + [1] * 40), ["fer-face", "web-photo"])
    train = np.r_[0:30, 40:70]
    held_out = np.r_[30:40, 70:80]
    return dataset.subset(train), dataset.subset(held_out)


def test_paper_baseline_matches_fig1():
    built = build_architecture("paper-baseline", 2)
    model = built.model

    assert model.count_params() == 3_696_625
    assert tuple(model.input_shape) == (None, 256, 256, 3)
    for name, shape in FIG1_SHAPES.items():
        assert tuple(model.get_layer(name).output.shape[1:]) == shape, name
    assert model.get_layer("probability").activation.__name__ == "sigmoid"
    for name in ("conv1", "conv2", "conv3", "dense"):
        assert model.get_layer(name).activation.__name__ == "relu", name
    assert (built.input_size, built.color_mode, built.output) == ((256, 256), "rgb", "sigmoid")


def test_paper_baseline_scales_to_unit_range():
    model = build_architecture("paper-baseline", 2).model

    scaled = model.get_layer("rescale")(np.array([[0.0, 127.5, 255.0]], dtype=np.float32))

    assert np.allclose(np.asarray(scaled), [[0.0, 0.5, 1.0]])


def test_paper_baseline_options_add_layers():
    plain = build_architecture("paper-baseline", 2).model
    extended = build_architecture("paper-baseline", 2, normalization=True, dropout=0.5).model

    plain_names = {layer.name for layer in plain.layers}
    extended_names = {layer.name for layer in extended.layers}
    assert {"bn1", "bn2", "bn3", "dropout"} <= extended_names
    assert not {"bn1", "dropout"} & plain_names


def test_paper_baseline_rejects_three_classes():
    with pytest.raises(ValueError, match="one sigmoid output for 2 classes"):
        build_architecture("paper-baseline", 3)


def test_registry_lists_builders():
    assert {"paper-baseline", "mini-vgg"} <= set(list_architectures())


def test_tiny_model_learns_faces_from_photos(faces_and_photos):
    train_files, held_out_files = faces_and_photos
    train = load_arrays(train_files, (48, 48), "rgb")
    held_out = load_arrays(held_out_files, (48, 48), "rgb")
    config = TrainingConfig(epochs=12, batch_size=16, learning_rate=3e-3, seed=0, verbose=0)

    result = train_classifier(train, None, "paper-baseline", config, architecture_options={"input_size": (48, 48)})
    report = evaluate_arrays(result.model, result.metadata, held_out)

    losses = result.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert result.history["accuracy"][-1] >= 0.8
    assert report["accuracy"] >= 0.7
    assert report["count"] == 20


@pytest.fixture(scope="module")
def saved_model(faces_and_photos, tmp_path_factory):
    """A paper-baseline at 32x32 trained for one epoch with classes ["web-photo", "fer-face"], and its file."""
    train_files, _ = faces_and_photos
    # Label 0 is "web-photo" here, so code that assumed sorted class order would swap the classes.
    swapped = FileDataset(train_files.files, 1 - train_files.labels, ["web-photo", "fer-face"])
    data = load_arrays(swapped, (32, 32), "rgb")
    config = TrainingConfig(epochs=1, batch_size=16, seed=0, verbose=0)
    result = train_classifier(data, None, "paper-baseline", config, architecture_options={"input_size": (32, 32)})
    return result, result.save(tmp_path_factory.mktemp("model") / "faces-or-photos.keras")


def test_saved_model_keeps_class_names(saved_model):
    from emodetect import Pipeline
    from emodetect.classifiers import create_classifier
    from emodetect.model_io import read_metadata

    _, path = saved_model

    metadata = read_metadata(path)

    assert create_classifier(str(path)).class_names == ("web-photo", "fer-face")
    assert Pipeline(detector="haar", classifier=str(path)).class_names == ("web-photo", "fer-face")
    assert metadata.input_size == (32, 32)
    assert metadata.color_mode == "rgb"
    assert metadata.output == "sigmoid"
    assert metadata.architecture == "paper-baseline"


def test_saved_model_predicts_like_trained(saved_model, faces_and_photos):
    from emodetect.classifiers import create_classifier
    from emodetect.images import read_image
    from emodetect.training.evaluate import predict_arrays

    result, path = saved_model
    _, held_out_files = faces_and_photos

    images = [read_image(file) for file in held_out_files.files]
    loaded = create_classifier(str(path)).predict_proba(images)
    trained = predict_arrays(result.model, result.metadata, load_arrays(held_out_files, (32, 32), "rgb").x)

    assert loaded.shape == (20, 2)
    np.testing.assert_allclose(loaded, trained, atol=1e-5)


def test_augmented_training_repeats_with_seed(faces_and_photos):
    train_files, _ = faces_and_photos
    data = load_arrays(train_files, (32, 32), "rgb")
    config = TrainingConfig(epochs=2, batch_size=16, seed=3, augment=True, verbose=0)
    options = {"input_size": (32, 32)}

    first = train_classifier(data, None, "paper-baseline", config, architecture_options=options)
    second = train_classifier(data, None, "paper-baseline", config, architecture_options=options)

    assert first.history["loss"] == second.history["loss"]


def test_checkpoint_saves_best_with_metadata(faces_and_photos, tmp_path):
    from emodetect.model_io import read_metadata

    train_files, held_out_files = faces_and_photos
    train = load_arrays(train_files, (32, 32), "rgb")
    validation = load_arrays(held_out_files, (32, 32), "rgb")
    checkpoint = tmp_path / "best.keras"
    config = TrainingConfig(epochs=2, batch_size=16, seed=0, verbose=0, checkpoint=checkpoint)

    result = train_classifier(train, validation, "paper-baseline", config, architecture_options={"input_size": (32, 32)})

    assert checkpoint.is_file()
    assert read_metadata(checkpoint).class_names == ["fer-face", "web-photo"]
    assert len(result.history["val_loss"]) == 2


def test_freeze_features_trains_only_head(faces_and_photos):
    train_files, _ = faces_and_photos
    built = build_architecture("mini-vgg", 2, width=4)
    data = load_arrays(train_files, built.input_size, built.color_mode)
    from emodetect.model_io import ModelMetadata

    metadata = ModelMetadata(["fer-face", "web-photo"], built.input_size, built.color_mode)
    before = {layer.name: [np.array(weight) for weight in layer.get_weights()] for layer in built.model.layers}
    config = TrainingConfig(epochs=1, batch_size=16, seed=0, verbose=0, freeze_features=True)

    result = train_classifier(data, None, config=config, model=built.model, metadata=metadata)

    trainable = {weight.path.split("/")[0] for weight in result.model.trainable_weights}
    assert trainable == {"logits"}
    after = {layer.name: layer.get_weights() for layer in result.model.layers}
    np.testing.assert_array_equal(after["conv1_1"][0], before["conv1_1"][0])
    np.testing.assert_array_equal(after["bn4_2"][2], before["bn4_2"][2])  # moving mean
    assert not np.array_equal(after["logits"][0], before["logits"][0])


def test_freeze_without_flatten_raises():
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))

    with pytest.raises(ValueError, match="no Flatten or global pooling layer"):
        freeze_feature_layers(model)


def test_training_rejects_class_order_mismatch(faces_and_photos):
    from emodetect.model_io import ModelMetadata

    train_files, _ = faces_and_photos
    built = build_architecture("mini-vgg", 2, width=4)
    data = load_arrays(train_files, built.input_size, built.color_mode)
    metadata = ModelMetadata(["web-photo", "fer-face"], built.input_size, built.color_mode)

    with pytest.raises(ValueError, match="model's classes are"):
        train_classifier(data, None, model=built.model, metadata=metadata)


def test_plots_written_as_png(tmp_path):
    from emodetect.training.plots import plot_confusion_matrix, plot_history

    history = {"loss": [0.7, 0.5, 0.4], "accuracy": [0.5, 0.7, 0.8], "val_loss": [0.6, 0.6, 0.5], "val_accuracy": [0.6, 0.6, 0.7]}
    report = {"confusion_matrix": [[8, 2], [3, 7]], "class_names": ["happy", "sad"]}

    curves = plot_history({"seed 0": history, "seed 1": history}, tmp_path / "curves.png", title="runs")
    confusion = plot_confusion_matrix(report, tmp_path / "confusion.png")

    for path in (curves, confusion):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert 5_000 < path.stat().st_size < 200_000


def test_plots_without_matplotlib_raise(tmp_path, monkeypatch):
    from emodetect.training.plots import plot_history

    # A None entry in sys.modules makes the import fail as it does when the package is absent.
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)

    with pytest.raises(ImportError, match=r'pip install "emodetect\[plots\]"'):
        plot_history({"loss": [1.0]}, tmp_path / "curves.png")
