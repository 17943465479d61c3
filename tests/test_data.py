"""Tests of utils.data: loading, caching, damaged copies, builds by several processes at once,
download, pipelines and the synthetic set."""

import hashlib
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import threading
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from utils import data, data_sources, synthetic
from utils.paths import display_path

# Read before the isolation fixture below hides the environment from the other tests.
REAL_DATA = os.environ.get(data.ENVIRONMENT_VARIABLE)
REAL_CACHE_DIR = data.default_cache_dir()


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    """No test reads or writes ~/.keras or sees a TINY_IMAGENET_DIR from outside."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv(data.ENVIRONMENT_VARIABLE, raising=False)
    # The loopback server must be reached directly even where a proxy is configured.
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def decode(file):
    return tf.io.decode_jpeg(tf.io.read_file(str(file)), channels=3).numpy()


def channels_in_file(file):
    return int(tf.io.decode_jpeg(tf.io.read_file(str(file)), channels=0).shape[-1])


def read_annotations(folder):
    rows = [
        line.split("\t")
        for line in (Path(folder) / "val" / "val_annotations.txt").read_text().splitlines()
    ]
    return {row[0]: row[1] for row in rows}


def copy_dataset(folder, destination):
    return Path(shutil.copytree(folder, Path(destination) / "tiny-imagenet-200"))


def decoded_slots(cache_dir):
    root = Path(cache_dir) / data.DECODED_CACHE_FOLDER
    return sorted(root.iterdir()) if root.exists() else []


def counting_decoder(monkeypatch):
    calls = []
    original = data.decode_images

    def counted(files, **kwargs):
        calls.append(len(files))
        return original(files, **kwargs)

    monkeypatch.setattr(data, "decode_images", counted)
    return calls


def failing_decoder(monkeypatch):
    def fail(files, **kwargs):
        raise AssertionError("the images were decoded although a valid cache exists")

    monkeypatch.setattr(data, "decode_images", fail)


def make_zip(folder, archive, top="tiny-imagenet-200"):
    """Zips `folder` under the top-level name `top`, by default tiny-imagenet-200/ like the
    official archive."""
    with zipfile.ZipFile(archive, "w") as opened:
        for file in sorted(Path(folder).rglob("*")):
            opened.write(file, Path(top) / file.relative_to(folder))
    return archive


def make_tar_gz(folder, archive):
    with tarfile.open(archive, "w:gz") as opened:
        opened.add(folder, arcname="tiny-imagenet-200")
    return archive


# ----------------------------------------------------------------------------------------
# The synthetic data set


def test_synthetic_layout(synthetic_tiny_imagenet):
    folder = synthetic_tiny_imagenet
    wnids = (folder / "wnids.txt").read_text().split()
    assert wnids == [synthetic.synthetic_wnid(index) for index in range(6)]
    assert all(len(wnid) == 9 and wnid.startswith("n9") and wnid[1:].isdigit() for wnid in wnids)
    words = dict(line.split("\t") for line in (folder / "words.txt").read_text().splitlines())
    assert set(wnids) < set(words)  # like the real words.txt, it lists other synsets too
    for wnid in wnids:
        images = sorted((folder / "train" / wnid / "images").iterdir())
        assert len(images) == 12 and all(file.suffix == ".JPEG" for file in images)
        boxes = (folder / "train" / wnid / f"{wnid}_boxes.txt").read_text().splitlines()
        assert len(boxes) == 12 and all(len(line.split("\t")) == 5 for line in boxes)
    annotations = read_annotations(folder)
    assert len(annotations) == 30 == len(list((folder / "val" / "images").iterdir()))
    assert sorted(annotations.values()) == sorted(wnids * 5)
    assert (
        json.loads((folder / synthetic.SYNTHETIC_MARKER).read_text())["dataset"]
        == data.SYNTHETIC_DATASET_NAME
    )
    assert not (folder / "test").exists()


def test_synthetic_has_grayscale_and_colour_jpegs(synthetic_tiny_imagenet):
    files = sorted(synthetic_tiny_imagenet.rglob("*.JPEG"))
    channels = [channels_in_file(file) for file in files]
    assert 1 in channels and 3 in channels
    assert all(decode(file).shape == (64, 64, 3) for file in files[:5])


def test_synthetic_is_deterministic_and_reused(tmp_path):
    first = synthetic.make_synthetic_tiny_imagenet(
        tmp_path / "a", classes=2, images_per_class=3, val_per_class=2
    )
    second = synthetic.make_synthetic_tiny_imagenet(
        tmp_path / "b", classes=2, images_per_class=3, val_per_class=2
    )
    other_seed = synthetic.make_synthetic_tiny_imagenet(
        tmp_path / "c", classes=2, images_per_class=3, val_per_class=2, seed=1
    )
    name = "train/n90000001/images/n90000001_2.JPEG"
    assert (first / name).read_bytes() == (second / name).read_bytes()
    assert (first / name).read_bytes() != (other_seed / name).read_bytes()
    stamp = (first / name).stat().st_mtime_ns
    assert (
        synthetic.make_synthetic_tiny_imagenet(
            tmp_path / "a", classes=2, images_per_class=3, val_per_class=2
        )
        == first
    )
    assert (first / name).stat().st_mtime_ns == stamp  # same settings: reused, not rewritten
    synthetic.make_synthetic_tiny_imagenet(
        tmp_path / "a", classes=3, images_per_class=3, val_per_class=2
    )
    assert len((first / "wnids.txt").read_text().split()) == 3
    assert [path.name for path in (tmp_path / "a").iterdir()] == [synthetic.SYNTHETIC_FOLDER_NAME]


@pytest.mark.parametrize(
    "arguments", [{"classes": 0}, {"classes": 201}, {"images_per_class": 0}, {"val_per_class": 1.5}]
)
def test_synthetic_rejects_bad_sizes(tmp_path, arguments):
    with pytest.raises(ValueError, match=next(iter(arguments))):
        synthetic.make_synthetic_tiny_imagenet(tmp_path, **arguments)


def test_synthetic_classes_are_distinct():
    recipes = [synthetic.class_recipe(index) for index in range(synthetic.MAX_CLASSES)]
    assert len(set(recipes)) == synthetic.MAX_CLASSES == 200


@pytest.mark.slow
def test_synthetic_is_learnable_but_not_trivial(tmp_path):
    import keras

    folder = synthetic.make_synthetic_tiny_imagenet(
        tmp_path, classes=10, images_per_class=40, val_per_class=10
    )
    (x_train, y_train), (x_val, y_val) = data.load_tiny_imagenet(folder)
    keras.utils.set_random_seed(0)
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((64, 64, 3)),
            layers.Rescaling(1 / 255),
            layers.Conv2D(32, 5, strides=2, use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    model.fit(
        data.make_dataset(x_train, y_train, 20, training=True, seed=0),
        epochs=12,
        shuffle=False,
        verbose=0,
    )
    _, accuracy = model.evaluate(x_val, y_val, verbose=0)
    assert accuracy >= 0.25  # chance is 0.10
    # Not trivial: the mean colour of an image (nearest class mean) is far from enough.
    mean_colour = lambda x: x.reshape(len(x), -1, 3).mean(axis=1)  # noqa: E731
    centres = np.stack([mean_colour(x_train[y_train == label]).mean(axis=0) for label in range(10)])
    distances = ((mean_colour(x_val)[:, None] - centres[None]) ** 2).sum(axis=-1)
    assert (distances.argmin(axis=1) == y_val).mean() < 0.5


# ----------------------------------------------------------------------------------------
# Loading


def test_load_counts_shapes_and_types(synthetic_tiny_imagenet):
    (x_train, y_train), (x_val, y_val) = data.load_tiny_imagenet(synthetic_tiny_imagenet)
    assert x_train.shape == (72, 64, 64, 3) and x_val.shape == (30, 64, 64, 3)
    assert x_train.dtype == np.uint8 and x_val.dtype == np.uint8
    assert y_train.dtype == np.int32 and y_val.dtype == np.int32
    assert np.bincount(y_train).tolist() == [12] * 6
    assert np.bincount(y_val).tolist() == [5] * 6


def test_rows_follow_the_documented_file_order(synthetic_tiny_imagenet):
    folder = synthetic_tiny_imagenet
    (x_train, y_train), (x_val, y_val) = data.load_tiny_imagenet(folder)
    wnids = sorted((folder / "wnids.txt").read_text().split())
    for row, (label, k) in enumerate((label, k) for label in range(6) for k in range(12)):
        assert y_train[row] == label
        assert np.array_equal(
            x_train[row],
            decode(folder / "train" / wnids[label] / "images" / f"{wnids[label]}_{k}.JPEG"),
        )
    annotations = read_annotations(folder)
    for row in range(30):
        # Val labels agree with val_annotations.txt, in val_<k> order.
        assert y_val[row] == wnids.index(annotations[f"val_{row}.JPEG"])
        assert np.array_equal(x_val[row], decode(folder / "val" / "images" / f"val_{row}.JPEG"))


def test_grayscale_jpegs_become_three_equal_channels(synthetic_tiny_imagenet):
    folder = synthetic_tiny_imagenet
    (_, _), (x_val, _) = data.load_tiny_imagenet(folder)
    gray_rows = [
        row
        for row in range(30)
        if channels_in_file(folder / "val" / "images" / f"val_{row}.JPEG") == 1
    ]
    colour_rows = sorted(set(range(30)) - set(gray_rows))
    assert gray_rows and colour_rows
    for row in gray_rows:
        assert x_val[row].shape == (64, 64, 3)
        assert np.array_equal(x_val[row][..., 0], x_val[row][..., 1])
        assert np.array_equal(x_val[row][..., 0], x_val[row][..., 2])
    assert not np.array_equal(x_val[colour_rows[0]][..., 0], x_val[colour_rows[0]][..., 2])


def test_select_first_classes_by_number(synthetic_tiny_imagenet):
    (x_train, y_train), (x_val, y_val) = data.load_tiny_imagenet(synthetic_tiny_imagenet, classes=2)
    (x_all, y_all), (x_val_all, y_val_all) = data.load_tiny_imagenet(synthetic_tiny_imagenet)
    assert np.array_equal(x_train, x_all[:24]) and np.array_equal(y_train, y_all[:24])
    assert np.array_equal(x_val, x_val_all[y_val_all < 2]) and np.array_equal(
        y_val, y_val_all[y_val_all < 2]
    )


def test_select_classes_by_wnid_labels_in_sorted_order(synthetic_tiny_imagenet):
    folder = synthetic_tiny_imagenet
    chosen = ["n90000004", "n90000001"]
    (x_train, y_train), (x_val, y_val) = data.load_tiny_imagenet(folder, classes=chosen)
    assert np.bincount(y_train).tolist() == [12, 12] and np.bincount(y_val).tolist() == [5, 5]
    # Label 0 is the smaller wnid, whatever the order of the list.
    assert np.array_equal(x_train[0], decode(folder / "train/n90000001/images/n90000001_0.JPEG"))
    assert np.array_equal(x_train[12], decode(folder / "train/n90000004/images/n90000004_0.JPEG"))
    annotations = read_annotations(folder)
    val_names = [
        name
        for name in sorted(annotations, key=data_sources.natural_key)
        if annotations[name] in chosen
    ]
    assert y_val.tolist() == [sorted(chosen).index(annotations[name]) for name in val_names]
    assert data.tiny_imagenet_classes(folder, classes=chosen) == [
        ("n90000001", "synthetic small red square"),
        ("n90000004", "synthetic small blue triangle"),
    ]


def test_images_per_class_takes_the_first_in_natural_order(synthetic_tiny_imagenet):
    folder = synthetic_tiny_imagenet
    (x_train, y_train), (x_val, _) = data.load_tiny_imagenet(folder, classes=1, images_per_class=3)
    assert y_train.tolist() == [0, 0, 0] and len(x_val) == 5  # validation keeps all
    # Natural order: _0, _1, _2 (plain sorting would give _0, _1, _10).
    expected = [decode(folder / f"train/n90000000/images/n90000000_{k}.JPEG") for k in range(3)]
    assert np.array_equal(x_train, np.stack(expected))


def test_class_list_in_label_order(synthetic_tiny_imagenet):
    classes = data.tiny_imagenet_classes(synthetic_tiny_imagenet)
    assert [wnid for wnid, _ in classes] == [synthetic.synthetic_wnid(index) for index in range(6)]
    assert classes[2] == ("n90000002", "synthetic small green ring")


def test_path_may_be_the_parent_folder_or_an_archive(synthetic_tiny_imagenet, tmp_path):
    (reference, _), _ = data.load_tiny_imagenet(synthetic_tiny_imagenet)
    zip_archive = make_zip(synthetic_tiny_imagenet, tmp_path / "tiny-imagenet-200.zip")
    tar_archive = make_tar_gz(synthetic_tiny_imagenet, tmp_path / "tiny-imagenet-200.tar.gz")
    for path in (synthetic_tiny_imagenet.parent, zip_archive, tar_archive):
        (x_train, _), _ = data.load_tiny_imagenet(path, cache_dir=tmp_path / "cache")
        assert np.array_equal(x_train, reference)


def test_environment_variable_archive_is_extracted_once(
    synthetic_tiny_imagenet, tmp_path, monkeypatch
):
    archive = make_tar_gz(synthetic_tiny_imagenet, tmp_path / "tiny-imagenet-200.tar.gz")
    monkeypatch.setenv(data.ENVIRONMENT_VARIABLE, str(archive))
    cache = tmp_path / "cache"
    (x_train, _), _ = data.load_tiny_imagenet(cache_dir=cache)
    assert len(x_train) == 72
    extractions = list((cache / data_sources.EXTRACTED_ARCHIVES_FOLDER).iterdir())
    assert len(extractions) == 1 and (extractions[0] / data_sources.COMPLETE_MARKER).exists()

    def no_extraction(*args, **kwargs):
        raise AssertionError("the archive was extracted again")

    monkeypatch.setattr(data_sources.tarfile, "open", no_extraction)
    failing_decoder(monkeypatch)
    (again, _), _ = data.load_tiny_imagenet(cache_dir=cache)
    assert np.array_equal(again, x_train)


def test_finds_a_copy_in_the_keras_cache(synthetic_tiny_imagenet, tmp_path):
    cache = data.default_cache_dir()
    assert cache == tmp_path / "keras_home" / "datasets"  # follows KERAS_HOME
    copy_dataset(synthetic_tiny_imagenet, cache)
    (x_train, _), _ = data.load_tiny_imagenet(download=False)
    assert len(x_train) == 72
    assert decoded_slots(cache)  # the decoded cache went to the default cache folder too


def test_finds_an_archive_extracted_earlier_once_the_variable_is_unset(
    synthetic_tiny_imagenet, tmp_path, monkeypatch
):
    # `make reproduce` with TINY_IMAGENET_DIR=<archive> extracts into the Keras cache; a
    # later load without the variable must find that copy instead of downloading.
    archive = make_tar_gz(synthetic_tiny_imagenet, tmp_path / "tiny-imagenet-200.tar.gz")
    monkeypatch.setenv(data.ENVIRONMENT_VARIABLE, str(archive))
    (x_train, _), _ = data.load_tiny_imagenet()
    monkeypatch.delenv(data.ENVIRONMENT_VARIABLE)
    archive.unlink()
    (again, _), _ = data.load_tiny_imagenet(download=False)
    assert np.array_equal(again, x_train)


def test_uses_a_downloaded_zip_in_the_cache_offline(synthetic_tiny_imagenet):
    cache = data.default_cache_dir()
    cache.mkdir(parents=True)
    make_zip(synthetic_tiny_imagenet, cache / "tiny-imagenet-200.zip")
    (x_train, _), _ = data.load_tiny_imagenet(download=False)
    assert len(x_train) == 72


# ----------------------------------------------------------------------------------------
# The decoded cache


def test_second_load_reads_the_cache_without_decoding(
    synthetic_tiny_imagenet, tmp_path, monkeypatch
):
    first = data.load_tiny_imagenet(synthetic_tiny_imagenet, cache_dir=tmp_path)
    (slot,) = decoded_slots(tmp_path)
    assert slot.name.startswith(data.SYNTHETIC_DATASET_NAME)
    assert sorted(path.name for path in slot.iterdir()) == sorted(
        [f"{n}.npy" for n in data.ARRAY_NAMES] + ["meta.json"]
    )
    failing_decoder(monkeypatch)
    second = data.load_tiny_imagenet(synthetic_tiny_imagenet, cache_dir=tmp_path)
    for before, after in zip(first, second):
        assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])


def test_each_selection_has_its_own_cache(synthetic_tiny_imagenet, tmp_path, monkeypatch):
    calls = counting_decoder(monkeypatch)
    data.load_tiny_imagenet(synthetic_tiny_imagenet, cache_dir=tmp_path, classes=2)
    data.load_tiny_imagenet(synthetic_tiny_imagenet, cache_dir=tmp_path, classes=3)
    data.load_tiny_imagenet(
        synthetic_tiny_imagenet, cache_dir=tmp_path, classes=3, images_per_class=2
    )
    assert len(calls) == 6  # train and val, three selections
    data.load_tiny_imagenet(synthetic_tiny_imagenet, cache_dir=tmp_path, classes=2)
    assert len(calls) == 6 and len(decoded_slots(tmp_path)) == 3


def test_changed_source_rebuilds_the_cache(synthetic_tiny_imagenet, tmp_path, monkeypatch):
    folder = copy_dataset(synthetic_tiny_imagenet, tmp_path / "data")
    (x_train, _), _ = data.load_tiny_imagenet(folder, cache_dir=tmp_path)
    changed = folder / "train/n90000000/images/n90000000_0.JPEG"
    changed.write_bytes((folder / "train/n90000005/images/n90000005_3.JPEG").read_bytes())
    calls = counting_decoder(monkeypatch)
    (rebuilt, _), _ = data.load_tiny_imagenet(folder, cache_dir=tmp_path)
    assert calls  # decoded again
    assert np.array_equal(rebuilt[0], x_train[5 * 12 + 3]) and not np.array_equal(
        rebuilt[0], x_train[0]
    )
    assert len(decoded_slots(tmp_path)) == 1  # replaced, not accumulated
    # Same bytes, newer modification time: treated as changed too.
    status = changed.stat()
    os.utime(changed, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))
    data.load_tiny_imagenet(folder, cache_dir=tmp_path)
    assert len(calls) == 4


@pytest.mark.parametrize(
    "damage, reason",
    [
        ("truncate", "truncated"),
        ("flip_byte", "CRC-32"),
        ("bad_meta", "Not using the decoded cache"),
        ("meta_not_object", "meta.json holds [1, 2], not a JSON object"),
        ("format_version", "format version"),
    ],
)
def test_damaged_or_stale_cache_is_rebuilt(
    synthetic_tiny_imagenet, tmp_path, monkeypatch, capsys, damage, reason
):
    (x_train, y_train), (x_val, y_val) = data.load_tiny_imagenet(
        synthetic_tiny_imagenet, cache_dir=tmp_path
    )
    (slot,) = decoded_slots(tmp_path)
    if damage == "truncate":
        file = slot / "x_train.npy"
        file.write_bytes(file.read_bytes()[:-100])
    elif damage == "flip_byte":
        file = slot / "x_val.npy"
        content = bytearray(file.read_bytes())
        content[-1] ^= 0xFF
        file.write_bytes(bytes(content))
    elif damage == "bad_meta":
        (slot / "meta.json").write_text("{not json")
    elif damage == "meta_not_object":
        (slot / "meta.json").write_text("[1, 2]")
    else:
        monkeypatch.setattr(data, "CACHE_FORMAT_VERSION", data.CACHE_FORMAT_VERSION + 1)
    capsys.readouterr()
    calls = counting_decoder(monkeypatch)
    (x_train2, y_train2), (x_val2, y_val2) = data.load_tiny_imagenet(
        synthetic_tiny_imagenet, cache_dir=tmp_path
    )
    assert calls, "the damaged cache was used"
    assert reason in capsys.readouterr().out
    assert np.array_equal(x_train2, x_train) and np.array_equal(x_val2, x_val)
    assert np.array_equal(y_train2, y_train) and np.array_equal(y_val2, y_val)
    failing_decoder(monkeypatch)
    data.load_tiny_imagenet(
        synthetic_tiny_imagenet, cache_dir=tmp_path
    )  # the rebuilt cache is good


def dead_pid():
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    return child.pid


def temporary_named(target, pid=None, age_s=0):
    """Makes a temporary folder of `target` with some content, as a process `pid` of this
    machine would name it (pid=None: the older name that records no process), `age_s` old."""
    # ".<target name>.tmp-<namespace>-<pid of this process>-<random>"
    prefix, namespace, _, random = data_sources.temporary_sibling(target).name.rsplit("-", 3)
    owner = "" if pid is None else f"{namespace}-{pid}-"
    folder = target.with_name(f"{prefix}-{owner}{random}")
    (folder / "partial").mkdir(parents=True)
    (folder / "partial" / "data.bin").write_bytes(b"\0" * 1000)
    stamp = time.time() - age_s
    os.utime(folder, (stamp, stamp))
    return folder


@pytest.mark.parametrize("where", ["decoded cache", "extraction"])
def test_temporaries_of_killed_runs_are_removed_on_the_next_build(
    synthetic_tiny_imagenet, tmp_path, capsys, where
):
    cache = tmp_path / "cache"
    if where == "decoded cache":
        parent, path = cache / data.DECODED_CACHE_FOLDER, synthetic_tiny_imagenet
    else:
        parent = cache / data_sources.EXTRACTED_ARCHIVES_FOLDER
        path = make_tar_gz(synthetic_tiny_imagenet, tmp_path / "tiny-imagenet-200.tar.gz")
    target = parent / "tiny-imagenet-200-6classes-all-0123456789ab"
    hour = data_sources.TEMPORARY_MAX_AGE_S
    removed = [
        temporary_named(target, pid=dead_pid()),  # its process was killed
        temporary_named(target, pid=None, age_s=hour + 60),  # no process recorded, and old
    ]
    kept = [
        # Another live build on this machine, even a slow one.
        temporary_named(target, pid=os.getppid(), age_s=hour + 60),
        # No process recorded (e.g. another machine sharing the folder), and recent.
        temporary_named(target, pid=None, age_s=60),
    ]
    (parent / "unrelated-folder").mkdir()
    capsys.readouterr()
    data.load_tiny_imagenet(path, cache_dir=cache)
    output = capsys.readouterr().out
    assert not any(folder.exists() for folder in removed)
    assert all(folder.exists() for folder in kept)
    lines = [line for line in output.splitlines() if line.startswith("Removed ")]
    assert lines == [
        f"Removed 2 temporary folder(s) left in {display_path(parent)} by interrupted runs: "
        f"{', '.join(sorted(folder.name for folder in removed))}."
    ]
    hidden = sorted(entry for entry in parent.iterdir() if entry.name.startswith("."))
    assert hidden == sorted(kept)  # and the build left none of its own


# ----------------------------------------------------------------------------------------
# Several processes building the same folders at once

CONCURRENT_LOADER = """
import hashlib, sys, time
from pathlib import Path

index, count, barrier, *rounds = sys.argv[1:]
from utils import data


def wait_for_all(step):
    # A barrier between the processes, so that they start every round at the same moment.
    Path(barrier, f"{step}-{index}").touch()
    deadline = time.monotonic() + 120
    while len(list(Path(barrier).glob(f"{step}-*"))) < int(count):
        if time.monotonic() > deadline:
            sys.exit(f"the other processes did not reach step {step}")
        time.sleep(0.002)


for step, (source, cache) in enumerate(zip(rounds[::2], rounds[1::2])):
    wait_for_all(step)
    if source.endswith(".tar.gz"):
        folder = source
    else:
        folder = data.make_synthetic_tiny_imagenet(source, classes=4, images_per_class=16, val_per_class=4)
    arrays = data.load_tiny_imagenet(folder, download=False, cache_dir=cache)
    digest = hashlib.sha256()
    for pair in arrays:
        for array in pair:
            digest.update(array.tobytes())
    print("arrays", digest.hexdigest(), flush=True)
"""
# Each process goes through this many fresh folders, all together, so that a race shows up
# in every run of the test, not in one run in two.
CONCURRENT_ROUNDS = 4


def tree_digest(folder):
    """{relative path: sha256} of every file under `folder`."""
    return {
        str(file.relative_to(folder)): hashlib.sha256(file.read_bytes()).hexdigest()
        for file in sorted(Path(folder).rglob("*"))
        if file.is_file()
    }


def start_at_once(tmp_path, rounds, processes=3):
    """Runs `processes` loaders, each of every (source, cache) pair of `rounds` in turn, all
    starting each round at the same moment. Returns their exit codes and outputs."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    arguments = [str(path) for pair in rounds for path in pair]
    logs = [tmp_path / f"process-{index}.log" for index in range(processes)]
    children = []
    for index, log in enumerate(logs):
        with open(log, "w") as output:
            children.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        CONCURRENT_LOADER,
                        str(index),
                        str(processes),
                        str(barrier),
                        *arguments,
                    ],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    env=environment,
                )
            )
    deadline = time.monotonic() + 600
    while any(child.poll() is None for child in children) and time.monotonic() < deadline:
        if any(child.poll() not in (None, 0) for child in children):
            break  # the others would wait for it at the next round
        time.sleep(0.05)
    for child in children:
        if child.poll() is None:
            child.kill()
    return [(child.wait(), log.read_text()) for child, log in zip(children, logs)]


def array_digests(output):
    return [line for line in output.splitlines() if line.startswith("arrays ")]


def assert_all_succeed_with_the_same_arrays(outcomes):
    """Every process exited 0, and all loaded the same arrays in every round."""
    for code, output in outcomes:
        assert code == 0, output[-4000:]
    digests = [array_digests(output) for _, output in outcomes]
    assert len(digests[0]) == CONCURRENT_ROUNDS and len(set(digests[0])) == 1
    assert all(digest == digests[0] for digest in digests)


def temporaries_under(folder):
    return sorted(
        entry.name for entry in Path(folder).rglob(".*") if re.search(r"\.(tmp|stale)-", entry.name)
    )


@pytest.mark.slow
def test_processes_generating_and_loading_one_fresh_folder_at_once(tmp_path):
    rounds = [
        (tmp_path / f"fresh-{k}", tmp_path / f"fresh-{k}" / "cache")
        for k in range(CONCURRENT_ROUNDS)
    ]
    assert_all_succeed_with_the_same_arrays(start_at_once(tmp_path, rounds))
    reference = synthetic.make_synthetic_tiny_imagenet(
        tmp_path / "reference", classes=4, images_per_class=16, val_per_class=4
    )
    for destination, cache in rounds:
        assert tree_digest(destination / synthetic.SYNTHETIC_FOLDER_NAME) == tree_digest(reference)
        assert sorted(path.name for path in destination.iterdir()) == [
            "cache",
            synthetic.SYNTHETIC_FOLDER_NAME,
        ]
        assert len(decoded_slots(cache)) == 1 and not temporaries_under(destination)


@pytest.mark.slow
def test_processes_extracting_and_decoding_one_archive_at_once(synthetic_tiny_imagenet, tmp_path):
    archive = make_tar_gz(synthetic_tiny_imagenet, tmp_path / "tiny-imagenet-200.tar.gz")
    rounds = [(archive, tmp_path / f"cache-{k}") for k in range(CONCURRENT_ROUNDS)]
    assert_all_succeed_with_the_same_arrays(start_at_once(tmp_path, rounds))
    for _, cache in rounds:
        (extraction,) = (cache / data_sources.EXTRACTED_ARCHIVES_FOLDER).iterdir()
        assert (extraction / data_sources.COMPLETE_MARKER).exists()
        assert tree_digest(extraction / "tiny-imagenet-200") == tree_digest(synthetic_tiny_imagenet)
        assert len(decoded_slots(cache)) == 1 and not temporaries_under(cache)


@pytest.mark.parametrize("where", ["synthetic", "decoded cache"])
def test_a_folder_that_another_process_finished_meanwhile_is_kept(
    synthetic_tiny_imagenet, tmp_path, monkeypatch, where
):
    # The other process runs inside this one's build, between its start and its last step.
    # Its folder may already be in use, so this build must not replace it.
    others = []
    if where == "synthetic":
        target = tmp_path / "data" / synthetic.SYNTHETIC_FOLDER_NAME

        def build():
            return synthetic.make_synthetic_tiny_imagenet(
                tmp_path / "data", classes=2, images_per_class=3, val_per_class=2
            )

        module, name = synthetic, "_write_layout"
    else:

        def build():
            return data.load_tiny_imagenet(synthetic_tiny_imagenet, cache_dir=tmp_path / "cache")

        module, name = data, "decode_images"
    original = getattr(module, name)

    def slow_step(*args, **kwargs):
        result = original(*args, **kwargs)
        if not others:
            others.append("started")
            build()
            (slot,) = [target] if where == "synthetic" else decoded_slots(tmp_path / "cache")
            (slot / "in-use").write_text("a reader of the other process's copy")
            others.append(slot)
        return result

    monkeypatch.setattr(module, name, slow_step)
    first = build()
    kept = others[-1]
    assert (kept / "in-use").exists()
    if where == "decoded cache":
        assert decoded_slots(tmp_path / "cache") == [kept]
        monkeypatch.setattr(data, "decode_images", original)
        failing_decoder(monkeypatch)
        again = data.load_tiny_imagenet(synthetic_tiny_imagenet, cache_dir=tmp_path / "cache")
        assert all(
            np.array_equal(a, b) for pair, other in zip(first, again) for a, b in zip(pair, other)
        )
    assert not temporaries_under(tmp_path)


@pytest.mark.parametrize("where", ["synthetic", "extraction"])
def test_a_half_built_folder_is_rebuilt(synthetic_tiny_imagenet, tmp_path, where):
    if where == "synthetic":

        def build():
            return synthetic.make_synthetic_tiny_imagenet(
                tmp_path / "data", classes=6, images_per_class=12, val_per_class=5
            )

        target, marker = (
            tmp_path / "data" / synthetic.SYNTHETIC_FOLDER_NAME,
            synthetic.SYNTHETIC_MARKER,
        )
        expected = tree_digest(synthetic_tiny_imagenet)
    else:
        archive = make_tar_gz(synthetic_tiny_imagenet, tmp_path / "tiny-imagenet-200.tar.gz")

        def build():
            return data_sources.extract_archive(archive, tmp_path / "cache")

        target, marker = build(), data_sources.COMPLETE_MARKER
        expected = tree_digest(target)
        shutil.rmtree(target)
    # What a build killed before its last step would leave: some files, no marker.
    (target / "train" / "n90000000" / "images").mkdir(parents=True)
    (target / "train" / "n90000000" / "images" / "n90000000_0.JPEG").write_bytes(b"half written")
    (target / "wnids.txt").write_text("n90000000\n")
    assert build() == target
    assert (target / marker).exists() and tree_digest(target) == expected
    assert not temporaries_under(target.parent)


def test_a_killed_synthetic_build_is_removed_by_the_next_one(tmp_path, capsys):
    target = tmp_path / "data" / synthetic.SYNTHETIC_FOLDER_NAME
    killed = temporary_named(target, pid=dead_pid())
    synthetic.make_synthetic_tiny_imagenet(
        tmp_path / "data", classes=2, images_per_class=2, val_per_class=1
    )
    assert not killed.exists()
    assert sorted(path.name for path in (tmp_path / "data").iterdir()) == [
        synthetic.SYNTHETIC_FOLDER_NAME
    ]
    assert (
        f"Removed 1 temporary folder(s) left in {display_path(tmp_path / 'data')}"
        in capsys.readouterr().out
    )


def test_loaded_arrays_are_aligned_for_zero_copy(synthetic_tiny_imagenet, tmp_path):
    for _ in range(2):  # decoded, then from the cache
        (x_train, y_train), (x_val, _) = data.load_tiny_imagenet(
            synthetic_tiny_imagenet, cache_dir=tmp_path
        )
        for array in (x_train, y_train, x_val):
            assert array.ctypes.data % data.TENSOR_ALIGNMENT == 0 and array.flags.c_contiguous


# ----------------------------------------------------------------------------------------
# Errors: clear messages, nothing changed


def test_error_for_a_path_that_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_tiny_imagenet(tmp_path / "nowhere", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_error_for_a_folder_without_wnids(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="not a Tiny ImageNet-200 folder.*'wnids.txt'"):
        data.load_tiny_imagenet(tmp_path / "empty")


@pytest.mark.parametrize("missing", ["words.txt", "val/val_annotations.txt", "val/images", "train"])
def test_error_names_the_missing_expected_file(synthetic_tiny_imagenet, tmp_path, missing):
    folder = copy_dataset(synthetic_tiny_imagenet, tmp_path)
    target = folder / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(FileNotFoundError, match=f"expected file '{missing}'"):
        data.load_tiny_imagenet(folder)
    assert not decoded_slots(data.default_cache_dir())


def test_error_for_a_missing_class_folder(synthetic_tiny_imagenet, tmp_path):
    folder = copy_dataset(synthetic_tiny_imagenet, tmp_path)
    shutil.rmtree(folder / "train" / "n90000003")
    with pytest.raises(FileNotFoundError, match="n90000003"):
        data.load_tiny_imagenet(folder)


@pytest.mark.parametrize("classes", [None, 2])
def test_error_for_a_validation_annotation_with_an_unknown_wnid(
    synthetic_tiny_imagenet, tmp_path, classes
):
    folder = copy_dataset(synthetic_tiny_imagenet, tmp_path / "data")
    annotations = folder / "val" / "val_annotations.txt"
    lines = annotations.read_text().splitlines(keepends=True)
    fields = lines[3].split("\t")
    lines[3] = "\t".join([fields[0], "n01443537", *fields[2:]])
    annotations.write_text("".join(lines))
    # A damaged file, whichever classes are selected: not an image to drop silently.
    with pytest.raises(ValueError) as raised:
        data.load_tiny_imagenet(folder, classes=classes, cache_dir=tmp_path / "cache")
    message = str(raised.value)
    assert f"{annotations} line 4 " in message and "'n01443537'" in message
    assert str(folder / "wnids.txt") in message
    assert (
        f"Delete {folder} and generate it again with make_synthetic_tiny_imagenet" in message
    )  # a synthetic copy
    assert not decoded_slots(tmp_path / "cache")


def remove_synthetic_marker(folder):
    """Makes a copy look like the real data set, which promises 500 training and 50
    validation images per class."""
    (folder / synthetic.SYNTHETIC_MARKER).unlink()
    return folder


def annotation_lines(folder):
    return (folder / "val" / "val_annotations.txt").read_text().splitlines(keepends=True)


@pytest.mark.parametrize("dataset", ["synthetic", "tiny-imagenet-200"])
def test_error_for_a_validation_line_listed_twice(synthetic_tiny_imagenet, tmp_path, dataset):
    folder = copy_dataset(synthetic_tiny_imagenet, tmp_path / "data")
    if dataset == "tiny-imagenet-200":
        remove_synthetic_marker(folder)
    annotations = folder / "val" / "val_annotations.txt"
    lines = annotation_lines(folder)
    name, wnid = lines[3].split("\t")[:2]
    annotations.write_text("".join(lines + [lines[3]]))
    with pytest.raises(ValueError) as raised:
        data.load_tiny_imagenet(folder, images_per_class=12, cache_dir=tmp_path / "cache")
    message = str(raised.value)
    assert message.startswith(
        f"{annotations} line 31 lists the image {name} again with the label {wnid}, as line 4 does:"
    )
    assert "each validation image must be listed exactly once" in message
    if dataset == "synthetic":
        assert f"Delete {folder} and generate it again with make_synthetic_tiny_imagenet" in message
    else:
        assert (
            "Extract the archive again, or download it again from " + data.TINY_IMAGENET_URL
            in message
        )
    assert not decoded_slots(tmp_path / "cache")


def test_error_for_a_validation_image_listed_under_two_labels(synthetic_tiny_imagenet, tmp_path):
    folder = copy_dataset(synthetic_tiny_imagenet, tmp_path / "data")
    annotations = folder / "val" / "val_annotations.txt"
    lines = annotation_lines(folder)
    name, wnid, *box = lines[3].split("\t")
    other = next(candidate for candidate in data_sources.read_wnids(folder) if candidate != wnid)
    annotations.write_text("".join(lines[:10] + ["\t".join([name, other, *box])] + lines[10:]))
    # Whichever classes are selected: the file is damaged.
    for classes in (None, [other]):
        with pytest.raises(ValueError) as raised:
            data.load_tiny_imagenet(folder, classes=classes, cache_dir=tmp_path / "cache")
        message = str(raised.value)
        assert message.startswith(
            f"{annotations} line 11 lists the image {name} with the label {other}, but line 4 labels it {wnid}:"
        )
        assert "each validation image must be listed exactly once" in message
    assert not decoded_slots(tmp_path / "cache")


def test_error_for_a_class_with_missing_validation_images(synthetic_tiny_imagenet, tmp_path):
    folder = copy_dataset(synthetic_tiny_imagenet, tmp_path / "data")
    annotations = folder / "val" / "val_annotations.txt"
    lines = annotation_lines(folder)
    wnid = lines[3].split("\t")[1]
    annotations.write_text("".join(lines[:3] + lines[4:]))
    with pytest.raises(ValueError) as raised:
        data.load_tiny_imagenet(folder, cache_dir=tmp_path / "cache")
    message = str(raised.value)
    assert message.startswith(
        f"{annotations} lists 4 validation images of class {wnid}, expected 5 "
    )
    assert "val_per_class=5" in message and "generate it again" in message
    other = next(candidate for candidate in data_sources.read_wnids(folder) if candidate != wnid)
    assert (
        len(data.load_tiny_imagenet(folder, classes=[other], cache_dir=tmp_path / "cache")[1][0])
        == 5
    )


@pytest.mark.parametrize("kept", [0, 4])
def test_error_for_a_class_with_missing_training_images(synthetic_tiny_imagenet, tmp_path, kept):
    folder = copy_dataset(synthetic_tiny_imagenet, tmp_path / "data")
    images = folder / "train" / "n90000003" / "images"
    for file in sorted(images.iterdir(), key=lambda file: data_sources.natural_key(file.name))[
        kept:
    ]:
        file.unlink()
    with pytest.raises(ValueError) as raised:
        data.load_tiny_imagenet(folder, cache_dir=tmp_path / "cache")
    message = str(raised.value)
    assert message.startswith(
        f"Class n90000003 has {kept} training images in {images}, expected 12 "
    )
    assert "images_per_class=12" in message and f"Delete {folder} and generate it again" in message
    assert not decoded_slots(tmp_path / "cache")


def test_images_per_class_needs_only_the_images_it_asks_for(synthetic_tiny_imagenet, tmp_path):
    folder = copy_dataset(synthetic_tiny_imagenet, tmp_path / "data")
    images = folder / "train" / "n90000003" / "images"
    for file in sorted(images.iterdir(), key=lambda file: data_sources.natural_key(file.name))[4:]:
        file.unlink()
    (x_train, y_train), _ = data.load_tiny_imagenet(
        folder, images_per_class=4, cache_dir=tmp_path / "cache"
    )
    assert np.bincount(y_train).tolist() == [4] * 6
    with pytest.raises(ValueError) as raised:
        data.load_tiny_imagenet(folder, images_per_class=5, cache_dir=tmp_path / "cache")
    message = str(raised.value)
    assert message.startswith(
        f"images_per_class=5 but class n90000003 has only 4 training images in {images}"
    )
    assert "expected 12" in message and "generate it again" in message


def test_a_folder_in_the_official_layout_is_held_to_its_counts(synthetic_tiny_imagenet, tmp_path):
    folder = remove_synthetic_marker(copy_dataset(synthetic_tiny_imagenet, tmp_path / "data"))
    with pytest.raises(ValueError) as raised:
        data.load_tiny_imagenet(folder, cache_dir=tmp_path / "cache")
    message = str(raised.value)
    assert message.startswith(
        f"Class n90000000 has 12 training images in {folder / 'train' / 'n90000000' / 'images'}, expected 500 "
    )
    assert "Tiny ImageNet-200 has 500 per class" in message and "download it again" in message
    with pytest.raises(ValueError) as raised:
        data.load_tiny_imagenet(folder, images_per_class=12, cache_dir=tmp_path / "cache")
    message = str(raised.value)
    assert message.startswith(
        f"{folder / 'val' / 'val_annotations.txt'} lists 5 validation images of class n90000000, expected 50 "
    )
    with pytest.raises(
        ValueError, match="images_per_class=13 but class n90000000 has only 12 training images"
    ):
        data.load_tiny_imagenet(folder, images_per_class=13, cache_dir=tmp_path / "cache")


def test_error_for_a_damaged_synthetic_marker(synthetic_tiny_imagenet, tmp_path):
    folder = copy_dataset(synthetic_tiny_imagenet, tmp_path / "data")
    marker = folder / synthetic.SYNTHETIC_MARKER
    marker.write_text('{"dataset": "synthetic-tiny-imagenet"}')
    with pytest.raises(ValueError) as raised:
        data.load_tiny_imagenet(folder, cache_dir=tmp_path / "cache")
    message = str(raised.value)
    assert str(marker) in message and "images_per_class" in message
    assert f"Delete {folder} and generate it again" in message


def test_error_for_an_archive_nested_one_level_deeper(synthetic_tiny_imagenet, tmp_path):
    archive = make_zip(
        synthetic_tiny_imagenet,
        tmp_path / "tiny-imagenet-200.zip",
        top="something/tiny-imagenet-200",
    )
    with pytest.raises(FileNotFoundError) as raised:
        data.load_tiny_imagenet(archive, cache_dir=tmp_path / "cache")
    message = str(raised.value)
    assert message.startswith(
        f"The archive {archive} (from the path argument) holds the data set nested one level deeper"
    )
    assert "'something/tiny-imagenet-200/wnids.txt' inside the archive" in message
    suggested = message.split("Pass path=")[1].split(" ")[0]  # its extracted copy, which loads
    assert len(data.load_tiny_imagenet(suggested, cache_dir=tmp_path / "cache")[0][0]) == 72


def test_error_for_an_archive_without_the_data_set(tmp_path):
    (tmp_path / "other" / "docs").mkdir(parents=True)
    (tmp_path / "other" / "docs" / "readme.txt").write_text("not Tiny ImageNet")
    archive = make_zip(tmp_path / "other", tmp_path / "other.zip", top="other")
    with pytest.raises(
        FileNotFoundError,
        match=f"The archive {re.escape(str(archive))} .*is not a Tiny ImageNet-200 archive",
    ):
        data.load_tiny_imagenet(archive, cache_dir=tmp_path / "cache")


def test_error_for_a_missing_validation_image(synthetic_tiny_imagenet, tmp_path):
    folder = copy_dataset(synthetic_tiny_imagenet, tmp_path)
    (folder / "val" / "images" / "val_7.JPEG").unlink()
    with pytest.raises(FileNotFoundError, match="val_7.JPEG"):
        data.load_tiny_imagenet(folder)


@pytest.mark.parametrize("content", [b"", b"this is not a JPEG", "truncate"])
def test_error_names_the_corrupt_jpeg_and_writes_no_cache(
    synthetic_tiny_imagenet, tmp_path, content
):
    folder = copy_dataset(synthetic_tiny_imagenet, tmp_path / "data")
    bad = folder / "train/n90000002/images/n90000002_4.JPEG"
    bad.write_bytes(bad.read_bytes()[:300] if content == "truncate" else content)
    with pytest.raises(ValueError, match=r"Could not decode the image .*n90000002_4\.JPEG"):
        data.load_tiny_imagenet(folder, cache_dir=tmp_path / "cache")
    assert not decoded_slots(tmp_path / "cache")
    assert not list((tmp_path / "cache").rglob("*.npy"))


def test_error_for_an_image_of_the_wrong_size(synthetic_tiny_imagenet, tmp_path):
    folder = copy_dataset(synthetic_tiny_imagenet, tmp_path)
    bad = folder / "val/images/val_3.JPEG"
    bad.write_bytes(tf.io.encode_jpeg(np.zeros((32, 48, 3), np.uint8)).numpy())
    with pytest.raises(ValueError, match=r"val_3\.JPEG.*64x64"):
        data.load_tiny_imagenet(folder)


def test_error_for_an_unknown_wnid(synthetic_tiny_imagenet):
    with pytest.raises(ValueError, match=r"Unknown wnid.*n01443537"):
        data.load_tiny_imagenet(synthetic_tiny_imagenet, classes=["n90000001", "n01443537"])


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"classes": 0}, "out of range"),
        ({"classes": 7}, "out of range"),
        ({"classes": []}, "non-empty"),
        ({"classes": ["n90000001", "n90000001"]}, "without repeats"),
        ({"classes": "n90000001"}, "list of wnids"),
        ({"images_per_class": 0}, "images_per_class=0"),
        ({"images_per_class": 13}, "only 12 training images"),
    ],
)
def test_error_for_a_bad_selection(synthetic_tiny_imagenet, arguments, message):
    with pytest.raises((ValueError, TypeError), match=message):
        data.load_tiny_imagenet(synthetic_tiny_imagenet, **arguments)


def test_error_for_a_file_that_is_not_an_archive(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="not an archive"):
        data.load_tiny_imagenet(tmp_path / "notes.txt")


def test_a_folder_that_holds_the_archive_says_to_give_the_archive(tmp_path, monkeypatch):
    # TINY_IMAGENET_DIR set to the download folder rather than to the file in it.
    (tmp_path / "tiny-imagenet-200.tar.gz").write_bytes(b"")
    monkeypatch.setenv(data.ENVIRONMENT_VARIABLE, str(tmp_path))
    with pytest.raises(FileNotFoundError) as raised:
        data.load_tiny_imagenet(download=False)
    message = str(raised.value)
    assert "TINY_IMAGENET_DIR" in message and "is not a Tiny ImageNet-200 folder" in message
    assert (
        f"holds the archive 'tiny-imagenet-200.tar.gz': give the archive itself ({tmp_path / 'tiny-imagenet-200.tar.gz'})"
        in message
    )


def test_error_for_a_corrupt_archive_leaves_nothing(tmp_path):
    archive = tmp_path / "tiny-imagenet-200.tar.gz"
    archive.write_bytes(b"\x1f\x8b" + os.urandom(500))
    with pytest.raises(ValueError, match="(?s)Could not extract .*corrupt or truncated"):
        data.load_tiny_imagenet(archive, cache_dir=tmp_path / "cache")
    leftovers = [
        path
        for path in (tmp_path / "cache").rglob("*")
        if path.name != data_sources.EXTRACTED_ARCHIVES_FOLDER
    ]
    assert not leftovers


def test_offline_without_a_local_copy_explains_how_to_get_the_data(tmp_path):
    with pytest.raises(FileNotFoundError) as raised:
        data.load_tiny_imagenet(download=False)
    message = str(raised.value)
    assert data.TINY_IMAGENET_URL in message and data.TINY_IMAGENET_MD5 in message
    assert "TINY_IMAGENET_DIR" in message
    assert str(data.default_cache_dir() / "tiny-imagenet-200.zip") in message


def test_failed_download_explains_how_to_get_the_data(tmp_path, monkeypatch):
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(
        data_sources, "TINY_IMAGENET_URL", f"http://127.0.0.1:{port}/tiny-imagenet-200.zip"
    )
    with pytest.raises(
        FileNotFoundError, match=r"(?s)download from http://127\.0\.0\.1.*TINY_IMAGENET_DIR"
    ):
        data.load_tiny_imagenet(cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "tiny-imagenet-200.zip").exists()


# ----------------------------------------------------------------------------------------
# Download through keras.utils.get_file, from a loopback HTTP server


@pytest.fixture
def archive_server(synthetic_tiny_imagenet, tmp_path_factory):
    served = tmp_path_factory.mktemp("served")
    archive = make_zip(synthetic_tiny_imagenet, served / "tiny-imagenet-200.zip")
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SimpleNamespace(
        url=f"http://127.0.0.1:{server.server_port}/tiny-imagenet-200.zip",
        md5=hashlib.md5(archive.read_bytes()).hexdigest(),
        requests=requests,
    )
    server.shutdown()
    server.server_close()
    thread.join()


def test_default_download_source_is_the_official_archive():
    assert data.TINY_IMAGENET_URL == "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
    assert data.TINY_IMAGENET_MD5 == "90528d7ca1a48142e341f4ef8d21d0de"


def test_download_with_a_wrong_hash_is_rejected_and_deleted(archive_server, tmp_path, monkeypatch):
    monkeypatch.setattr(data_sources, "TINY_IMAGENET_URL", archive_server.url)
    monkeypatch.setattr(data_sources, "TINY_IMAGENET_MD5", "0" * 32)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="does not match the expected hash 0{32}.*deleted"):
        data.load_tiny_imagenet(cache_dir=cache)
    assert archive_server.requests == ["/tiny-imagenet-200.zip"]
    assert not (cache / "tiny-imagenet-200.zip").exists()
    assert not (cache / data_sources.DOWNLOAD_EXTRACTION_FOLDER).exists()
    assert not decoded_slots(cache)


def test_download_with_the_right_hash_extracts_loads_and_is_reused(
    archive_server, synthetic_tiny_imagenet, tmp_path, monkeypatch
):
    monkeypatch.setattr(data_sources, "TINY_IMAGENET_URL", archive_server.url)
    monkeypatch.setattr(data_sources, "TINY_IMAGENET_MD5", archive_server.md5)
    (x_train, y_train), (x_val, _) = (
        data.load_tiny_imagenet()
    )  # default cache: $KERAS_HOME/datasets
    (reference, _), _ = data.load_tiny_imagenet(
        synthetic_tiny_imagenet, cache_dir=tmp_path / "other"
    )
    assert np.array_equal(x_train, reference) and len(x_val) == 30
    cache = data.default_cache_dir()
    assert (cache / "tiny-imagenet-200.zip").exists()
    assert (
        cache / data_sources.DOWNLOAD_EXTRACTION_FOLDER / "tiny-imagenet-200" / "wnids.txt"
    ).exists()
    failing_decoder(monkeypatch)
    data.load_tiny_imagenet()
    assert data.tiny_imagenet_classes()[0][0] == "n90000000"
    assert len(archive_server.requests) == 1  # downloaded once


def test_download_function_takes_the_source_as_arguments(archive_server, tmp_path):
    folder = data.download_tiny_imagenet(
        tmp_path / "cache", origin=archive_server.url, file_hash=archive_server.md5
    )
    assert (
        folder == tmp_path / "cache" / data_sources.DOWNLOAD_EXTRACTION_FOLDER / "tiny-imagenet-200"
    )
    assert len((folder / "wnids.txt").read_text().split()) == 6


def test_a_half_extracted_download_is_replaced(archive_server, tmp_path):
    cache = tmp_path / "cache"
    half = cache / data_sources.DOWNLOAD_EXTRACTION_FOLDER / "tiny-imagenet-200"
    (half / "train").mkdir(parents=True)
    (half / "wnids.txt").write_text("n90000000\n")
    folder = data.download_tiny_imagenet(
        cache, origin=archive_server.url, file_hash=archive_server.md5
    )
    assert folder == half and (folder.parent / data_sources.COMPLETE_MARKER).exists()
    assert len((folder / "wnids.txt").read_text().split()) == 6
    assert len(list((folder / "val" / "images").iterdir())) == 30
    assert not temporaries_under(cache)


# ----------------------------------------------------------------------------------------
# make_dataset


def labelled_images(count=50, seed=0):
    """Random images whose label is their row number, so every output can be traced back."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(count, 8, 8, 3), dtype=np.uint8), np.arange(
        count, dtype=np.int32
    )


def epoch(dataset):
    batches = [(images.numpy(), labels.numpy()) for images, labels in dataset]
    return batches


def test_training_batches_have_exactly_batch_size_images():
    x, y = labelled_images(50)
    dataset = data.make_dataset(x, y, 8, training=True, seed=0)
    batches = epoch(dataset)
    assert [len(labels) for _, labels in batches] == [8] * 6  # 50 // 8, remainder dropped
    assert dataset.element_spec[0].shape.as_list() == [8, 8, 8, 3]
    assert dataset.element_spec[0].dtype == tf.uint8 and dataset.element_spec[1].dtype == tf.int32
    labels = np.concatenate([labels for _, labels in batches])
    assert len(set(labels.tolist())) == 48  # no image twice in an epoch


def test_training_flips_only_horizontally_and_only_some_images():
    x, y = labelled_images(64)
    dataset = data.make_dataset(x, y, 16, training=True, seed=3)
    flipped = []
    for _ in range(3):
        for images, labels in epoch(dataset):
            for image, label in zip(images, labels):
                if np.array_equal(image, x[label]):
                    flipped.append(False)
                else:
                    assert np.array_equal(image, x[label][:, ::-1]), (
                        "neither the image nor its mirror"
                    )
                    flipped.append(True)
    assert 0.3 < np.mean(flipped) < 0.7


def test_validation_keeps_order_remainder_and_never_flips():
    x, y = labelled_images(50)
    dataset = data.make_dataset(x, y, 8, training=False)
    for _ in range(2):
        batches = epoch(dataset)
        assert [len(labels) for _, labels in batches] == [8] * 6 + [2]
        assert np.array_equal(np.concatenate([images for images, _ in batches]), x)
        assert np.array_equal(np.concatenate([labels for _, labels in batches]), y)
    assert len(epoch(data.make_dataset(x, y, 500, training=False))) == 1


def test_training_reshuffles_every_epoch_reproducibly():
    x, y = labelled_images(40)
    dataset = data.make_dataset(x, y, 4, training=True, seed=7)
    orders = [np.concatenate([labels for _, labels in epoch(dataset)]) for _ in range(3)]
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])
    assert all(sorted(order.tolist()) == list(range(40)) for order in orders)
    same_seed = data.make_dataset(x, y, 4, training=True, seed=7)
    for order in orders:
        batches = epoch(same_seed)
        assert np.array_equal(np.concatenate([labels for _, labels in batches]), order)
    other_seed = data.make_dataset(x, y, 4, training=True, seed=8)
    assert not np.array_equal(
        np.concatenate([labels for _, labels in epoch(other_seed)]), orders[0]
    )


def test_flips_are_redrawn_every_epoch_and_reproducible():
    x, y = labelled_images(40)

    def flip_pattern(dataset):
        pattern = np.zeros(40, bool)
        for images, labels in epoch(dataset):
            for image, label in zip(images, labels):
                pattern[label] = not np.array_equal(image, x[label])
        return pattern

    dataset = data.make_dataset(x, y, 8, training=True, seed=1)
    first, second = flip_pattern(dataset), flip_pattern(dataset)
    assert not np.array_equal(first, second)
    assert np.array_equal(flip_pattern(data.make_dataset(x, y, 8, training=True, seed=1)), first)


@pytest.mark.parametrize("batch_size", [0, -2, 2.5, True, "8", None])
def test_error_for_an_invalid_batch_size(batch_size):
    x, y = labelled_images(10)
    with pytest.raises(ValueError, match="batch_size"):
        data.make_dataset(x, y, batch_size, training=False)


def test_error_for_a_training_batch_larger_than_the_data():
    x, y = labelled_images(10)
    with pytest.raises(ValueError, match="batch_size=11 is larger than the 10 training images"):
        data.make_dataset(x, y, 11, training=True)
    assert len(epoch(data.make_dataset(x, y, 10, training=True))) == 1


def test_error_for_mismatched_images_and_labels():
    x, y = labelled_images(10)
    with pytest.raises(ValueError, match=r"\(10, 8, 8, 3\) and \(9,\)"):
        data.make_dataset(x, y[:9], 2, training=True)


def test_unaligned_and_strided_inputs_are_copied_safely():
    x, y = labelled_images(20)
    buffer = np.empty(x.nbytes + 1, np.uint8)
    unaligned = buffer[1:].reshape(x.shape)  # TensorFlow cannot wrap this buffer directly
    unaligned[...] = x
    for images in (unaligned, x[:, :, ::-1], np.asfortranarray(x)):
        batches = epoch(data.make_dataset(images, y.astype(np.int64), 5, training=False))
        assert np.array_equal(np.concatenate([batch for batch, _ in batches]), images)
        assert batches[0][1].dtype == np.int32


def test_batch_size_two_works():
    x, y = labelled_images(9)
    batches = epoch(data.make_dataset(x, y, 2, training=True, seed=0))
    assert [len(labels) for _, labels in batches] == [2] * 4


# ----------------------------------------------------------------------------------------
# The real data set


def jpeg_channels_from_header(content):
    """Number of colour components in a JPEG's start-of-frame header."""
    position = 2  # after the start-of-image marker
    while position + 4 <= len(content):
        marker, length = (
            content[position + 1],
            int.from_bytes(content[position + 2 : position + 4], "big"),
        )
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            return content[position + 9]
        position += 2 + length
    raise ValueError("no start-of-frame header")


@pytest.mark.skipif(
    not REAL_DATA,
    reason=f"set {data.ENVIRONMENT_VARIABLE} to the Tiny ImageNet-200 archive or folder to test the real data",
)
@pytest.mark.slow
@pytest.mark.real_data
def test_real_tiny_imagenet():
    (x_train, y_train), (x_val, y_val) = data.load_tiny_imagenet(
        REAL_DATA, cache_dir=REAL_CACHE_DIR
    )
    assert x_train.shape == (100_000, 64, 64, 3) and x_val.shape == (10_000, 64, 64, 3)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int32
    assert np.bincount(y_train).tolist() == [500] * 200
    assert np.bincount(y_val).tolist() == [50] * 200
    classes = data.tiny_imagenet_classes(REAL_DATA, cache_dir=REAL_CACHE_DIR)
    assert len(classes) == 200 and classes == sorted(classes)
    assert all(name and name != wnid for wnid, name in classes)
    wnids = [wnid for wnid, _ in classes]
    folder = data.tiny_imagenet_folder(REAL_DATA, cache_dir=REAL_CACHE_DIR)
    annotations = read_annotations(folder)
    rng = np.random.default_rng(0)
    for row in rng.choice(10_000, size=25, replace=False):
        file = folder / "val" / "images" / f"val_{row}.JPEG"
        assert y_val[row] == wnids.index(annotations[file.name])
        assert np.array_equal(x_val[row], decode(file))
    for row in rng.choice(100_000, size=10, replace=False):
        label, k = divmod(int(row), 500)
        assert y_train[row] == label
        assert np.array_equal(
            x_train[row],
            decode(folder / "train" / wnids[label] / "images" / f"{wnids[label]}_{k}.JPEG"),
        )
    gray_rows = [
        row
        for row in range(2_000)
        if jpeg_channels_from_header((folder / "val" / "images" / f"val_{row}.JPEG").read_bytes())
        == 1
    ]
    assert len(gray_rows) >= 5
    for row in gray_rows[:5]:
        image = x_val[row]
        assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(
            image[..., 0], image[..., 2]
        )
    assert jpeg_channels_from_header((folder / "val" / "images" / "val_0.JPEG").read_bytes()) in (
        1,
        3,
    )
