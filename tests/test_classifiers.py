"""The shipped classifier on real FER2013 faces, the registry, and saved-model metadata."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from emodetect.classifiers import KerasEmotionClassifier, create_classifier, list_classifiers, shipped_model_path
from emodetect.errors import ModelFormatError, UnknownBackendError
from emodetect.images import read_image
from emodetect.model_io import METADATA_MEMBER, ModelMetadata, read_metadata, save_model

SAMPLE_PER_CLASS = 60


@pytest.fixture(scope="module")
def happy_sad():
    return create_classifier("happy-sad")


def _sample_faces(folder, count):
    # Every k-th file, in sorted order, gives a fixed sample spread over the whole folder.
    files = sorted(folder.iterdir())
    step = max(1, len(files) // count)
    return [read_image(path) for path in files[::step][:count]]


def test_shipped_model_loads_by_name(happy_sad):
    assert isinstance(happy_sad, KerasEmotionClassifier)
    assert happy_sad.class_names == ("happy", "sad")


def test_shipped_model_metadata_without_tensorflow():
    metadata = read_metadata(shipped_model_path("happy-sad"))

    assert metadata.class_names == ["happy", "sad"]
    assert metadata.input_size == (48, 48)
    assert metadata.color_mode == "grayscale"


def test_shipped_model_accuracy_on_fer_faces(happy_sad, fer_val):
    happy = _sample_faces(fer_val / "happy", SAMPLE_PER_CLASS)
    sad = _sample_faces(fer_val / "sad", SAMPLE_PER_CLASS)

    predicted = happy_sad.predict(happy + sad)

    happy_recall = predicted[:SAMPLE_PER_CLASS].count("happy") / SAMPLE_PER_CLASS
    sad_recall = predicted[SAMPLE_PER_CLASS:].count("sad") / SAMPLE_PER_CLASS
    # The model scores about 0.9 balanced accuracy; 0.75 fails a broken export, not ordinary noise.
    assert happy_recall >= 0.75
    assert sad_recall >= 0.75


def test_probabilities_are_rows_summing_to_one(happy_sad, fer_val):
    faces = _sample_faces(fer_val / "happy", 5)

    probabilities = happy_sad.predict_proba(faces)

    assert probabilities.shape == (5, 2)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_batch_split_matches_single_call(fer_val):
    faces = _sample_faces(fer_val / "sad", 10)
    whole = create_classifier("happy-sad", batch_size=64).predict_proba(faces)

    split = create_classifier("happy-sad", batch_size=3).predict_proba(faces)

    np.testing.assert_allclose(split, whole, atol=1e-5)


def test_colour_and_grey_crops_agree(happy_sad, fer_val):
    grey = _sample_faces(fer_val / "happy", 4)
    colour = [face.copy() for face in grey]  # read_image returns BGR with equal channels for grey files
    grey = [face[..., 0] for face in grey]

    np.testing.assert_allclose(happy_sad.predict_proba(grey), happy_sad.predict_proba(colour), atol=1e-5)


def test_empty_batch_gives_empty_probabilities(happy_sad):
    assert happy_sad.predict_proba([]).shape == (0, 2)


def test_unknown_classifier_lists_valid_names():
    with pytest.raises(UnknownBackendError, match="'happy-sad'"):
        create_classifier("seven-emotions-v9")


def test_list_classifiers_includes_shipped():
    assert "happy-sad" in list_classifiers()
    assert list_classifiers("sad*") == []


def _tiny_model(classes):
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))


def test_saved_model_round_trips_class_names(tmp_path):
    metadata = ModelMetadata(class_names=["sad", "neutral", "happy"], input_size=(8, 8), crop_margin=0.1)
    path = save_model(_tiny_model(3), tmp_path / "three.keras", metadata)

    classifier = create_classifier(str(path))

    assert classifier.class_names == ("sad", "neutral", "happy")
    assert classifier.crop_margin == pytest.approx(0.1)
    assert classifier.predict_proba([np.zeros((20, 20, 3), np.uint8)]).shape == (1, 3)


def test_save_rejects_output_size_mismatch(tmp_path):
    metadata = ModelMetadata(class_names=["happy", "sad"], input_size=(8, 8))

    with pytest.raises(ValueError, match="3 outputs"):
        save_model(_tiny_model(3), tmp_path / "wrong.keras", metadata)


def test_plain_keras_file_lacks_metadata(tmp_path):
    path = tmp_path / "plain.keras"
    _tiny_model(2).save(path)

    with pytest.raises(ModelFormatError, match=METADATA_MEMBER):
        create_classifier(str(path))


def test_non_zip_model_file_rejected(tmp_path):
    path = tmp_path / "junk.keras"
    path.write_text("not a zip")

    with pytest.raises(ModelFormatError, match="not a zip"):
        read_metadata(path)


def test_metadata_of_newer_format_rejected(tmp_path):
    saved = save_model(_tiny_model(2), tmp_path / "m.keras", ModelMetadata(["a", "b"], (8, 8)))
    path = tmp_path / "newer.keras"
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(path, "w") as target:
        for member in source.namelist():
            if member != METADATA_MEMBER:
                target.writestr(member, source.read(member))
        target.writestr(METADATA_MEMBER, '{"format": 99}')

    with pytest.raises(ModelFormatError, match="format 99"):
        read_metadata(path)


def test_sigmoid_output_maps_to_second_class(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(inputs)
    output = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="zeros", bias_initializer="ones")(x)
    metadata = ModelMetadata(["happy", "sad"], (8, 8), output="sigmoid")
    path = save_model(keras.Model(inputs, output), tmp_path / "sigmoid.keras", metadata)

    probabilities = create_classifier(str(path)).predict_proba([np.zeros((8, 8), np.uint8)])

    # sigmoid(1) = 0.731 is the probability of the second class, "sad".
    np.testing.assert_allclose(probabilities, [[1 - 0.7310586, 0.7310586]], atol=1e-5)


def test_temperature_softens_probabilities():
    from emodetect.classifiers.keras_model import outputs_to_probabilities

    metadata = ModelMetadata(["a", "b"], (8, 8), temperature=2.0)

    softened = outputs_to_probabilities(np.array([[0.9, 0.1]]), metadata)

    # Dividing log-probabilities by 2 takes square roots: sqrt(0.9) / (sqrt(0.9) + sqrt(0.1)) = 0.75.
    np.testing.assert_allclose(softened, [[0.75, 0.25]], atol=1e-6)


def _replace_metadata(saved, target, text):
    with zipfile.ZipFile(saved) as source, zipfile.ZipFile(target, "w") as archive:
        for member in source.namelist():
            if member != METADATA_MEMBER:
                archive.writestr(member, source.read(member))
        archive.writestr(METADATA_MEMBER, text)
    return target


def test_metadata_with_wrong_class_count_rejected(tmp_path):
    saved = save_model(_tiny_model(2), tmp_path / "two.keras", ModelMetadata(["a", "b"], (8, 8)))
    wrong = ModelMetadata(["a", "b", "c"], (8, 8)).to_json()
    path = _replace_metadata(saved, tmp_path / "three-names.keras", wrong)

    with pytest.raises(ModelFormatError, match="2 outputs"):
        create_classifier(str(path))


def test_metadata_with_wrong_input_size_rejected(tmp_path):
    saved = save_model(_tiny_model(2), tmp_path / "eight.keras", ModelMetadata(["a", "b"], (8, 8)))
    path = _replace_metadata(saved, tmp_path / "big.keras", ModelMetadata(["a", "b"], (64, 64)).to_json())

    with pytest.raises(ModelFormatError, match=r"\(64, 64, 1\)"):
        create_classifier(str(path))


@pytest.mark.parametrize("text", ["null", "[1, 2]", '{"format": 1, "class_names": ["a", "b"]}'])
def test_malformed_metadata_rejected(tmp_path, text):
    saved = save_model(_tiny_model(2), tmp_path / "m.keras", ModelMetadata(["a", "b"], (8, 8)))
    path = _replace_metadata(saved, tmp_path / "bad.keras", text)

    with pytest.raises(ModelFormatError):
        read_metadata(path)


def test_non_finite_temperature_rejected():
    with pytest.raises(ModelFormatError, match="finite"):
        ModelMetadata(["a", "b"], (8, 8), temperature=float("nan"))


def test_create_classifier_accepts_path_object(tmp_path):
    path = save_model(_tiny_model(2), tmp_path / "p.keras", ModelMetadata(["x", "y"], (8, 8)))

    assert create_classifier(path).class_names == ("x", "y")


def _one_fer_face(fer_val):
    return read_image(sorted((fer_val / "happy").iterdir())[0])


def test_float_and_uint16_crops_match_uint8(happy_sad, fer_val):
    face = _one_fer_face(fer_val)

    expected = happy_sad.predict_proba([face])

    np.testing.assert_allclose(happy_sad.predict_proba([face.astype(np.float32) / 255.0]), expected, atol=1e-5)
    np.testing.assert_allclose(happy_sad.predict_proba([face.astype(np.uint16) * 257]), expected, atol=1e-5)


def test_single_crop_without_list_rejected(happy_sad, fer_val):
    from emodetect.errors import ImageReadError

    with pytest.raises(ImageReadError, match=r"Wrap one crop in a list"):
        happy_sad.predict_proba(_one_fer_face(fer_val))


@pytest.mark.parametrize("crop", ["face.png", None, np.zeros((48, 48, 2), np.uint8)], ids=["path", "none", "two-channel"])
def test_crop_that_is_no_image_rejected(happy_sad, crop):
    from emodetect.errors import ImageReadError

    with pytest.raises(ImageReadError, match="face crop 0"):
        happy_sad.predict_proba([crop])


def test_stack_of_grey_crops_classified(happy_sad, fer_val):
    faces = [read_image(path)[..., 0] for path in sorted((fer_val / "sad").iterdir())[:3]]

    probabilities = happy_sad.predict_proba(np.stack(faces))

    np.testing.assert_allclose(probabilities, happy_sad.predict_proba(faces), atol=1e-6)


@pytest.mark.parametrize("faces", [None, "face.png"], ids=["none", "path"])
def test_crops_that_are_no_list_rejected(happy_sad, faces):
    from emodetect.errors import ImageReadError

    with pytest.raises(ImageReadError, match="Expected a list of face crops"):
        happy_sad.predict_proba(faces)
