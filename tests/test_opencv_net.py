"""The OpenCV copy of Keras classifiers: which models it covers, that it matches Keras, and when it is used."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from emodetect.classifiers import KerasEmotionClassifier, create_classifier
from emodetect.classifiers import keras_model, opencv_net
from emodetect.classifiers.opencv_net import build_opencv_net, run_opencv_net
from emodetect.images import prepare_faces, read_image
from emodetect.model_io import ModelMetadata


def _fer_faces(folder, count):
    return [read_image(path) for path in sorted(folder.iterdir())[:count]]


def _random_batch(shape, count=6, seed=1):
    return np.random.default_rng(seed).uniform(0, 255, size=(count, *shape)).astype(np.float32)


def _with_random_statistics(model, seed=2):
    # Fresh batch norms have mean 0 and variance 1, which would hide a wrong fold; give them real-looking values.
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights(
                [
                    rng.uniform(0.5, 2.0, w.shape) if "variance" in v.name or "gamma" in v.name else rng.normal(0, 0.5, w.shape)
                    for v, w in zip(layer.weights, layer.get_weights())
                ]
            )
    return model


def _small_cnn(rescale_offset=0.0, first_padding="valid", batch_norm_options=None):
    import keras

    layers = keras.layers
    inputs = keras.Input((16, 16, 1))
    x = layers.Rescaling(1 / 127.5, offset=rescale_offset)(inputs)
    x = layers.Conv2D(4, 3, padding=first_padding, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(6, 3, padding="same")(x)
    x = layers.BatchNormalization(**(batch_norm_options or {}))(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(3, activation="softmax")(x)
    return _with_random_statistics(keras.Model(inputs, outputs))


@pytest.mark.parametrize("name", ["happy-sad", "seven-emotions"])
def test_shipped_models_run_small_batches_through_opencv(name):
    assert create_classifier(name).uses_opencv


@pytest.mark.parametrize("count", [1, 5])
def test_opencv_copy_matches_tensorflow_on_fer_faces(fer_val, count):
    faces = _fer_faces(fer_val / "sad", count) + _fer_faces(fer_val / "happy", count)
    fast = create_classifier("seven-emotions")

    slow = create_classifier("seven-emotions", fast_path=False)

    assert not slow.uses_opencv
    np.testing.assert_allclose(fast.predict_proba(faces), slow.predict_proba(faces), atol=1e-5)


def test_batch_norms_and_rescaling_offset_are_folded():
    model = _small_cnn(rescale_offset=-1.0)

    net = build_opencv_net(model)

    assert net is not None
    batch = _random_batch((16, 16, 1))
    np.testing.assert_allclose(run_opencv_net(net, batch), model(batch, training=False), atol=1e-5)


def test_batch_norm_without_scale_or_centre_is_folded():
    model = _small_cnn(batch_norm_options={"scale": False, "center": False})

    net = build_opencv_net(model)

    assert net is not None
    batch = _random_batch((16, 16, 1))
    np.testing.assert_allclose(run_opencv_net(net, batch), model(batch, training=False), atol=1e-5)


def test_sequential_rgb_model_is_copied():
    import keras

    model = keras.Sequential(
        [
            keras.Input((12, 10, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )

    net = build_opencv_net(model)

    assert net is not None
    batch = _random_batch((12, 10, 3))
    np.testing.assert_allclose(run_opencv_net(net, batch), model(batch, training=False), atol=1e-5)


def test_residual_model_stays_with_tensorflow():
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(1, 3, padding="same")(inputs)
    x = keras.layers.Add()([inputs, x])
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax")(x)
    classifier = KerasEmotionClassifier(keras.Model(inputs, outputs), ModelMetadata(["a", "b"], (8, 8)))

    probabilities = classifier.predict_proba([np.full((8, 8), 100, np.uint8)])

    assert not classifier.uses_opencv
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_flatten_model_stays_with_tensorflow():
    import keras

    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])

    assert build_opencv_net(model) is None


def test_offset_before_same_padding_is_not_folded():
    model = _small_cnn(rescale_offset=-1.0, first_padding="same")

    assert build_opencv_net(model) is None


def test_disagreeing_copy_is_dropped_with_a_warning(monkeypatch, caplog):
    model = _small_cnn()
    monkeypatch.setattr(opencv_net, "run_opencv_net", lambda net, batch: np.full((len(batch), 3), 0.5, np.float32))

    with caplog.at_level(logging.WARNING, logger="emodetect.classifiers.opencv_net"):
        net = build_opencv_net(model)

    assert net is None
    assert "differs from the Keras model" in caplog.text


def test_only_small_batches_use_the_opencv_copy(monkeypatch, fer_val):
    classifier = create_classifier("happy-sad")
    sizes = []

    def counting_run(net, batch):
        sizes.append(len(batch))
        return run_opencv_net(net, batch)

    monkeypatch.setattr(keras_model, "run_opencv_net", counting_run)
    faces = _fer_faces(fer_val / "happy", KerasEmotionClassifier.OPENCV_MAX_BATCH + 1)

    classifier.predict_proba(faces[:-1])
    classifier.predict_proba(faces)

    assert sizes == [KerasEmotionClassifier.OPENCV_MAX_BATCH]


def test_opencv_input_is_the_shared_preprocessing(fer_val):
    # The copy takes the same `prepare_faces` batch as Keras, so training and inference stay one function.
    classifier = create_classifier("happy-sad")
    faces = _fer_faces(fer_val / "happy", 2)
    batch = prepare_faces(faces, classifier.metadata.input_size, classifier.metadata.color_mode)

    outputs = run_opencv_net(classifier._opencv_net, batch)

    np.testing.assert_allclose(outputs, classifier.model(batch, training=False), atol=1e-5)


def test_batch_norm_after_an_activation_stays_with_tensorflow():
    import keras

    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(2, 3, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2),
        ]
    )

    assert build_opencv_net(model) is None


def test_trailing_rescaling_stays_with_tensorflow():
    import keras

    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3), keras.layers.GlobalAveragePooling2D(), keras.layers.Rescaling(2.0)]
    )

    assert build_opencv_net(model) is None


def test_model_with_two_outputs_loads_without_copy():
    import keras

    inputs = keras.Input((8, 8, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(inputs))
    model = keras.Model(inputs, [keras.layers.Dense(2)(pooled), keras.layers.Dense(3)(pooled)])

    assert build_opencv_net(model) is None


def test_shared_classifier_is_thread_safe(fer_val):
    from concurrent.futures import ThreadPoolExecutor

    classifier = create_classifier("happy-sad")
    faces = _fer_faces(fer_val / "sad", 6) + _fer_faces(fer_val / "happy", 6)
    expected = [classifier.predict_proba([face]) for face in faces]

    # Each thread classifies single faces, which all go through the one OpenCV copy.
    with ThreadPoolExecutor(max_workers=3) as pool:
        received = list(pool.map(lambda face: classifier.predict_proba([face]), faces * 10))

    for index, probabilities in enumerate(received):
        np.testing.assert_allclose(probabilities, expected[index % len(faces)], atol=1e-6)


def test_single_output_in_a_list_is_copied():
    import keras

    inputs = keras.Input((8, 8, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(2, 3)(inputs))
    model = keras.Model(inputs, [keras.layers.Dense(3, activation="softmax")(pooled)])

    net = build_opencv_net(model)

    assert net is not None
    batch = _random_batch((8, 8, 1))
    outputs = model(batch, training=False)
    # Keras may return the one output as it is or inside a list.
    expected = outputs[0] if isinstance(outputs, (list, tuple)) else outputs
    np.testing.assert_allclose(run_opencv_net(net, batch), expected, atol=1e-5)
