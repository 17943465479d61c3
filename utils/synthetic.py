"""A small synthetic stand-in for Tiny ImageNet-200, written as real JPEG files.

It uses the official folder layout, so `utils.data.load_tiny_imagenet` reads it through the
same code path as the real data set (including single-channel JPEGs), with no download.

Each class is a coloured shape (disk, square, stripes, checkerboard, ...) drawn at a random
position and size on a random background, under strong pixel noise. Classes 2k and 2k+1
share a colour and differ in shape, so neither colour nor shape alone identifies a class, and
about one image in eight is grayscale (shape only): a small CNN learns it well above chance
in a few epochs, but not trivially.
"""

import json
import shutil
from pathlib import Path

import numpy as np

from utils.data_sources import (
    SYNTHETIC_MARKER,
    install_folder,
    remove_stale_temporaries,
    temporary_sibling,
)

SYNTHETIC_DATASET_NAME = "synthetic-tiny-imagenet"
SYNTHETIC_FOLDER_NAME = "synthetic-tiny-imagenet"
# SYNTHETIC_MARKER is written last into the generated folder; it names the data set and
# records the settings, which are the counts the loader then holds the folder to.
IMAGE_SIZE = 64
GRAYSCALE_FRACTION = 0.125
PIXEL_NOISE = 30.0
COLOUR_JITTER = 20.0
BACKGROUND_TINT = 20.0
SHAPES = (
    "disk",
    "square",
    "ring",
    "cross",
    "triangle",
    "diamond",
    "horizontal stripes",
    "vertical stripes",
    "checkerboard",
    "diagonal stripes",
)
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (40, 70, 220),
    "yellow": (230, 210, 40),
    "magenta": (210, 50, 200),
    "cyan": (40, 200, 210),
    "orange": (240, 130, 30),
    "purple": (120, 40, 170),
    "white": (235, 235, 235),
    "black": (20, 20, 20),
}
SIZE_BANDS = ((12, 20, "small"), (20, 28, "large"))
MAX_CLASSES = len(SHAPES) * len(COLOURS) * len(SIZE_BANDS)


def synthetic_wnid(index):
    """Returns the fake but well-formed WordNet-style id of synthetic class `index`.

    Args:
        index: the class number, 0-based.
    """
    return f"n9{index:07d}"


def class_recipe(index):
    """Returns (shape, colour name, size band) of synthetic class `index`.

    Args:
        index: the class number, 0 .. MAX_CLASSES - 1.
    """
    shape = index % len(SHAPES)
    # Classes 2k and 2k+1 share a colour; adding (index // len(SHAPES)) makes every
    # (shape, colour) pair unique within a size band.
    colour = (shape // 2 + index // len(SHAPES)) % len(COLOURS)
    band = index // (len(SHAPES) * len(COLOURS))
    return SHAPES[shape], list(COLOURS)[colour], SIZE_BANDS[band]


def _shape_masks(shape, dx, dy, radius):
    """Boolean masks (n, 64, 64) of `shape` for offsets dx, dy from each centre."""
    distance = np.sqrt(dx**2 + dy**2)
    inside_square = np.maximum(np.abs(dx), np.abs(dy)) < radius
    period = np.maximum(radius / 2.5, 2.0)
    if shape == "disk":
        return distance < radius
    if shape == "square":
        return inside_square
    if shape == "ring":
        return (distance < radius) & (distance > radius * 0.6)
    if shape == "cross":
        arm = radius / 3
        return ((np.abs(dx) < arm) & (np.abs(dy) < radius)) | (
            (np.abs(dy) < arm) & (np.abs(dx) < radius)
        )
    if shape == "triangle":
        return (dy > -radius) & (dy < radius) & (np.abs(dx) < (dy + radius) / 2)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) < radius
    if shape == "horizontal stripes":
        return inside_square & (np.floor(dy / period) % 2 == 0)
    if shape == "vertical stripes":
        return inside_square & (np.floor(dx / period) % 2 == 0)
    if shape == "checkerboard":
        return inside_square & ((np.floor(dx / period) + np.floor(dy / period)) % 2 == 0)
    return (distance < radius) & (np.floor((dx + dy) / period) % 2 == 0)


def render_class(index, count, rng):
    """Draws `count` images of synthetic class `index`.

    Args:
        index: the class number.
        count: how many images.
        rng: a numpy Generator.

    Returns:
        (images uint8 (count, 64, 64, 3), boxes int (count, 4) as x0, y0, x1, y1,
        grayscale bool (count,)).
    """
    shape, colour, (low, high, _) = class_recipe(index)
    radius = rng.uniform(low, high, size=(count, 1, 1))
    centre_x = rng.uniform(radius[:, 0, 0] * 0.6, IMAGE_SIZE - radius[:, 0, 0] * 0.6)[:, None, None]
    centre_y = rng.uniform(radius[:, 0, 0] * 0.6, IMAGE_SIZE - radius[:, 0, 0] * 0.6)[:, None, None]
    grid_y, grid_x = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    mask = _shape_masks(shape, grid_x[None] - centre_x, grid_y[None] - centre_y, radius)
    # A grayish background with a random tint, so the object's colour stands out.
    background = rng.uniform(60, 190, size=(count, 1, 1, 1)) + rng.normal(
        0, BACKGROUND_TINT, size=(count, 1, 1, 3)
    )
    foreground = np.asarray(COLOURS[colour], np.float32) + rng.normal(
        0, COLOUR_JITTER, size=(count, 1, 1, 3)
    )
    images = np.where(mask[..., None], foreground, background)
    images += rng.normal(0, PIXEL_NOISE, size=images.shape)  # strong noise: not trivial
    images = np.clip(np.rint(images), 0, 255).astype(np.uint8)
    boxes = np.stack(
        [centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius], axis=-1
    )[:, 0, 0]
    boxes = np.clip(np.rint(boxes), 0, IMAGE_SIZE - 1).astype(int)
    grayscale = rng.random(count) < GRAYSCALE_FRACTION
    return images, boxes, grayscale


def _write_jpeg(path, image, grayscale):
    import tensorflow as tf  # imported here so that importing this module stays light

    if grayscale:
        # ITU-R 601 luma, the same weights JPEG decoders use; one channel -> grayscale JPEG.
        luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        image = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]
    Path(path).write_bytes(tf.io.encode_jpeg(image, quality=90).numpy())


def make_synthetic_tiny_imagenet(dest, classes=10, images_per_class=40, val_per_class=10, seed=0):
    """Writes a synthetic data set in the official Tiny ImageNet-200 layout.

    Layout: wnids.txt, words.txt, train/<wnid>/images/<wnid>_<k>.JPEG,
    train/<wnid>/<wnid>_boxes.txt, val/images/val_<k>.JPEG, val/val_annotations.txt (no
    test/ split), plus `synthetic.json`, written last. The folder is reused as is when it
    already holds the same settings. Otherwise it is written to a temporary folder of this
    process and renamed into place (`utils.data_sources.install_folder`), so several processes
    may generate the same folder at once: the first complete copy is kept, since the others may
    already be reading it, and the later ones are deleted. A folder without the marker (a
    generation killed before its end) or with other settings is replaced.

    Args:
        dest: the parent folder; the data set goes to `<dest>/synthetic-tiny-imagenet`.
        classes: the number of classes, 1 .. MAX_CLASSES (200).
        images_per_class: training images per class (>= 1).
        val_per_class: validation images per class (>= 1).
        seed: seed of the random generator; the same settings give the same pixels.

    Returns:
        The path of the written folder (a `pathlib.Path`).
    """
    for name, value, low, high in (
        ("classes", classes, 1, MAX_CLASSES),
        ("images_per_class", images_per_class, 1, None),
        ("val_per_class", val_per_class, 1, None),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < low
            or (high and value > high)
        ):
            raise ValueError(f"{name}={value!r} must be an int from {low} to {high or 'any size'}.")
    settings = {
        "dataset": SYNTHETIC_DATASET_NAME,
        "classes": classes,
        "images_per_class": images_per_class,
        "val_per_class": val_per_class,
        "seed": seed,
    }
    target = Path(dest) / SYNTHETIC_FOLDER_NAME

    def holds_these_settings(folder):
        try:
            return json.loads((folder / SYNTHETIC_MARKER).read_text()) == settings
        except (OSError, ValueError):
            return False

    if holds_these_settings(target):
        return target
    Path(dest).mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(dest)
    temporary = temporary_sibling(target)
    try:
        _write_layout(temporary, settings)
        install_folder(temporary, target, holds_these_settings)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return target


def _write_layout(folder, settings):
    rng = np.random.default_rng(settings["seed"])
    wnids = [synthetic_wnid(index) for index in range(settings["classes"])]
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("".join(f"{wnid}\n" for wnid in wnids))
    words = []
    for index, wnid in enumerate(wnids):
        shape, colour, (_, _, size) = class_recipe(index)
        words.append(f"{wnid}\tsynthetic {size} {colour} {shape}\n")
    # Like the real words.txt, list synsets that are not classes too.
    words += [f"{synthetic_wnid(9_000_000 + k)}\tsynthetic unused synset {k}\n" for k in range(2)]
    (folder / "words.txt").write_text("".join(words))
    val_items = []
    for index, wnid in enumerate(wnids):
        images_folder = folder / "train" / wnid / "images"
        images_folder.mkdir(parents=True)
        total = settings["images_per_class"] + settings["val_per_class"]
        images, boxes, grayscale = render_class(index, total, rng)
        lines = []
        for k in range(settings["images_per_class"]):
            name = f"{wnid}_{k}.JPEG"
            _write_jpeg(images_folder / name, images[k], grayscale[k])
            lines.append(name + "\t" + "\t".join(str(v) for v in boxes[k]) + "\n")
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text("".join(lines))
        for k in range(settings["images_per_class"], total):
            val_items.append((wnid, images[k], boxes[k], grayscale[k]))
    lines = []
    # The real val split mixes the classes; so does this one.
    for number, item in enumerate(rng.permutation(len(val_items))):
        wnid, image, box, grayscale = val_items[item]
        name = f"val_{number}.JPEG"
        _write_jpeg(folder / "val" / "images" / name, image, grayscale)
        lines.append(f"{name}\t{wnid}\t" + "\t".join(str(v) for v in box) + "\n")
    (folder / "val" / "val_annotations.txt").write_text("".join(lines))
    (folder / SYNTHETIC_MARKER).write_text(json.dumps(settings))
