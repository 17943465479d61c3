"""Tiny ImageNet-200: loading, decoded-array cache and tf.data pipelines.

Public API:
    load_tiny_imagenet(path=None, *, download=True, classes=None, images_per_class=None,
                       cache_dir=None) -> (x_train, y_train), (x_val, y_val)
    tiny_imagenet_classes(path=None, *, download=True, classes=None, cache_dir=None)
        -> [(wnid, name), ...] in label order
    tiny_imagenet_folder(path=None, *, download=True, cache_dir=None) -> Path
    download_tiny_imagenet(cache_dir=None, *, origin=None, file_hash=None) -> Path
    make_dataset(x, y, batch_size, *, training, seed=None) -> tf.data.Dataset
    make_synthetic_tiny_imagenet(dest, classes=10, images_per_class=40, val_per_class=10,
                                 seed=0) -> Path

Where files go (cache_dir defaults to `$KERAS_HOME/datasets`, i.e. `~/.keras/datasets`):
    <cache_dir>/tiny-imagenet-200.zip and tiny-imagenet-200_extracted/   the download
    <cache_dir>/tiny-imagenet-extracted/<archive>-<key>/                  local archives
    <cache_dir>/tiny-imagenet-decoded/<dataset>-<N>classes-<M>-<key>/     decoded arrays
The decoded cache of a selection is one folder of .npy files plus meta.json. It is rebuilt
(never used) when its format version, the selection, or the source files (names, sizes,
modification times, wnids.txt, val_annotations.txt) changed, or when an array is truncated or
its CRC-32 does not match. It is written to a hidden temporary folder and renamed into place
(`data_sources.install_folder`: when several processes decode the same selection at once, the
first usable cache is kept and the others' copies are deleted); the next cache build deletes
the temporary folders of killed processes (`data_sources.remove_stale_temporaries`).

A folder that breaks what the data set promises (an image listed twice in val_annotations.txt,
a class with missing or extra images) is refused with a ValueError saying where and how to
replace it (`data_sources.list_selection`).

The download URL and hash are `utils.data_sources.TINY_IMAGENET_URL` and `TINY_IMAGENET_MD5`
(read at call time, so a mirror can be set there), or arguments of `download_tiny_imagenet`.
"""

import hashlib
import json
import math
import os
import shutil
import sys
import zlib
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from utils import data_sources
from utils.config import AUGMENTATIONS
from utils.paths import display_path
from utils.data_sources import (  # noqa: F401  (re-exported)
    ENVIRONMENT_VARIABLE,
    TINY_IMAGENET_DATASET_NAME,
    TINY_IMAGENET_MD5,
    TINY_IMAGENET_URL,
    default_cache_dir,
    download_tiny_imagenet,
)
from utils.synthetic import SYNTHETIC_DATASET_NAME, SYNTHETIC_MARKER, make_synthetic_tiny_imagenet  # noqa: F401

IMAGE_SHAPE = (64, 64, 3)
CACHE_FORMAT_VERSION = 1
DECODED_CACHE_FOLDER = "tiny-imagenet-decoded"
ARRAY_NAMES = ("x_train", "y_train", "x_val", "y_val")
DECODE_BATCH = 256
# Bytes; Eigen's largest alignment (AVX-512). TensorFlow requires it of tensor buffers.
TENSOR_ALIGNMENT = 64


def aligned_empty(shape, dtype=np.uint8):
    """Returns an uninitialised array whose data starts on a 64-byte boundary.

    TensorFlow can wrap such an array without copying it (see `make_dataset`); it aborts
    the process on tensor buffers that are less aligned.

    Args:
        shape: the array shape.
        dtype: the numpy dtype.
    """
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    buffer = np.empty(size + TENSOR_ALIGNMENT, np.uint8)
    offset = (-buffer.ctypes.data) % TENSOR_ALIGNMENT
    return buffer[offset : offset + size].view(dtype).reshape(shape)


def _read_npy(path):
    """Maps a .npy file of the decoded cache into memory; ValueError when it is truncated.

    The mapping is copy-on-write: the array is writeable, the file never changes, and
    processes that load the same cache share its pages (the page cache) instead of each
    holding a copy. The cache files are only ever replaced whole, never rewritten in place,
    so a mapping stays valid.
    """
    with open(path, "rb") as file:
        version = np.lib.format.read_magic(file)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(file)
        else:
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(file)
        offset = file.tell()
    if fortran_order or dtype.hasobject:
        raise ValueError(f"{path} is not a C-ordered plain array")
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if os.path.getsize(path) != offset + size:
        raise ValueError(
            f"{path} is truncated or has extra bytes ({os.path.getsize(path)} bytes, expected {offset + size})"
        )
    if size == 0:
        return aligned_empty(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="c", offset=offset, shape=shape).view(np.ndarray)


def tiny_imagenet_folder(path=None, *, download=True, cache_dir=None):
    """Returns the checked `tiny-imagenet-200` folder, extracting or downloading once if needed.

    Args:
        path, download, cache_dir: as in `load_tiny_imagenet`.
    """
    return data_sources.resolve_dataset_folder(path, download=download, cache_dir=cache_dir)


def dataset_name(folder):
    """Returns SYNTHETIC_DATASET_NAME for a synthetic folder, else TINY_IMAGENET_DATASET_NAME.

    Args:
        folder: a `tiny-imagenet-200`-layout folder.
    """
    marker = Path(folder) / SYNTHETIC_MARKER
    if marker.exists():
        return json.loads(marker.read_text()).get("dataset", SYNTHETIC_DATASET_NAME)
    return TINY_IMAGENET_DATASET_NAME


def tiny_imagenet_classes(path=None, *, download=True, classes=None, cache_dir=None):
    """Returns [(wnid, human-readable name from words.txt), ...] in label order.

    Label i of `load_tiny_imagenet` with the same `path` and `classes` is entry i.

    Args:
        path, download, classes, cache_dir: as in `load_tiny_imagenet`.
    """
    folder = tiny_imagenet_folder(path, download=download, cache_dir=cache_dir)
    wnids = data_sources.select_classes(data_sources.read_wnids(folder), classes)
    names = data_sources.read_words(folder, wnids)
    return [(wnid, names[wnid]) for wnid in wnids]


def load_tiny_imagenet(
    path=None, *, download=True, classes=None, images_per_class=None, cache_dir=None
):
    """Loads Tiny ImageNet-200 (or a folder in its layout) as uint8 arrays.

    The first load of a selection decodes the JPEGs in parallel with tf.data and saves the
    arrays in the decoded cache; later loads read the cache (see the module docstring).

    Args:
        path: the `tiny-imagenet-200` folder, a folder containing it, or the archive
            (.zip as downloaded, or .tar.gz). None: `$TINY_IMAGENET_DIR` (folder or
            archive), else a copy in `cache_dir`, else the official download (if `download`).
        download: whether to download the official zip (237 MiB, MD5-checked) when no local
            copy is found. False raises FileNotFoundError saying how to get the data.
        classes: None (all 200), an int N (the first N wnids in sorted order) or a list of
            wnids. Labels are indices into the SORTED selected wnids, for train and val alike
            (see `tiny_imagenet_classes`).
        images_per_class: None (all 500, which each class must have) or M: the first M
            training images of each class in natural numeric file order (`_2` before `_10`).
            Validation keeps all images (50) of each selected class.
        cache_dir: cache folder for extractions and decoded arrays; None means
            `$KERAS_HOME/datasets` (`~/.keras/datasets`).

    Returns:
        (x_train, y_train), (x_val, y_val): uint8 (n, 64, 64, 3) images (grayscale JPEGs
        decoded to 3 equal channels) and int32 labels. Train rows go class by class, val
        rows in val_<k> order.

    Raises:
        ValueError: for a damaged copy (see `data_sources.list_selection`): an image listed
            twice in val_annotations.txt, a selected class with another number of validation
            images than the data set has, or with fewer training images than asked for (with
            `images_per_class=None`, another number than the data set has).
    """
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    folder = tiny_imagenet_folder(path, download=download, cache_dir=cache_dir)
    selection = data_sources.list_selection(folder, classes, images_per_class)
    images_per_class = None if images_per_class is None else int(images_per_class)  # numpy ints
    fingerprint = _source_fingerprint(selection, images_per_class)
    slot = cache_slot(cache_dir, selection, images_per_class)
    arrays = _read_cache(slot, fingerprint, selection)
    if arrays is None:
        arrays = {
            "x_train": decode_images(selection.train_files, description="training images"),
            "y_train": _aligned_copy(np.asarray(selection.train_labels, np.int32)),
            "x_val": decode_images(selection.val_files, description="validation images"),
            "y_val": _aligned_copy(np.asarray(selection.val_labels, np.int32)),
        }
        _write_cache(slot, arrays, fingerprint, selection)
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_val"], arrays["y_val"])


def _read_and_decode(file):
    image = tf.io.decode_jpeg(tf.io.read_file(file), channels=3)  # grayscale -> 3 channels
    return tf.ensure_shape(image, IMAGE_SHAPE)


def decode_images(files, *, description="images"):
    """Decodes 64x64 JPEG files into one uint8 array, in parallel, with a progress bar.

    Args:
        files: file paths, in the order of the output rows.
        description: what the progress bar says it is decoding.

    Returns:
        uint8 array (len(files), 64, 64, 3).

    Raises:
        ValueError: naming the first file that cannot be read or is not a 64x64 JPEG.
    """
    images = aligned_empty((len(files), *IMAGE_SHAPE), np.uint8)
    if not files:
        return images
    print(f"Decoding {len(files)} {description}...", flush=True)
    # A live bar in a terminal; elsewhere (notebooks, log files) one plain line at the
    # end, without the bar's terminal escape codes.
    progress = keras.utils.Progbar(
        len(files), unit_name="image", verbose=1 if sys.stdout.isatty() else 2
    )
    dataset = (
        tf.data.Dataset.from_tensor_slices(list(files))
        .map(_read_and_decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(DECODE_BATCH)
        .prefetch(tf.data.AUTOTUNE)
    )
    done = 0
    try:
        for batch in dataset:
            images[done : done + len(batch)] = batch.numpy()
            done += len(batch)
            progress.update(done)
    except tf.errors.OpError as error:
        # tf.data's error does not say which file failed: find it by decoding one by one.
        for file in files[done:]:
            try:
                _read_and_decode(tf.constant(file))
            except (tf.errors.OpError, ValueError) as file_error:
                reason = getattr(file_error, "message", str(file_error)).strip().splitlines()[0]
                raise ValueError(
                    f"Could not decode the image {file}: {reason}. It is unreadable or not a "
                    "64x64 JPEG; replace it with a good copy (extract or download the data set "
                    "again)."
                ) from None
        raise ValueError(f"Decoding {description} failed: {error.message}") from error
    return images


def _source_fingerprint(selection, images_per_class):
    """Hash of everything the arrays depend on: format, selection and the source files."""
    digest = hashlib.sha256()
    header = {
        "format_version": CACHE_FORMAT_VERSION,
        "wnids": list(selection.wnids),
        "images_per_class": images_per_class,
    }
    digest.update(json.dumps(header).encode())
    for name in ("wnids.txt", "val/val_annotations.txt"):
        digest.update((selection.folder / name).read_bytes())
    prefix = len(str(selection.folder)) + 1
    for kind, files in (("train", selection.train_files), ("val", selection.val_files)):
        for file in files:
            try:
                status = os.stat(file)
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"The {kind} image {file} (listed in "
                    f"{'val/val_annotations.txt' if kind == 'val' else 'the class folder'}) is "
                    "missing: the data set is incomplete; extract or download it again."
                ) from None
            digest.update(f"{file[prefix:]}|{status.st_size}|{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_slot(cache_dir, selection, images_per_class):
    """The folder of a selection's decoded arrays: one per source folder and selection."""
    key = hashlib.sha1(
        json.dumps(
            [str(selection.folder.resolve()), list(selection.wnids), images_per_class]
        ).encode()
    ).hexdigest()[:12]
    name = f"{dataset_name(selection.folder)}-{len(selection.wnids)}classes-{images_per_class or 'all'}-{key}"
    return Path(cache_dir) / DECODED_CACHE_FOLDER / name


def _checksum(array):
    return zlib.crc32(memoryview(np.ascontiguousarray(array)).cast("B"))


def _read_cache(slot, fingerprint, selection):
    """Returns the cached arrays, or None (after saying why) when missing, stale or damaged."""
    if not (slot / "meta.json").exists():
        return None
    try:
        return _checked_cache(slot, fingerprint, selection)
    except (OSError, ValueError, KeyError, TypeError, EOFError) as error:
        print(
            f"Not using the decoded cache {display_path(slot)}: {error}; rebuilding it.", flush=True
        )
        return None


def _cache_is_usable(slot, fingerprint, selection):
    try:
        _checked_cache(slot, fingerprint, selection)
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return False
    return True


def _checked_cache(slot, fingerprint, selection):
    """Returns the cached arrays; raises when they are missing, stale or damaged."""
    meta_file = slot / "meta.json"
    meta = json.loads(meta_file.read_text())
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_file.name} holds {json.dumps(meta)[:40]}, not a JSON object")
    if meta.get("format_version") != CACHE_FORMAT_VERSION:
        raise ValueError(f"format version {meta.get('format_version')} != {CACHE_FORMAT_VERSION}")
    if meta.get("fingerprint") != fingerprint:
        raise ValueError("the source files or the selection changed")
    expected_counts = {"train": len(selection.train_files), "val": len(selection.val_files)}
    if meta.get("counts") != expected_counts:
        raise ValueError(f"counts {meta.get('counts')} != {expected_counts}")
    arrays = {}
    for name in ARRAY_NAMES:
        array = _read_npy(slot / f"{name}.npy")
        count = expected_counts[name.split("_")[1]]
        shape = (count, *IMAGE_SHAPE) if name.startswith("x") else (count,)
        if array.shape != shape or str(array.dtype) != meta["dtypes"][name]:
            raise ValueError(f"{name} has shape {array.shape} {array.dtype}, expected {shape}")
        if _checksum(array) != meta["crc32"][name]:
            raise ValueError(f"{name} does not match its CRC-32")
        arrays[name] = array
    return arrays


def _write_cache(slot, arrays, fingerprint, selection):
    """Writes the arrays into a temporary folder, then renames it to `slot` (atomic), unless
    another process installed a usable cache there meanwhile (see `install_folder`)."""
    slot.parent.mkdir(parents=True, exist_ok=True)
    data_sources.remove_stale_temporaries(slot.parent)
    temporary = data_sources.temporary_sibling(slot)
    temporary.mkdir()
    try:
        for name in ARRAY_NAMES:
            np.save(temporary / f"{name}.npy", arrays[name], allow_pickle=False)
        meta = {
            "format_version": CACHE_FORMAT_VERSION,
            "fingerprint": fingerprint,
            "counts": {"train": len(arrays["x_train"]), "val": len(arrays["x_val"])},
            "dtypes": {name: str(arrays[name].dtype) for name in ARRAY_NAMES},
            "crc32": {name: _checksum(arrays[name]) for name in ARRAY_NAMES},
        }
        (temporary / "meta.json").write_text(json.dumps(meta, indent=1))
        data_sources.install_folder(
            temporary, slot, lambda folder: _cache_is_usable(folder, fingerprint, selection)
        )
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _aligned_copy(array):
    copy = aligned_empty(array.shape, array.dtype)
    copy[...] = array
    return copy


def _as_tensor(array):
    """Wraps `array` as a tensor without a copy when possible (DLPack), else copies it.

    tf.convert_to_tensor of the full training set takes seconds and twice its memory at
    peak; wrapping shares the numpy buffer. Arrays that are not C-contiguous, writeable and
    64-byte aligned are first copied into one that is.
    """
    if not array.size:
        return tf.convert_to_tensor(array)
    if not (
        array.flags.c_contiguous
        and array.flags.writeable
        and array.ctypes.data % TENSOR_ALIGNMENT == 0
    ):
        array = _aligned_copy(array)
    try:
        return tf.experimental.dlpack.from_dlpack(array.__dlpack__())
    except (BufferError, TypeError, ValueError, tf.errors.OpError):
        return tf.convert_to_tensor(array)  # a dtype DLPack does not carry


def _check_batch_size(batch_size, count, training):
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"batch_size={batch_size!r} must be an int >= 1.")
    if training and batch_size > count:
        raise ValueError(
            f"batch_size={batch_size} is larger than the {count} training images: every training "
            "batch must hold exactly batch_size images, so no batch could be made. Use a batch "
            f"size <= {count} or more images."
        )


# The random resized crops of the "scale" augmentation: a crop of this fraction of the
# image's area and this range of aspect ratios (width / height), resized back to the image
# size. The paper's ImageNet recipe crops 8% to 100% of a 256-to-480 px image down to 224
# px; on 64 px images a crop of 8% is 18 px wide, so the smallest crop here is a quarter.
CROP_AREA = (0.25, 1.0)
CROP_ASPECT_RATIO = (3 / 4, 4 / 3)


def _random_resized_crops(batch, seed):
    """Each image of a uint8 batch cropped at random (`CROP_AREA`, `CROP_ASPECT_RATIO`) and
    resized back to its size, bilinearly; the result is rounded back to uint8."""
    count = tf.shape(batch)[0]
    size = tf.shape(batch)[1:3]
    draws = tf.random.stateless_uniform([count, 4], seed=seed)
    area = CROP_AREA[0] + (CROP_AREA[1] - CROP_AREA[0]) * draws[:, 0]
    log_low, log_high = math.log(CROP_ASPECT_RATIO[0]), math.log(CROP_ASPECT_RATIO[1])
    ratio = tf.exp(log_low + (log_high - log_low) * draws[:, 1])
    # Height and width as fractions of the image's; a side that would leave it is cut to it.
    height = tf.minimum(tf.sqrt(area / ratio), 1.0)
    width = tf.minimum(tf.sqrt(area * ratio), 1.0)
    top = (1.0 - height) * draws[:, 2]
    left = (1.0 - width) * draws[:, 3]
    boxes = tf.stack([top, left, top + height, left + width], axis=1)
    crops = tf.image.crop_and_resize(
        tf.cast(batch, tf.float32), boxes, tf.range(count), size, method="bilinear"
    )
    return tf.cast(tf.round(tf.clip_by_value(crops, 0.0, 255.0)), batch.dtype)


def make_dataset(x, y, batch_size, *, training, seed=None, augmentation="flip"):
    """Builds the input pipeline over in-memory images.

    Images stay uint8 in [0, 255]: pixel scaling lives in the model (utils.models rescales
    by 1/255), in one place.

    Training: a new shuffle of all images every epoch, a random horizontal flip of each image
    (decided per image, applied to whole batches), and every batch holds exactly
    `batch_size` images (the remainder is dropped: batch statistics at small batch sizes are
    what the study measures). Validation: the input order, no flips, the last partial batch
    kept. Both prefetch. Batches are gathered by index, so the per-image cost is small.

    The pipeline reads `x` in place when it is C-contiguous and 64-byte aligned (as the
    arrays of `load_tiny_imagenet` are), so do not write into `x` while the dataset is used;
    other arrays are copied once.

    Args:
        x: images, array (n, height, width, channels), normally uint8.
        y: int labels, array (n,).
        batch_size: images per batch, int >= 1 (and <= n when training).
        training: True for the training pipeline, False for evaluation.
        seed: int for a reproducible sequence of shuffles and flips (a different one every
            epoch); None for a random one.
        augmentation: "flip" (a random horizontal flip of each training image) or "scale"
            (a random resized crop back to the image size, `CROP_AREA` of its area,
            `CROP_ASPECT_RATIO`, then the flip). Validation images are never augmented.

    Returns:
        tf.data.Dataset of (images (batch, H, W, C) of x's dtype, int32 labels (batch,)).
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y):
        raise ValueError(
            f"make_dataset needs images (n, height, width, channels) and labels (n,); got "
            f"shapes {x.shape} and {y.shape}."
        )
    _check_batch_size(batch_size, len(x), training)
    if augmentation not in AUGMENTATIONS:
        raise ValueError(
            f"Unknown augmentation {augmentation!r}; valid values are {AUGMENTATIONS}."
        )
    batch_size = int(batch_size)
    images = _as_tensor(x)
    labels = _as_tensor(y.astype(np.int32, copy=False))
    indices = tf.data.Dataset.range(len(x))
    if not training:
        dataset = indices.batch(batch_size).map(
            lambda index: (tf.gather(images, index), tf.gather(labels, index)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return _without_graph_rewrites(dataset.prefetch(tf.data.AUTOTUNE))
    # Shuffling indices, not images, makes a full-size buffer cheap.
    indices = indices.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    indices = indices.batch(batch_size, drop_remainder=True)
    # One stateless seed per batch, from a stream that changes every epoch.
    flip_seed = None if seed is None else seed + 1
    flip_seeds = tf.data.Dataset.random(seed=flip_seed, rerandomize_each_iteration=True).batch(2)

    def gather_and_flip(index, pair):
        batch = tf.gather(images, index)
        if augmentation == "scale":
            # Its own seed, so that the flips stay those of the same batch without crops.
            batch = _random_resized_crops(batch, tf.random.experimental.stateless_fold_in(pair, 1))
        flip = tf.random.stateless_uniform([tf.shape(index)[0]], seed=pair) < 0.5
        batch = tf.where(flip[:, None, None, None], tf.reverse(batch, axis=[2]), batch)
        return batch, tf.gather(labels, index)

    dataset = tf.data.Dataset.zip(indices, flip_seeds).map(
        gather_and_flip, num_parallel_calls=tf.data.AUTOTUNE
    )
    return _without_graph_rewrites(dataset.prefetch(tf.data.AUTOTUNE))


def _without_graph_rewrites(dataset):
    """Turns off tf.data's static graph rewrites for a pipeline that captures the images.

    The rewrites serialize the dataset graph, captured image tensor included, each time an
    iterator is made (every epoch): seconds and an extra copy of the images for the full data
    set. The pipeline is already explicitly parallel and prefetched, so nothing is lost.
    """
    options = tf.data.Options()
    options.experimental_optimization.apply_default_optimizations = False
    return dataset.with_options(options)
