"""Where Tiny ImageNet-200 comes from: finding, downloading, extracting and listing it.

`utils.data` decodes and caches the images; this module only deals with files: it turns a
user's `path` (or `TINY_IMAGENET_DIR`, or the Keras cache, or the official download) into a
checked `tiny-imagenet-200` folder, and lists the image files of a class selection in a
fixed order.

Order of the listed files (this order is the row order of the loaded arrays):
    train: class by class in label order; inside a class, files in natural numeric order
        of the number in the name (`n01443537_2.JPEG` before `n01443537_10.JPEG`), so
        `images_per_class=M` keeps images 0 .. M-1 of each class.
    val: natural numeric order of the file names (`val_0`, `val_1`, ..., `val_9999`),
        keeping the files whose class is selected.

Extractions and the decoded cache are built in hidden temporary folders next to their final
place (`temporary_sibling`) and renamed into place when complete; the next build or
extraction in the same folder deletes the temporaries left by killed processes
(`remove_stale_temporaries`).
"""

import contextlib
import hashlib
import numbers
import os
import re
import shutil
import socket
import tarfile
import time
import uuid
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import keras

from utils.paths import display_path

TINY_IMAGENET_DATASET_NAME = "tiny-imagenet-200"
TINY_IMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
TINY_IMAGENET_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
ENVIRONMENT_VARIABLE = "TINY_IMAGENET_DIR"
DOWNLOAD_FILE_NAME = "tiny-imagenet-200.zip"
# keras.utils.get_file extracts "<name>.zip" into "<name>_extracted".
DOWNLOAD_EXTRACTION_FOLDER = "tiny-imagenet-200_extracted"
EXTRACTED_ARCHIVES_FOLDER = "tiny-imagenet-extracted"
# Written after an extraction finished, so a half-extracted folder is never used.
COMPLETE_MARKER = ".extraction-complete"
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
REQUIRED_ENTRIES = ("wnids.txt", "words.txt", "train", "val/images", "val/val_annotations.txt")
IMAGE_SUFFIXES = (".jpeg", ".jpg")
_NUMBERED_NAME = re.compile(r"^(.*?)(\d+)(\.[^.]*)$")
# ".<final name>.<kind>-<process namespace>-<pid>-<random>" (see `temporary_sibling`); the
# namespace and pid are absent from names written before they were recorded.
_TEMPORARY_NAME = re.compile(r"^\..+\.(?:tmp|stale)-(?:([0-9a-f]{8})-(\d{1,9})-)?[0-9a-f]{8}$")
# A temporary folder whose creator cannot be checked is deleted only after this long without
# a change. Extraction and cache writing take minutes at most, so an hour is safe.
TEMPORARY_MAX_AGE_S = 3600


def default_cache_dir():
    """Returns the Keras datasets cache folder: `$KERAS_HOME/datasets` or `~/.keras/datasets`."""
    keras_home = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    return Path(keras_home).expanduser() / "datasets"


def natural_key(name):
    """Sort key that orders `x_2.JPEG` before `x_10.JPEG` (numbers compared as numbers).

    Args:
        name: a file name.
    """
    match = _NUMBERED_NAME.match(name)
    if match is None:
        return (name, -1, "")
    return (match.group(1), int(match.group(2)), match.group(3))


def how_to_get_data(cache_dir, reason):
    """Explains how to get Tiny ImageNet-200 and where to put it.

    Args:
        cache_dir: the cache folder the loader searched.
        reason: why the data could not be used, e.g. "download=False".
    """
    cache_dir = Path(cache_dir)
    return (
        f"Tiny ImageNet-200 is not available: {reason}.\n"
        f"Get it from {TINY_IMAGENET_URL} (about 237 MiB, MD5 {TINY_IMAGENET_MD5}), then "
        "do one of:\n"
        f"  - set the environment variable {ENVIRONMENT_VARIABLE} to the downloaded .zip "
        "(or .tar.gz), or to its extracted 'tiny-imagenet-200' folder;\n"
        f"  - put the .zip at {cache_dir / DOWNLOAD_FILE_NAME}, or extract it so that "
        f"{cache_dir / 'tiny-imagenet-200' / 'wnids.txt'} exists;\n"
        "  - pass path=... (the .zip or the folder) to load_tiny_imagenet;\n"
        "  - or call load_tiny_imagenet(download=True) on a machine with internet access."
    )


@cache
def _process_namespace():
    """Short id of where this process's pid is meaningful: host, boot and PID namespace.

    None where process ids cannot be checked (not POSIX).
    """
    if os.name != "posix":
        return None
    parts = [socket.gethostname()]
    with contextlib.suppress(OSError):  # Linux only; elsewhere the host name alone
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        parts.append(os.readlink("/proc/self/ns/pid"))
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:8]


def temporary_sibling(target, kind="tmp"):
    """Returns a new hidden path next to `target`, named after it and after this process.

    Args:
        target: the final path, e.g. an extraction or decoded-cache folder.
        kind: "tmp" for a folder being built, "stale" for an old copy moved aside to delete.
    """
    target = Path(target)
    namespace = _process_namespace()
    owner = f"{namespace}-{os.getpid()}-" if namespace else ""
    return target.with_name(f".{target.name}.{kind}-{owner}{uuid.uuid4().hex[:8]}")


def _process_exists(pid):
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except OSError:
        return True  # e.g. PermissionError: it exists, under another user
    return True


def remove_stale_temporaries(parent):
    """Deletes the temporary folders in `parent` (see `temporary_sibling`) of killed processes.

    Args:
        parent: the folder that holds the final folders and their temporaries.
    """
    parent = Path(parent)
    if not parent.is_dir():
        return
    # Which temporaries are stale: when the name records a process of this machine (same
    # host, boot and PID namespace), exactly when that process is gone, so a kill's debris
    # goes at the next start and a live build is never touched, however slow. A process id
    # says nothing about processes of other machines sharing the folder (a network home
    # directory) or in other containers, and old names record none: those are deleted only
    # when unchanged for TEMPORARY_MAX_AGE_S. A reused pid merely delays a deletion.
    removed = []
    for entry in sorted(parent.iterdir()):
        match = _TEMPORARY_NAME.match(entry.name)
        if match is None or not entry.is_dir():
            continue
        namespace, pid = match.groups()
        if namespace is not None and namespace == _process_namespace():
            stale = not _process_exists(int(pid))
        else:
            try:
                stale = time.time() - entry.stat().st_mtime > TEMPORARY_MAX_AGE_S
            except FileNotFoundError:  # just renamed into place or deleted by its owner
                continue
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            if not entry.exists():
                removed.append(entry.name)
    if removed:
        print(
            f"Removed {len(removed)} temporary folder(s) left in {display_path(parent)} by interrupted runs: "
            f"{', '.join(removed)}.",
            flush=True,
        )


def is_archive(path):
    """True when `path`'s name ends like a supported archive (.zip, .tar.gz, .tgz, .tar).

    Args:
        path: a file path.
    """
    return Path(path).name.lower().endswith(ARCHIVE_SUFFIXES)


def find_dataset_folder(folder):
    """Returns the Tiny ImageNet folder at or directly inside `folder`, or None.

    Args:
        folder: the `tiny-imagenet-200` folder itself, or a folder that contains it
            (under that name or, when it is the only such child, under any name).
    """
    folder = Path(folder)
    if (folder / "wnids.txt").is_file():
        return folder
    if (folder / TINY_IMAGENET_DATASET_NAME / "wnids.txt").is_file():
        return folder / TINY_IMAGENET_DATASET_NAME
    if not folder.is_dir():
        return None
    children = [child for child in sorted(folder.iterdir()) if (child / "wnids.txt").is_file()]
    return children[0] if len(children) == 1 else None


def _nested_dataset_folders(folder, max_depth=3):
    """The folders with a wnids.txt 2 .. max_depth levels below `folder` (deeper than
    `find_dataset_folder` looks), nearest first."""
    found = []
    for depth in range(2, max_depth + 1):
        found += sorted(path.parent for path in Path(folder).glob("/".join(["*"] * depth + ["wnids.txt"])))
    return found


def check_layout(folder):
    """Raises FileNotFoundError naming the first entry of the official layout that is missing.

    Args:
        folder: the folder that should hold wnids.txt, words.txt, train/ and val/.
    """
    for entry in REQUIRED_ENTRIES:
        if not (Path(folder) / entry).exists():
            raise FileNotFoundError(
                f"{folder} is not a Tiny ImageNet-200 folder: the expected file "
                f"'{entry}' ({Path(folder) / entry}) is missing. Point path (or "
                f"{ENVIRONMENT_VARIABLE}) at the extracted 'tiny-imagenet-200' folder, a "
                "folder that contains it, or the downloaded archive."
            )


def resolve_dataset_folder(path=None, *, download=True, cache_dir=None):
    """Returns a checked `tiny-imagenet-200` folder, extracting or downloading once if needed.

    Args:
        path: the `tiny-imagenet-200` folder, a folder containing it, or an archive
            (.zip / .tar.gz). None searches `TINY_IMAGENET_DIR`, then the cache folder
            (a copy placed or downloaded there, or extracted there from a local archive),
            then downloads (when `download`).
        download: whether the official archive may be downloaded when nothing local exists.
        cache_dir: where archives are extracted and downloads go; None means
            `default_cache_dir()`.
    """
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if path is not None:
        return _folder_from_user_path(Path(path), cache_dir, "the path argument")
    environment_path = os.environ.get(ENVIRONMENT_VARIABLE)
    if environment_path:
        return _folder_from_user_path(
            Path(environment_path), cache_dir, f"the environment variable {ENVIRONMENT_VARIABLE}"
        )
    # Then a copy that an earlier call extracted from a local archive (e.g. the one
    # TINY_IMAGENET_DIR named for `make reproduce`), newest first.
    extracted = sorted((cache_dir / EXTRACTED_ARCHIVES_FOLDER).glob(f"*/{COMPLETE_MARKER}"),
                       key=lambda marker: marker.stat().st_mtime, reverse=True)
    candidates = [cache_dir / TINY_IMAGENET_DATASET_NAME, cache_dir / DOWNLOAD_EXTRACTION_FOLDER,
                  *(marker.parent for marker in extracted)]
    for candidate in candidates:
        complete = candidate.name == TINY_IMAGENET_DATASET_NAME or (candidate / COMPLETE_MARKER).exists()
        folder = find_dataset_folder(candidate) if complete else None
        if folder is not None:
            check_layout(folder)
            return folder
    if download:
        return download_tiny_imagenet(cache_dir)
    downloaded_archive = cache_dir / DOWNLOAD_FILE_NAME
    if downloaded_archive.is_file():
        return _folder_from_user_path(downloaded_archive, cache_dir, "the cache folder")
    raise FileNotFoundError(
        how_to_get_data(
            cache_dir,
            f"no path was given, {ENVIRONMENT_VARIABLE} is not set, nothing was found in "
            f"{cache_dir}, and download=False",
        )
    )


def _folder_from_user_path(path, cache_dir, origin):
    path = path.expanduser()
    if not path.exists():
        raise FileNotFoundError(how_to_get_data(cache_dir, f"the path {path} (from {origin}) does not exist"))
    archive = None
    if path.is_file():
        if not is_archive(path):
            raise ValueError(
                f"{path} (from {origin}) is a file but not an archive with one of the suffixes "
                f"{', '.join(ARCHIVE_SUFFIXES)}; give the archive or the extracted folder."
            )
        archive, path = path, extract_archive(path, cache_dir)
    folder = find_dataset_folder(path)
    if folder is None:
        raise FileNotFoundError(_not_a_dataset_message(path, archive, origin))
    check_layout(folder)
    return folder


def _not_a_dataset_message(path, archive, origin):
    """Explains why neither `path` nor a child of it holds wnids.txt.

    Args:
        path: the folder given, or the extraction of `archive`.
        archive: the archive `path` was extracted from, or None.
        origin: where the path came from, e.g. "the path argument".
    """
    expected = f"'wnids.txt' or '{TINY_IMAGENET_DATASET_NAME}/wnids.txt'"
    nested = _nested_dataset_folders(path)
    if archive is None and not nested:
        return (
            f"{path} (from {origin}) is not a Tiny ImageNet-200 folder: the expected file "
            f"'wnids.txt' is missing (looked for {path / 'wnids.txt'} and "
            f"{path / TINY_IMAGENET_DATASET_NAME / 'wnids.txt'})."
        )
    if not nested:
        return (
            f"The archive {archive} (from {origin}) is not a Tiny ImageNet-200 archive: it holds "
            f"no wnids.txt (looked for {expected}, and up to 3 folders deep). Give the archive "
            f"downloaded from {TINY_IMAGENET_URL}, or the extracted 'tiny-imagenet-200' folder."
        )
    relative = nested[0].relative_to(path) / "wnids.txt"
    levels = len(relative.parts) - 2
    depth = f"nested {'one level' if levels == 1 else f'{levels} levels'} deeper than expected"
    if archive is None:
        return (
            f"{path} (from {origin}) holds the data set {depth}: wnids.txt is at '{relative}' "
            f"inside it, not at {expected}. Pass path={nested[0]} instead."
        )
    return (
        f"The archive {archive} (from {origin}) holds the data set {depth}: wnids.txt is at "
        f"'{relative}' inside the archive, not at {expected}. Pass path={nested[0]} (its "
        f"extracted copy), or repack the archive with '{TINY_IMAGENET_DATASET_NAME}/' at its top level."
    )


def extract_archive(archive, cache_dir):
    """Extracts a local archive once into the cache and returns the extraction folder.

    The folder is named after the archive and a key of its absolute path, size and
    modification time, so a changed archive is extracted again. Extraction goes to a
    temporary folder that is renamed into place when complete.

    Args:
        archive: a .zip, .tar.gz, .tgz or .tar file.
        cache_dir: the cache folder; extractions go to `<cache_dir>/tiny-imagenet-extracted/`.
    """
    archive = Path(archive).resolve()
    status = archive.stat()
    key = hashlib.sha1(f"{archive}|{status.st_size}|{status.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = archive.name[: -len(next(s for s in ARCHIVE_SUFFIXES if archive.name.lower().endswith(s)))]
    target = Path(cache_dir) / EXTRACTED_ARCHIVES_FOLDER / f"{stem}-{key}"
    if (target / COMPLETE_MARKER).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent)
    temporary = temporary_sibling(target)
    temporary.mkdir()
    print(f"Extracting {display_path(archive)} into {display_path(target)} (done once, then reused)...", flush=True)
    started = time.perf_counter()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as opened:
                opened.extractall(temporary)  # zipfile drops absolute and ".." parts itself
        else:
            with tarfile.open(archive) as opened:
                opened.extractall(temporary, filter="data")  # refuses unsafe member paths
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
        shutil.rmtree(temporary, ignore_errors=True)
        raise ValueError(
            f"Could not extract {archive}: {error}. The archive is corrupt or truncated; "
            f"download it again from {TINY_IMAGENET_URL}."
        ) from error
    (temporary / COMPLETE_MARKER).write_text(str(archive) + "\n")
    if (target / COMPLETE_MARKER).exists():  # another process finished first: use its copy
        shutil.rmtree(temporary, ignore_errors=True)
        return target
    if target.exists():  # an interrupted earlier attempt
        shutil.rmtree(target)
    os.replace(temporary, target)
    print(f"Extracted in {time.perf_counter() - started:.1f} s.", flush=True)
    return target


def download_tiny_imagenet(cache_dir=None, *, origin=None, file_hash=None):
    """Downloads and extracts the official archive with `keras.utils.get_file`.

    Shows Keras' progress bar and checks the hash; a file with the wrong hash is deleted
    and never extracted. Reuses a complete earlier download and extraction.

    Args:
        cache_dir: where the archive and its extraction go; None means `default_cache_dir()`.
        origin: the URL; None means `TINY_IMAGENET_URL` (read when called).
        file_hash: the archive's MD5 (or SHA-256); None means `TINY_IMAGENET_MD5`.

    Returns:
        The `tiny-imagenet-200` folder inside `<cache_dir>/tiny-imagenet-200_extracted`.
    """
    cache_dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    origin = origin or TINY_IMAGENET_URL
    file_hash = file_hash or TINY_IMAGENET_MD5
    extraction = cache_dir / DOWNLOAD_EXTRACTION_FOLDER
    archive = cache_dir / DOWNLOAD_FILE_NAME
    if (extraction / COMPLETE_MARKER).exists() and find_dataset_folder(extraction) is not None:
        return find_dataset_folder(extraction)
    shutil.rmtree(extraction, ignore_errors=True)  # left over from an interrupted extraction
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        keras.utils.get_file(
            fname=DOWNLOAD_FILE_NAME,
            origin=origin,
            file_hash=file_hash,
            extract=True,
            cache_dir=str(cache_dir),
            cache_subdir=str(cache_dir.resolve()),
        )
    except ValueError as error:
        # get_file leaves a file with the wrong hash in place: delete it so it is never used.
        archive.unlink(missing_ok=True)
        shutil.rmtree(extraction, ignore_errors=True)
        raise ValueError(
            f"The file downloaded from {origin} does not match the expected hash {file_hash} "
            f"({error}); it was deleted from {archive}. Try again, or download it yourself "
            f"and check it with `md5sum`."
        ) from error
    except Exception as error:  # get_file raises a bare Exception on network failures
        raise FileNotFoundError(
            how_to_get_data(cache_dir, f"the download from {origin} failed ({error})")
        ) from error
    folder = find_dataset_folder(extraction)
    if folder is None:
        shutil.rmtree(extraction, ignore_errors=True)
        raise ValueError(
            f"The archive downloaded from {origin} ({archive}) does not contain a "
            "'tiny-imagenet-200' folder with wnids.txt."
        )
    check_layout(folder)
    (extraction / COMPLETE_MARKER).write_text(origin + "\n")
    return folder


@dataclass(frozen=True)
class Selection:
    """The files of a class selection, in the order of the loaded arrays.

    Attributes:
        folder: the `tiny-imagenet-200` folder.
        wnids: the selected class ids, sorted; a label is an index into this tuple.
        train_files, train_labels, val_files, val_labels: paths and int labels.
    """

    folder: Path
    wnids: tuple
    train_files: tuple
    train_labels: tuple
    val_files: tuple
    val_labels: tuple


def read_wnids(folder):
    """Returns the sorted class ids of wnids.txt.

    Args:
        folder: a checked `tiny-imagenet-200` folder.
    """
    wnids = sorted({line.strip() for line in (Path(folder) / "wnids.txt").read_text().splitlines()} - {""})
    if not wnids:
        raise ValueError(f"{Path(folder) / 'wnids.txt'} lists no class ids.")
    return wnids


def read_words(folder, wnids):
    """Returns {wnid: human-readable name} from words.txt (the wnid itself when absent).

    Args:
        folder: a checked `tiny-imagenet-200` folder.
        wnids: the class ids to look up.
    """
    wanted = set(wnids)
    names = {}
    with open(Path(folder) / "words.txt", encoding="utf-8") as words:
        for line in words:
            wnid, _, name = line.rstrip("\n").partition("\t")
            if wnid in wanted:
                names[wnid] = name.strip()
    return {wnid: names.get(wnid, wnid) for wnid in wnids}


def select_classes(all_wnids, classes):
    """Returns the sorted selected class ids.

    Args:
        all_wnids: the sorted class ids of the data set.
        classes: None (all), an int N (the first N sorted ids) or a list of ids.
    """
    if classes is None:
        return tuple(all_wnids)
    if isinstance(classes, numbers.Integral) and not isinstance(classes, bool):
        if not 1 <= classes <= len(all_wnids):
            raise ValueError(
                f"classes={classes} is out of range: give an int from 1 to {len(all_wnids)} "
                "(the first N classes in sorted wnid order), a list of wnids, or None."
            )
        return tuple(all_wnids[: int(classes)])
    if isinstance(classes, str) or not hasattr(classes, "__iter__"):
        raise TypeError(
            f"classes={classes!r} must be None, an int or a list of wnids such as ['{all_wnids[0]}']."
        )
    selected = list(classes)
    known = set(all_wnids)
    unknown = [wnid for wnid in selected if wnid not in known]
    if unknown:
        raise ValueError(
            f"Unknown wnid(s) in classes: {unknown}. Valid wnids are listed in wnids.txt, "
            f"e.g. {all_wnids[:3]}."
        )
    if not selected or len(set(selected)) != len(selected):
        raise ValueError(f"classes={selected!r} must be a non-empty list without repeats.")
    return tuple(sorted(selected))


def list_selection(folder, classes=None, images_per_class=None):
    """Lists the train and val files of a class selection (see the module docstring for order).

    Args:
        folder: a checked `tiny-imagenet-200` folder.
        classes: None, an int or a list of wnids (see `select_classes`).
        images_per_class: None (all) or M >= 1: the first M training images of each class.
    """
    folder = Path(folder)
    if images_per_class is not None and (
        isinstance(images_per_class, bool)
        or not isinstance(images_per_class, numbers.Integral)
        or images_per_class < 1
    ):
        raise ValueError(f"images_per_class={images_per_class!r} must be None or an int >= 1.")
    all_wnids = read_wnids(folder)
    wnids = select_classes(all_wnids, classes)
    label_of = {wnid: label for label, wnid in enumerate(wnids)}
    train_files, train_labels = [], []
    for wnid in wnids:
        images = folder / "train" / wnid / "images"
        if not images.is_dir():
            raise FileNotFoundError(
                f"{folder} is not a complete Tiny ImageNet-200 folder: the expected folder "
                f"{images} for class {wnid} (listed in wnids.txt) is missing."
            )
        names = sorted((n for n in os.listdir(images) if n.lower().endswith(IMAGE_SUFFIXES)), key=natural_key)
        if images_per_class is not None:
            if len(names) < images_per_class:
                raise ValueError(
                    f"images_per_class={images_per_class} but class {wnid} has only "
                    f"{len(names)} training images in {images}."
                )
            names = names[: int(images_per_class)]
        train_files += [str(images / name) for name in names]
        train_labels += [label_of[wnid]] * len(names)
    annotations = folder / "val" / "val_annotations.txt"
    val_entries = []
    known = set(all_wnids)
    for number, line in enumerate(annotations.read_text().splitlines(), start=1):
        fields = line.split("\t")
        if len(fields) < 2:
            if line.strip():
                raise ValueError(f"{annotations} line {number} is not 'file<TAB>wnid...': {line!r}")
            continue
        if fields[1] not in known:
            raise ValueError(
                f"{annotations} line {number} labels {fields[0]} with the unknown wnid "
                f"{fields[1]!r}: it is not a class of the data set (not in {folder / 'wnids.txt'}), "
                "so the file is damaged. Extract the archive again, or download it again from "
                f"{TINY_IMAGENET_URL}."
            )
        if fields[1] in label_of:
            val_entries.append((fields[0], label_of[fields[1]]))
    val_entries.sort(key=lambda entry: natural_key(entry[0]))
    return Selection(
        folder=folder,
        wnids=wnids,
        train_files=tuple(train_files),
        train_labels=tuple(train_labels),
        val_files=tuple(str(folder / "val" / "images" / name) for name, _ in val_entries),
        val_labels=tuple(label for _, label in val_entries),
    )
