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

What a folder promises (`promised_layout`): Tiny ImageNet-200 has 500 training and 50
validation images per class; a synthetic stand-in has the counts recorded in its
`synthetic.json`. `list_selection` refuses a folder that breaks the promise for the classes it
lists: a validation image listed twice (with the same label or two), a selected class with
another number of validation images, or a class with fewer training images than asked for
(with `images_per_class=None`, another number than promised).

Shared folders (extractions, the decoded cache, the synthetic data set) are written by several
processes at once when grids start together on a fresh folder. Each process builds in its own
hidden temporary folder next to the final place (`temporary_sibling`) and ends with
`install_folder`: the first complete copy is renamed into place and never touched again, the
later ones are deleted. The next build in the same folder deletes the temporaries left by
killed processes (`remove_stale_temporaries`).
"""

import contextlib
import hashlib
import json
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

from utils.paths import display_path

try:
    import fcntl
except ImportError:  # not POSIX: installs go unlocked
    fcntl = None

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
TINY_IMAGENET_TRAIN_PER_CLASS = 500
TINY_IMAGENET_VAL_PER_CLASS = 50
# The synthetic stand-in's marker (utils.synthetic.SYNTHETIC_MARKER, which imports this module).
SYNTHETIC_MARKER = "synthetic.json"
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


@contextlib.contextmanager
def _installing_into(parent):
    """Holds an exclusive lock on the folder `parent` among the processes installing into it.

    The lock is taken on the folder itself, so it leaves no file behind, and the operating
    system releases it when its process ends.
    """
    if fcntl is None:
        yield
        return
    descriptor = os.open(parent, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):
            # File systems without flock (some network mounts) get the unlocked behaviour: a
            # race there is as rare as before, and refusing to build would be worse.
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def install_folder(temporary, target, is_complete):
    """Renames the finished folder `temporary` to `target`, unless `target` is complete already.

    Called by every process that builds a shared folder, each with its own `temporary`. Under
    a lock held only by installing processes: a complete `target` (another process finished
    first, and may be reading it) is kept and `temporary` deleted; an incomplete one (a build
    killed before its last step, an older copy that `is_complete` refuses) is renamed aside,
    `temporary` renamed into place, and the old one deleted. Readers take no lock: they check
    the folder's completion marker.

    Args:
        temporary: the complete new folder, a `temporary_sibling` of `target`.
        target: the final path.
        is_complete: function of a path, True when it holds a complete folder that can be used.

    Returns:
        True when `temporary` became `target`, False when `target` was kept.
    """
    temporary, target = Path(temporary), Path(target)
    stale = None
    with _installing_into(target.parent):
        if is_complete(target):
            shutil.rmtree(temporary, ignore_errors=True)
            return False
        if os.path.lexists(target):
            stale = temporary_sibling(target, "stale")
            os.replace(target, stale)
        os.replace(temporary, target)
    if stale is not None:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    return True


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
        found += sorted(
            path.parent for path in Path(folder).glob("/".join(["*"] * depth + ["wnids.txt"]))
        )
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
    extracted = sorted(
        (cache_dir / EXTRACTED_ARCHIVES_FOLDER).glob(f"*/{COMPLETE_MARKER}"),
        key=lambda marker: marker.stat().st_mtime,
        reverse=True,
    )
    candidates = [
        cache_dir / TINY_IMAGENET_DATASET_NAME,
        cache_dir / DOWNLOAD_EXTRACTION_FOLDER,
        *(marker.parent for marker in extracted),
    ]
    for candidate in candidates:
        complete = (
            candidate.name == TINY_IMAGENET_DATASET_NAME or (candidate / COMPLETE_MARKER).exists()
        )
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
        raise FileNotFoundError(
            how_to_get_data(cache_dir, f"the path {path} (from {origin}) does not exist")
        )
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
        archives = (
            sorted(child.name for child in path.iterdir() if child.is_file() and is_archive(child))
            if path.is_dir()
            else []
        )
        hint = (
            f" It holds the archive '{archives[0]}': give the archive itself ({path / archives[0]}), "
            "or extract it there."
            if archives
            else ""
        )
        return (
            f"{path} (from {origin}) is not a Tiny ImageNet-200 folder: the expected file "
            f"'wnids.txt' is missing (looked for {path / 'wnids.txt'} and "
            f"{path / TINY_IMAGENET_DATASET_NAME / 'wnids.txt'}).{hint}"
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
    stem = archive.name[
        : -len(next(s for s in ARCHIVE_SUFFIXES if archive.name.lower().endswith(s)))
    ]
    target = Path(cache_dir) / EXTRACTED_ARCHIVES_FOLDER / f"{stem}-{key}"
    if _extraction_is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target.parent)
    temporary = temporary_sibling(target)
    temporary.mkdir()
    print(
        f"Extracting {display_path(archive)} into {display_path(target)} (done once, then reused)...",
        flush=True,
    )
    started = time.perf_counter()
    try:
        _extract_into(archive, temporary, origin=TINY_IMAGENET_URL)
        (temporary / COMPLETE_MARKER).write_text(str(archive) + "\n")
        installed = install_folder(temporary, target, _extraction_is_complete)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    if installed:
        print(f"Extracted in {time.perf_counter() - started:.1f} s.", flush=True)
    return target


def _extraction_is_complete(folder):
    return (Path(folder) / COMPLETE_MARKER).is_file()


def _extract_into(archive, folder, origin):
    """Extracts `archive` into the existing `folder`; ValueError when the archive is damaged."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as opened:
                opened.extractall(folder)  # zipfile drops absolute and ".." parts itself
        else:
            with tarfile.open(archive) as opened:
                opened.extractall(folder, filter="data")  # refuses unsafe member paths
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as error:
        raise ValueError(
            f"Could not extract {archive}: {error}. The archive is corrupt or truncated; "
            f"download it again from {origin}."
        ) from error


def download_tiny_imagenet(cache_dir=None, *, origin=None, file_hash=None):
    """Downloads and extracts the official archive, with `keras.utils.get_file`'s progress bar.

    Checks the hash; a file with the wrong hash is deleted and never extracted. Reuses a
    complete earlier download and extraction. The download and the extraction are each made in
    a temporary folder of this process and then renamed into place, so processes that start at
    once on an empty cache do not break each other's copies.

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
    if _extraction_is_complete(extraction) and find_dataset_folder(extraction) is not None:
        return find_dataset_folder(extraction)
    cache_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(cache_dir)
    if not (archive.is_file() and _hash_of(archive, file_hash) == file_hash.lower()):
        _download(origin, file_hash, archive)
    temporary = temporary_sibling(extraction)
    temporary.mkdir()
    try:
        _extract_into(archive, temporary, origin=origin)
        if find_dataset_folder(temporary) is None:
            raise ValueError(
                f"The archive downloaded from {origin} ({archive}) does not contain a "
                "'tiny-imagenet-200' folder with wnids.txt."
            )
        check_layout(find_dataset_folder(temporary))
        (temporary / COMPLETE_MARKER).write_text(origin + "\n")
        install_folder(
            temporary,
            extraction,
            lambda folder: (
                _extraction_is_complete(folder) and find_dataset_folder(folder) is not None
            ),
        )
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return find_dataset_folder(extraction)


def _hash_of(file, expected):
    """The hex digest of `file` in the algorithm `get_file` infers from `expected`: SHA-256 for
    64 hex digits, else MD5."""
    digest = hashlib.sha256() if len(expected) == 64 else hashlib.md5()
    with open(file, "rb") as opened:
        for block in iter(lambda: opened.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(origin, file_hash, archive):
    """Downloads `origin` into a temporary folder of this process, checks its hash, and renames
    it to `archive` (a whole file, atomically: a process reading an earlier copy keeps it)."""
    import keras  # here, so that listing and checking folders does not start TensorFlow

    temporary = temporary_sibling(archive)
    temporary.mkdir()
    try:
        try:
            downloaded = keras.utils.get_file(
                fname=archive.name,
                origin=origin,
                file_hash=file_hash,
                cache_dir=str(temporary),
                cache_subdir=str(temporary.resolve()),
            )
        except ValueError as error:
            raise ValueError(
                f"The file downloaded from {origin} does not match the expected hash {file_hash} "
                f"({error}); it was deleted, so {archive} was not written. Try again, or download "
                "it yourself and check it with `md5sum`."
            ) from error
        except Exception as error:  # get_file raises a bare Exception on network failures
            raise FileNotFoundError(
                how_to_get_data(archive.parent, f"the download from {origin} failed ({error})")
            ) from error
        os.replace(downloaded, archive)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


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


@dataclass(frozen=True)
class Layout:
    """What a folder in the official layout promises, and what to do when it does not hold.

    Attributes:
        train_per_class, val_per_class: images per class.
        train_source, val_source: where each count comes from, for messages, e.g. "Tiny
            ImageNet-200 has 500 per class".
        repair: how to replace a damaged folder, one sentence.
    """

    train_per_class: int
    val_per_class: int
    train_source: str
    val_source: str
    repair: str


def promised_layout(folder):
    """Returns the `Layout` that a `tiny-imagenet-200`-layout folder promises.

    Tiny ImageNet-200's counts, or, for a synthetic stand-in, those recorded in its
    `synthetic.json`.

    Args:
        folder: a checked `tiny-imagenet-200`-layout folder.
    """
    folder = Path(folder)
    marker = folder / SYNTHETIC_MARKER
    if not marker.exists():
        return Layout(
            train_per_class=TINY_IMAGENET_TRAIN_PER_CLASS,
            val_per_class=TINY_IMAGENET_VAL_PER_CLASS,
            train_source=f"Tiny ImageNet-200 has {TINY_IMAGENET_TRAIN_PER_CLASS} per class",
            val_source=f"Tiny ImageNet-200 has {TINY_IMAGENET_VAL_PER_CLASS} per class",
            repair=f"Extract the archive again, or download it again from {TINY_IMAGENET_URL}.",
        )
    repair = f"Delete {folder} and generate it again with make_synthetic_tiny_imagenet."
    try:
        settings = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{marker} is damaged: it is not readable JSON ({error}). {repair}"
        ) from None
    counts = {
        name: settings.get(name) if isinstance(settings, dict) else None
        for name in ("images_per_class", "val_per_class")
    }
    if not all(
        isinstance(count, int) and not isinstance(count, bool) and count >= 1
        for count in counts.values()
    ):
        raise ValueError(
            f"{marker} is damaged: it must record images_per_class and val_per_class as ints >= 1, "
            f"and holds {json.dumps(settings)[:200]}. {repair}"
        )
    return Layout(
        train_per_class=counts["images_per_class"],
        val_per_class=counts["val_per_class"],
        train_source=f"it was generated with images_per_class={counts['images_per_class']}, see {marker}",
        val_source=f"it was generated with val_per_class={counts['val_per_class']}, see {marker}",
        repair=repair,
    )


def read_wnids(folder):
    """Returns the sorted class ids of wnids.txt.

    Args:
        folder: a checked `tiny-imagenet-200` folder.
    """
    wnids = sorted(
        {line.strip() for line in (Path(folder) / "wnids.txt").read_text().splitlines()} - {""}
    )
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


def _read_val_annotations(annotations, all_wnids, layout):
    """Returns {image name: (wnid, line number)} of val_annotations.txt, refusing a damaged file:
    a line that is not 'file<TAB>wnid...', an unknown wnid, an image listed twice."""
    known = set(all_wnids)
    labels = {}
    for number, line in enumerate(annotations.read_text().splitlines(), start=1):
        fields = line.split("\t")
        if len(fields) < 2:
            if line.strip():
                raise ValueError(f"{annotations} line {number} is not 'file<TAB>wnid...': {line!r}")
            continue
        name, wnid = fields[0], fields[1]
        if wnid not in known:
            raise ValueError(
                f"{annotations} line {number} labels {name} with the unknown wnid "
                f"{wnid!r}: it is not a class of the data set (not in {annotations.parents[1] / 'wnids.txt'}), "
                f"so the file is damaged. {layout.repair}"
            )
        if name in labels:
            first_wnid, first_number = labels[name]
            listed = (
                f"lists the image {name} again with the label {wnid}, as line {first_number} does"
                if wnid == first_wnid
                else f"lists the image {name} with the label {wnid}, but line {first_number} labels it {first_wnid}"
            )
            raise ValueError(
                f"{annotations} line {number} {listed}: each validation image must be listed exactly "
                f"once, so the file is damaged. {layout.repair}"
            )
        labels[name] = (wnid, number)
    return labels


def _list_train_images(folder, wnid, images_per_class, layout):
    """Returns the image names of a class's training folder in natural order, the first
    `images_per_class` of them (None: all, which must be as many as `layout` promises)."""
    images = folder / "train" / wnid / "images"
    if not images.is_dir():
        raise FileNotFoundError(
            f"{folder} is not a complete Tiny ImageNet-200 folder: the expected folder "
            f"{images} for class {wnid} (listed in wnids.txt) is missing."
        )
    names = sorted(
        (n for n in os.listdir(images) if n.lower().endswith(IMAGE_SUFFIXES)), key=natural_key
    )
    damaged = (
        f"expected {layout.train_per_class} ({layout.train_source}), so the data set is incomplete or "
        f"damaged. {layout.repair}"
    )
    if images_per_class is None:
        if len(names) != layout.train_per_class:
            raise ValueError(
                f"Class {wnid} has {len(names)} training images in {images}, {damaged}"
            )
        return names
    if len(names) < images_per_class:
        if len(names) < layout.train_per_class:
            raise ValueError(
                f"images_per_class={images_per_class} but class {wnid} has only {len(names)} training "
                f"images in {images}, {damaged}"
            )
        raise ValueError(
            f"images_per_class={images_per_class} but class {wnid} has only {len(names)} training "
            f"images in {images} ({layout.train_source}). Use images_per_class={layout.train_per_class} "
            "or less, or None for all of them."
        )
    return names[: int(images_per_class)]


def list_selection(folder, classes=None, images_per_class=None):
    """Lists the train and val files of a class selection (see the module docstring for order).

    Raises ValueError, naming the file, class and counts, when the folder breaks its
    `promised_layout` (see the module docstring): the whole of val_annotations.txt is
    checked, the counts for the selected classes only.

    Args:
        folder: a checked `tiny-imagenet-200` folder.
        classes: None, an int or a list of wnids (see `select_classes`).
        images_per_class: None (all, as many as the layout promises) or M >= 1: the first M
            training images of each class.
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
    layout = promised_layout(folder)
    label_of = {wnid: label for label, wnid in enumerate(wnids)}
    annotations = folder / "val" / "val_annotations.txt"
    val_labels = _read_val_annotations(annotations, all_wnids, layout)
    train_files, train_labels = [], []
    for wnid in wnids:
        names = _list_train_images(folder, wnid, images_per_class, layout)
        images = folder / "train" / wnid / "images"
        train_files += [str(images / name) for name in names]
        train_labels += [label_of[wnid]] * len(names)
    val_entries = [
        (name, label_of[wnid]) for name, (wnid, _) in val_labels.items() if wnid in label_of
    ]
    counts = dict.fromkeys(wnids, 0)
    for _, label in val_entries:
        counts[wnids[label]] += 1
    for wnid, count in counts.items():
        if count != layout.val_per_class:
            raise ValueError(
                f"{annotations} lists {count} validation images of class {wnid}, expected "
                f"{layout.val_per_class} ({layout.val_source}), so the file is damaged or incomplete. "
                f"{layout.repair}"
            )
    val_entries.sort(key=lambda entry: natural_key(entry[0]))
    return Selection(
        folder=folder,
        wnids=wnids,
        train_files=tuple(train_files),
        train_labels=tuple(train_labels),
        val_files=tuple(str(folder / "val" / "images" / name) for name, _ in val_entries),
        val_labels=tuple(label for _, label in val_entries),
    )
