"""Reading images, bad input, cropping and the shared preprocessing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from emodetect.errors import ImageReadError
from emodetect.images import crop_face, load_image, prepare_faces, read_image


def _write_png(path, array):
    assert cv2.imwrite(str(path), array)
    return path


def test_read_jpeg_photo_as_bgr(paper_images):
    image = read_image(paper_images / "happy" / "1-2.jpg")

    assert image.shape == (350, 590, 3)
    assert image.dtype == np.uint8


def test_empty_file_raises(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")

    with pytest.raises(ImageReadError, match="empty"):
        read_image(path)


def test_truncated_jpeg_raises(paper_images, tmp_path):
    data = (paper_images / "happy" / "1-2.jpg").read_bytes()
    path = tmp_path / "truncated.jpg"
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(ImageReadError, match="truncated"):
        read_image(path)


def test_text_file_named_jpg_raises(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n")

    with pytest.raises(ImageReadError, match="Cannot decode"):
        read_image(path)


def test_missing_file_raises(tmp_path):
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "absent.png")


def test_folder_instead_of_file_raises(tmp_path):
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)


def test_greyscale_png_becomes_bgr(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    image = read_image(_write_png(tmp_path / "grey.png", grey))

    assert image.shape == (3, 4, 3)
    assert (image[..., 0] == grey).all()
    assert (image[..., 2] == grey).all()


def test_rgba_png_drops_alpha(tmp_path):
    bgra = np.zeros((5, 6, 4), dtype=np.uint8)
    bgra[..., 0] = 200  # blue
    bgra[..., 3] = 17
    image = read_image(_write_png(tmp_path / "rgba.png", bgra))

    assert image.shape == (5, 6, 3)
    assert (image[..., 0] == 200).all()
    assert (image[..., 1:] == 0).all()


def test_sixteen_bit_png_scaled_to_eight_bit(tmp_path):
    deep = np.full((4, 4), 65535, dtype=np.uint16)
    image = read_image(_write_png(tmp_path / "deep.png", deep))

    assert image.dtype == np.uint8
    assert (image == 255).all()


def test_one_pixel_image_reads(tmp_path):
    image = read_image(_write_png(tmp_path / "dot.png", np.full((1, 1, 3), 9, np.uint8)))

    assert image.shape == (1, 1, 3)


def test_load_image_rejects_wrong_shapes():
    with pytest.raises(ImageReadError, match="shape"):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageReadError, match="no pixels"):
        load_image(np.zeros((0, 4, 3), np.uint8))


def test_load_image_rejects_other_types():
    with pytest.raises(ImageReadError, match="received list"):
        load_image([[1, 2], [3, 4]])


def test_load_image_scales_float_arrays():
    image = load_image(np.ones((2, 2, 3), np.float32))

    assert image.dtype == np.uint8
    assert (image == 255).all()


def test_crop_face_is_square_with_margin():
    image = np.zeros((200, 300, 3), np.uint8)

    crop = crop_face(image, (100, 50, 140, 110), margin=0.25)

    assert crop.shape == (90, 90, 3)


def test_crop_face_pads_at_border():
    image = np.full((100, 100, 3), 7, np.uint8)

    crop = crop_face(image, (0, 0, 40, 40), margin=0.5)

    assert crop.shape == (80, 80, 3)
    assert (crop == 7).all()


def test_crop_face_rejects_empty_box():
    with pytest.raises(ValueError, match="x2 > x1"):
        crop_face(np.zeros((10, 10, 3), np.uint8), (5, 5, 5, 8))


def test_prepare_faces_greyscale_batch():
    faces = [np.full((60, 60, 3), 100, np.uint8), np.full((30, 30), 50, np.uint8)]

    batch = prepare_faces(faces, (48, 48), "grayscale")

    assert batch.shape == (2, 48, 48, 1)
    assert batch.dtype == np.float32
    assert batch[0].max() == pytest.approx(100)
    assert batch[1].max() == pytest.approx(50)


def test_prepare_faces_rgb_reverses_bgr():
    face = np.zeros((10, 10, 3), np.uint8)
    face[..., 0] = 255  # blue in BGR

    batch = prepare_faces([face], (8, 8), "rgb")

    assert batch.shape == (1, 8, 8, 3)
    assert (batch[0, ..., 2] == 255).all()
    assert (batch[0, ..., 0] == 0).all()


def test_prepare_faces_rejects_unknown_color_mode():
    with pytest.raises(ValueError, match="color_mode"):
        prepare_faces([np.zeros((4, 4), np.uint8)], (4, 4), "hsv")


def test_exif_rotated_jpeg_read_upright(paper_images, tmp_path):
    from PIL import Image

    upright = read_image(paper_images / "happy" / "1-2.jpg")
    # Store the photo turned on its side with EXIF orientation 6, which asks viewers to turn it upright again.
    sideways = Image.fromarray(np.ascontiguousarray(np.rot90(upright[..., ::-1], k=1)))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    sideways.save(path, exif=exif, quality=95)

    image = read_image(path)

    assert image.shape == upright.shape


def test_jpeg_with_trailing_data_reads(tmp_path):
    ok, encoded = cv2.imencode(".jpg", np.full((20, 30, 3), 90, np.uint8))
    path = tmp_path / "motion.jpg"
    path.write_bytes(encoded.tobytes() + bytes(10_000))

    assert read_image(path).shape == (20, 30, 3)


def test_png_claiming_huge_size_raises(tmp_path):
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(header)) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)

    with pytest.raises(ImageReadError, match="bomb.png"):
        read_image(path)


def test_float_array_above_one_raises():
    with pytest.raises(ImageReadError, match="0.0-1.0"):
        load_image(np.full((4, 4, 3), 200.0, np.float32))


def test_bool_array_becomes_black_and_white():
    image = load_image(np.array([[True, False]]))

    assert image[0, 0].tolist() == [255, 255, 255]
    assert image[0, 1].tolist() == [0, 0, 0]


def test_crop_face_box_outside_image_raises():
    with pytest.raises(ValueError, match="outside"):
        crop_face(np.full((100, 80, 3), 7, np.uint8), (10, 105, 20, 115))


def test_crop_face_partly_outside_is_square_edge_padded():
    crop = crop_face(np.full((100, 80, 3), 7, np.uint8), (70, 90, 90, 110))

    assert crop.shape == (20, 20, 3)
    assert (crop == 7).all()
