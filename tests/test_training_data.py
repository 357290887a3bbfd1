"""Class folders as datasets: listing, the fixed split over files, and skipped files."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from emodetect.errors import DatasetError
from emodetect.model_io import ModelMetadata
from emodetect.training.data import (
    ArrayDataset,
    FileDataset,
    duplicate_groups,
    fold_dataset,
    list_image_folder,
    load_arrays,
    split_dataset,
)
from emodetect.training.workflow import load_folder_folds, load_folder_splits


def _copy_faces(fer_val: Path, root: Path, classes: dict[str, int]) -> Path:
    """Copy the first FER2013 validation faces of each class into `root/<class>/`."""
    for name, count in classes.items():
        target = root / name
        target.mkdir(parents=True)
        for source in sorted((fer_val / name).iterdir())[:count]:
            shutil.copyfile(source, target / source.name)
    return root


def test_split_same_seed_same_files(paper_images):
    files = list_image_folder(paper_images)

    first = split_dataset(files, seed=3)
    second = split_dataset(list_image_folder(paper_images), seed=3)

    for part_a, part_b in zip(first, second):
        assert part_a.files == part_b.files
        assert part_a.labels.tolist() == part_b.labels.tolist()


def test_split_parts_disjoint_and_complete(paper_images):
    files = list_image_folder(paper_images)

    train, validation, test = split_dataset(files, seed=0)

    names = [set(part.files) for part in (train, validation, test)]
    assert not names[0] & names[1]
    assert not names[0] & names[2]
    assert not names[1] & names[2]
    assert names[0] | names[1] | names[2] == set(files.files)
    assert [len(train), len(validation), len(test)] == [211, 60, 30]


def test_split_keeps_group_together(paper_images):
    files = list_image_folder(paper_images)
    groups = np.arange(len(files)) // 4  # files in runs of four share a group

    parts = split_dataset(files, seed=0, groups=groups)

    part_of = {path: index for index, part in enumerate(parts) for path in part.files}
    assert set(part_of) == set(files.files)
    for group in np.unique(groups):
        members = [files.files[index] for index in np.flatnonzero(groups == group)]
        assert len({part_of[path] for path in members}) == 1


def test_split_grouped_sizes_near_fractions(paper_images):
    files = list_image_folder(paper_images)
    groups = np.arange(len(files)) // 4

    sizes = [len(part) for part in split_dataset(files, seed=0, groups=groups)]

    # Parts take whole groups of up to four files, so each size is within a few files of 70/20/10.
    assert abs(sizes[0] - 211) <= 8
    assert abs(sizes[1] - 60) <= 8
    assert abs(sizes[2] - 30) <= 8


def test_split_single_file_groups_change_nothing(paper_images):
    files = list_image_folder(paper_images)
    groups = np.arange(len(files))[::-1] * 7  # one group per file, under other ids

    grouped = split_dataset(files, seed=5, groups=groups)
    plain = split_dataset(files, seed=5)

    assert [part.files for part in grouped] == [part.files for part in plain]


def test_split_rejects_wrong_group_count(paper_images):
    files = list_image_folder(paper_images)

    with pytest.raises(ValueError, match="one group id per file"):
        split_dataset(files, groups=[0, 1, 2])


def _folder_with_copies(fer_val: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """Copy 10 happy and 10 sad faces, plus a second file of the first three happy ones; map copy to original."""
    root = _copy_faces(fer_val, tmp_path / "faces", {"happy": 10, "sad": 10})
    copies = {}
    for index, original in enumerate(sorted((root / "happy").iterdir())[:3]):
        shutil.copyfile(original, root / "happy" / f"copy-{index}.png")
        copies[f"copy-{index}.png"] = original.name
    return root, copies


def test_load_splits_keep_copies_together(fer_val, tmp_path):
    root, copies = _folder_with_copies(fer_val, tmp_path)
    metadata = ModelMetadata(class_names=["happy", "sad"], input_size=(48, 48), color_mode="grayscale")

    for seed in range(4):
        splits = load_folder_splits(root, metadata, seed=seed)

        part_of = {path.name: index for index, part in enumerate(splits.files) for path in part.files}
        for copy, original in copies.items():
            assert part_of[copy] == part_of[original]


def test_split_by_file_separates_copies(fer_val, tmp_path):
    root, copies = _folder_with_copies(fer_val, tmp_path)
    metadata = ModelMetadata(class_names=["happy", "sad"], input_size=(48, 48), color_mode="grayscale")

    separated = 0
    for seed in range(4):
        splits = load_folder_splits(root, metadata, seed=seed, group_duplicates=False)
        part_of = {path.name: index for index, part in enumerate(splits.files) for path in part.files}
        separated += sum(part_of[copy] != part_of[original] for copy, original in copies.items())

    assert separated > 0


def test_split_keeps_class_balance(paper_images):
    train, validation, test = split_dataset(list_image_folder(paper_images), seed=0)

    assert train.class_counts() == {"happy": 106, "sad": 105}
    assert validation.class_counts() == {"happy": 30, "sad": 30}
    assert test.class_counts() == {"happy": 15, "sad": 15}


def test_split_other_seed_other_files(paper_images):
    files = list_image_folder(paper_images)

    test_seed_0 = set(split_dataset(files, seed=0)[2].files)
    test_seed_1 = set(split_dataset(files, seed=1)[2].files)

    assert test_seed_0 != test_seed_1


def test_split_ignores_class_order(paper_images):
    sorted_order = list_image_folder(paper_images)
    model_order = list_image_folder(paper_images, class_names=["sad", "happy"])

    test_sorted = split_dataset(sorted_order, seed=5)[2]
    test_model = split_dataset(model_order, seed=5)[2]

    assert set(test_sorted.files) == set(test_model.files)


def test_split_rejects_bad_fractions(paper_images):
    with pytest.raises(ValueError, match="sum to 1"):
        split_dataset(list_image_folder(paper_images), fractions=(0.7, 0.2, 0.2))


def test_single_class_folder_raises(fer_val, tmp_path):
    root = _copy_faces(fer_val, tmp_path / "data", {"happy": 3})

    with pytest.raises(DatasetError, match="at least 2 class sub-folders"):
        list_image_folder(root)


def test_empty_class_raises(fer_val, tmp_path):
    root = _copy_faces(fer_val, tmp_path / "data", {"happy": 3})
    (root / "sad").mkdir()
    (root / "sad" / "readme.txt").write_text("no faces here\n")

    with pytest.raises(DatasetError, match="Class 'sad' has no image files"):
        list_image_folder(root)


def test_missing_model_class_folder_raises(fer_val, tmp_path):
    root = _copy_faces(fer_val, tmp_path / "data", {"happy": 2, "sad": 2})

    with pytest.raises(DatasetError, match=r"no sub-folder for classes \['angry'\]"):
        list_image_folder(root, class_names=["happy", "sad", "angry"])


def test_extra_folder_left_out_with_warning(fer_val, tmp_path, caplog):
    root = _copy_faces(fer_val, tmp_path / "data", {"happy": 2, "sad": 2, "angry": 2})

    with caplog.at_level(logging.WARNING):
        files = list_image_folder(root, class_names=["sad", "happy"])

    assert files.class_names == ["sad", "happy"]
    assert files.class_counts() == {"sad": 2, "happy": 2}
    assert "['angry']" in caplog.text


def test_corrupt_files_skipped_in_one_warning(fer_val, paper_images, tmp_path, caplog):
    root = _copy_faces(fer_val, tmp_path / "data", {"happy": 4, "sad": 4})
    photo = (paper_images / "happy" / "1-2.jpg").read_bytes()
    (root / "happy" / "truncated.jpg").write_bytes(photo[: len(photo) // 2])
    (root / "happy" / "notes.jpg").write_text("these are not pixels\n")
    (root / "sad" / "empty.png").write_bytes(b"")
    (root / "sad" / "labels.csv").write_text("file,label\n")
    metadata = ModelMetadata(class_names=["happy", "sad"], input_size=(48, 48), color_mode="grayscale")

    with caplog.at_level(logging.WARNING, logger="emodetect"):
        splits = load_folder_splits(root, metadata, fractions=(1.0,))

    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith("Skipped 4 unreadable or non-image files")
    for name in ("truncated.jpg", "notes.jpg", "empty.png", "labels.csv"):
        assert name in warnings[0]
    assert len(splits.train) == 8
    assert sorted(path.name for path in splits.skipped) == ["empty.png", "labels.csv", "notes.jpg", "truncated.jpg"]


def test_load_arrays_records_undecodable(fer_val, tmp_path):
    root = _copy_faces(fer_val, tmp_path / "data", {"happy": 2, "sad": 2})
    (root / "sad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)

    data = load_arrays(list_image_folder(root), (48, 48), "grayscale")

    assert data.x.shape == (4, 48, 48, 1)
    assert data.x.dtype == np.float32
    assert [path.name for path in data.skipped] == ["broken.png"]
    assert "cannot be decoded" in data.skipped[root / "sad" / "broken.png"]


def test_folds_same_seed_same_files(paper_images):
    first = fold_dataset(list_image_folder(paper_images), folds=5, seed=2)
    second = fold_dataset(list_image_folder(paper_images), folds=5, seed=2)

    assert [part.files for part in first] == [part.files for part in second]


def test_folds_disjoint_and_complete(paper_images):
    files = list_image_folder(paper_images)

    folds = fold_dataset(files, folds=5, seed=0)

    names = [set(part.files) for part in folds]
    assert sum(len(part) for part in names) == len(files)
    assert set().union(*names) == set(files.files)
    assert [len(part) for part in folds] == [61, 60, 60, 60, 60]


def test_folds_keep_class_balance(paper_images):
    folds = fold_dataset(list_image_folder(paper_images), folds=5, seed=0)

    # 151 happy and 150 sad photos: each fold gets 30 or 31 of each class.
    for part in folds:
        counts = part.class_counts()
        assert 30 <= counts["happy"] <= 31
        assert 30 <= counts["sad"] <= 31


def test_folds_other_seed_other_files(paper_images):
    files = list_image_folder(paper_images)

    assert fold_dataset(files, seed=0)[0].files != fold_dataset(files, seed=1)[0].files


def test_folds_reject_fewer_than_two(paper_images):
    with pytest.raises(ValueError, match="folds between 2 and the number of files"):
        fold_dataset(list_image_folder(paper_images), folds=1)


def test_load_folds_loads_every_face(fer_val, tmp_path):
    root = _copy_faces(fer_val, tmp_path / "faces", {"happy": 7, "sad": 5})
    metadata = ModelMetadata(class_names=["happy", "sad"], input_size=(48, 48), color_mode="grayscale")

    folds = load_folder_folds(root, metadata, folds=3, seed=0)

    assert [len(fold) for fold in folds] == [4, 4, 4]
    assert ArrayDataset.concatenate(folds).class_counts() == {"happy": 7, "sad": 5}
    assert folds[0].x.shape == (4, 48, 48, 1)


def test_concatenate_keeps_row_order(fer_val, tmp_path):
    root = _copy_faces(fer_val, tmp_path / "faces", {"happy": 2, "sad": 2})
    parts = split_dataset(list_image_folder(root), (0.5, 0.5), seed=0)
    loaded = [load_arrays(part, (48, 48), "grayscale", report=False) for part in parts]

    joined = ArrayDataset.concatenate(loaded)

    assert joined.files == loaded[0].files + loaded[1].files
    np.testing.assert_array_equal(joined.x, np.concatenate([loaded[0].x, loaded[1].x]))
    assert joined.y.tolist() == loaded[0].y.tolist() + loaded[1].y.tolist()


def test_concatenate_rejects_other_classes():
    happy_sad = ArrayDataset(np.zeros((1, 48, 48, 1), np.float32), np.array([0]), ["happy", "sad"])
    sad_happy = ArrayDataset(np.zeros((1, 48, 48, 1), np.float32), np.array([0]), ["sad", "happy"])

    with pytest.raises(ValueError, match="same class names"):
        ArrayDataset.concatenate([happy_sad, sad_happy])


def test_duplicate_groups_join_resized_copy(paper_images, tmp_path):
    import cv2

    root = tmp_path / "photos"
    (root / "happy").mkdir(parents=True)
    shutil.copyfile(paper_images / "happy" / "happy-person.jpeg", root / "happy" / "original.jpeg")
    shutil.copyfile(paper_images / "happy" / "1-2.jpg", root / "happy" / "other.jpg")
    image = cv2.imread(str(paper_images / "happy" / "happy-person.jpeg"))
    smaller = cv2.resize(image, (image.shape[1] // 3, image.shape[0] // 3), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(root / "happy" / "copy.jpg"), smaller, [cv2.IMWRITE_JPEG_QUALITY, 60])
    files = FileDataset(sorted((root / "happy").iterdir()), [0, 0, 0], ["happy"])

    groups = dict(zip([path.name for path in files.files], duplicate_groups(files).tolist()))

    assert groups["copy.jpg"] == groups["original.jpeg"]
    assert groups["other.jpg"] != groups["original.jpeg"]


def test_duplicate_groups_unreadable_file_alone(paper_images, tmp_path):
    root = tmp_path / "photos"
    (root / "happy").mkdir(parents=True)
    (root / "happy" / "broken.jpg").write_bytes(b"not an image")
    (root / "happy" / "empty.png").write_bytes(b"")
    shutil.copyfile(paper_images / "happy" / "1-2.jpg", root / "happy" / "photo.jpg")
    files = FileDataset(sorted((root / "happy").iterdir()), [0, 0, 0], ["happy"])

    groups = duplicate_groups(files)

    assert len(set(groups.tolist())) == len(files)


def test_folds_keep_group_together(paper_images):
    files = list_image_folder(paper_images)
    groups = np.arange(len(files)) // 4  # files in runs of four share a group

    folds = fold_dataset(files, folds=5, seed=0, groups=groups)

    fold_of = {path: index for index, part in enumerate(folds) for path in part.files}
    for group in np.unique(groups):
        members = [files.files[index] for index in np.flatnonzero(groups == group)]
        assert len({fold_of[path] for path in members}) == 1


def test_folds_reject_wrong_group_count(paper_images):
    files = list_image_folder(paper_images)

    with pytest.raises(ValueError, match="one group id per file"):
        fold_dataset(files, folds=5, groups=[0, 1, 2])


def test_folds_reject_more_folds_than_files(fer_val, tmp_path):
    root = _copy_faces(fer_val, tmp_path / "faces", {"happy": 1})
    files = FileDataset(sorted((root / "happy").iterdir()), [0], ["happy"])

    with pytest.raises(ValueError, match=r"number of files or groups of files \(1\), received 2"):
        fold_dataset(files, folds=2)


def test_load_folds_warns_about_conflicting_copies(fer_val, tmp_path, caplog):
    root = _copy_faces(fer_val, tmp_path / "faces", {"happy": 4, "sad": 4})
    duplicate = sorted((root / "happy").iterdir())[0]
    shutil.copyfile(duplicate, root / "sad" / "same-picture.png")
    metadata = ModelMetadata(class_names=["happy", "sad"], input_size=(48, 48), color_mode="grayscale")

    with caplog.at_level(logging.INFO, logger="emodetect.training.workflow"):
        folds = load_folder_folds(root, metadata, folds=3, seed=0)

    fold_of = {path.name: index for index, fold in enumerate(folds) for path in fold.files}
    assert fold_of["same-picture.png"] == fold_of[duplicate.name]
    assert "filed under different classes" in caplog.text
    assert "same-picture.png" in caplog.text


@pytest.mark.parametrize("recorded, grouped", [(None, False), (False, False), (True, True)])
def test_evaluate_subset_splits_as_training_recorded(fer_val, tmp_path, monkeypatch, recorded, grouped):
    from emodetect.training import workflow

    root, _ = _folder_with_copies(fer_val, tmp_path)
    model, metadata = workflow.load_base_model("happy-sad")
    if recorded is not None:
        metadata.extra.setdefault("training", {})["group_duplicates"] = recorded
    calls = []
    real_split = workflow.split_dataset

    def recording_split(files, fractions, seed=0, groups=None):
        calls.append(groups)
        return real_split(files, fractions, seed=seed, groups=groups)

    monkeypatch.setattr(workflow, "split_dataset", recording_split)

    workflow.evaluate_folder((model, metadata), root, subset="test")

    assert len(calls) == 1
    assert (calls[0] is not None) is grouped
