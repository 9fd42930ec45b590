"""The course data: SST-5, Quora, STS-B and CFIMDB as the CS224N default final project
ships them, read into `Example`s and batched for BERT (notebook 03_heads; used by 04-08).

    from minbert.data import load, make_loader
    train = load("sst", "train")                      # list[Example]
    loader = make_loader(train, tokenizer, 32, shuffle=True, seed=0)  # from minbert/batching.py

Where the files are: `data_dir()` looks at its argument, then $MINBERT_DATA, then the
repository's `data/` folder. `python -m minbert.data fetch` downloads them (internet needed);
`python -m minbert.data check` reads every file present and prints counts.

Rules (data/README.md has the details): columns are found by name in the header; a row
with an empty sentence or label is skipped with one `DataWarning` per file naming the ids;
anything else malformed is a `DataError` naming file, line and what was expected. Without
`quora-train.csv` (absent from offline copies), Quora "train" and "dev" are a fixed split
of `quora-dev.csv` by sha1(id) (`quora_in_train`): the same on every run and machine.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import os
import random
import sys
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from .batching import PAIR_MODES, EpochSampler, make_loader  # noqa: F401 (data.make_loader)
from .config import check_choice
from .env import DATA_ENV, chosen_folder
from .files import atomic_file

REPO_DATA = Path(__file__).resolve().parents[1] / "data"
BASE_URL = "https://raw.githubusercontent.com/gpoesia/minbert-default-final-project/main/data/"

TASKS = ("sst", "quora", "sts")      # the three tasks of the course, in round-robin order
DATASETS = TASKS + ("cfimdb",)      # what read_file can read (CFIMDB: MLM text)
SPLITS = ("train", "dev", "test")
PREFIX = {"sst": "ids-sst", "quora": "quora", "sts": "sts", "cfimdb": "ids-cfimdb"}
# (task, split) -> file name in the CS224N distribution, e.g. ids-sst-test-student.csv
FILES = {(t, s): f"{PREFIX[t]}-{'test-student' if s == 'test' else s}.csv"
         for t in DATASETS for s in SPLITS}
TEXT_COLUMNS = {"sst": ("sentence",), "cfimdb": ("sentence",),
                "quora": ("sentence1", "sentence2"), "sts": ("sentence1", "sentence2")}
LABEL_COLUMN = {"sst": "sentiment", "cfimdb": "sentiment", "quora": "is_duplicate",
                "sts": "similarity"}
QUORA_TRAIN_PERCENT = 80


class DataError(ValueError):
    """A course file that cannot be read: the message names the file, the line, what was
    expected and what was found."""


class DataWarning(UserWarning):
    """Rows skipped by the skip rule (the message names them)."""


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    text2: str | None  # second sentence of a pair (Quora, STS), None for single sentences
    label: int | float | None  # None on the unlabelled test files


FETCH_HINT = (f"set {DATA_ENV}=/folder/with/the/csvs or run `python -m minbert.data fetch` "
              f"(needs internet); see data/README.md")


def data_dir(path=None) -> Path:
    """The folder holding the course CSVs: `path` > $MINBERT_DATA > <repo>/data."""
    folder, source = chosen_folder(path, DATA_ENV, REPO_DATA)
    if not any((folder / name).is_file() for name in FILES.values()):
        raise DataError(f"{folder} (from {source}) holds none of the course CSVs "
                        f"(e.g. {FILES['sst', 'train']}): {FETCH_HINT}")
    return folder


# ---------------------------------------------------------------- reading one file

def parse_label(task: str, raw: str, where: str):
    col = LABEL_COLUMN[task]
    try:
        x = float(raw)
    except ValueError:
        raise DataError(f"{where}: expected a number in column {col!r}, found {raw!r}") from None
    if task == "sts":
        if not 0.0 <= x <= 5.0:  # also catches nan
            raise DataError(f"{where}: expected a similarity in 0..5 in column {col!r}, "
                            f"found {raw!r}")
        return x
    allowed = range(5) if task == "sst" else range(2)
    if not (x.is_integer() and int(x) in allowed):
        raise DataError(f"{where}: expected an integer label {allowed.start}..{allowed.stop - 1} "
                        f"in column {col!r}, found {raw!r}")
    return int(x)


def column_index(path, header: list | None, task: str, labelled: bool) -> dict:
    """{column name: position} of the columns `task` needs, or a DataError naming the file,
    line 1, the columns missing and a hint (wrong separator, an unlabelled file). A header
    of None is an empty file."""
    wanted = ("id",) + TEXT_COLUMNS[task] + ((LABEL_COLUMN[task],) if labelled else ())
    if header is None:
        raise DataError(f"{path}:1: empty file; expected a tab-separated header "
                        f"naming {', '.join(wanted)}")
    header = [h.strip() for h in header]
    missing = [c for c in wanted if c not in header]
    if missing:
        hint = ""
        if len(header) == 1:
            hint = " (one column: is the file " + (
                "comma-separated?" if "," in header[0] else "tab-separated?") + ")"
        elif labelled and missing == [LABEL_COLUMN[task]]:
            hint = " (an unlabelled test file? read it with labelled=False)"
        raise DataError(f"{path}:1: expected a header with columns {', '.join(wanted)}; "
                        f"missing {', '.join(missing)}; found {header}{hint}")
    return {c: header.index(c) for c in wanted}


def read_row(task: str, row: list, col: dict, labelled: bool, where: str):
    """One data row -> (id, Example), or (id, None) when the skip rule drops it (an empty
    sentence or label); a DataError for an empty id or a bad label."""
    ex_id = row[col["id"]].strip()
    texts = [row[col[c]].strip() for c in TEXT_COLUMNS[task]]
    raw = row[col[LABEL_COLUMN[task]]].strip() if labelled else None
    if not ex_id:
        raise DataError(f"{where}: expected an id in column 'id', found an empty field")
    if not all(texts) or raw == "":
        return ex_id, None
    label = parse_label(task, raw, where) if labelled else None
    text2 = texts[1] if len(texts) > 1 else None
    return ex_id, Example(ex_id, texts[0], text2, label)


def read_file(task: str, path, labelled: bool = True) -> list[Example]:
    """Read one CSV of `task` into Examples, in file order. `labelled=False` for the
    *-test-student files, which have no label column."""
    check_choice("task", task, DATASETS)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; {FETCH_HINT}")
    examples, skipped = [], []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f, delimiter="\t")
            header = next(reader, None)
            col = column_index(path, header, task, labelled)
            for row in reader:
                line = reader.line_num  # 1-based, header = 1; the line the row ends on
                if not row:
                    continue  # a blank line is not a row (pandas skips them too)
                if len(row) != len(header):
                    raise DataError(f"{path}:{line}: expected {len(header)} tab-separated fields "
                                    f"as in the header, found {len(row)}")
                ex_id, example = read_row(task, row, col, labelled, f"{path}:{line}")
                if example is None:
                    skipped.append((line, ex_id))  # the skip rule: say so below, never silently
                else:
                    examples.append(example)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: expected UTF-8 text, found undecodable bytes ({e})") from None
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: expected a tab-separated row ({e})") from None
    if not examples and not skipped:
        raise DataError(f"{path}:2: expected at least one row after the header, found none")
    if skipped:
        warnings.warn(f"{path}: skipped {len(skipped)} row(s) with an empty sentence or label: "
                      + ", ".join(f"line {n} id {i}" for n, i in skipped),
                      DataWarning, stacklevel=2)
    return examples


def quora_in_train(ex_id: str) -> bool:
    """The fixed offline Quora split: sha1 is the same on every machine and run."""
    return int(hashlib.sha1(ex_id.encode("utf-8")).hexdigest()[:8], 16) % 100 < QUORA_TRAIN_PERCENT


def load(task: str, split: str, root=None) -> list[Example]:
    """Examples of `task` ("sst", "quora", "sts", "cfimdb") and `split` ("train", "dev",
    "test"; test has label None). Quora without quora-train.csv: see the module docstring."""
    check_choice("task", task, DATASETS)
    check_choice("split", split, SPLITS)
    folder = data_dir(root)
    if task == "quora" and split != "test" and not (folder / FILES["quora", "train"]).is_file():
        dev = read_file("quora", folder / FILES["quora", "dev"])
        return [e for e in dev if quora_in_train(e.id) == (split == "train")]
    return read_file(task, folder / FILES[task, split], labelled=split != "test")


def subset(examples, n, seed=0) -> list[Example]:
    """n examples drawn with random.Random(seed), kept in their original order; n=None keeps all."""
    examples = list(examples)
    if n is None or n >= len(examples):
        return examples
    if n < 0:
        raise ValueError(f"n must be >= 0 or None, got {n}")
    keep = sorted(random.Random(seed).sample(range(len(examples)), n))
    return [examples[i] for i in keep]


# ---------------------------------------------------------------- command line

def fetch(dest, files=None, base_url=BASE_URL, force=False,
          opener=urllib.request.urlopen) -> list[Path]:
    """Download the course CSVs into dest. Each file is checked with read_file and then
    renamed into place, so a failed or garbled download leaves nothing behind."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    task_of = {name: (task, split) for (task, split), name in FILES.items()}
    written = []
    for name in files or FILES.values():
        target = dest / name
        if target.exists() and not force:
            print(f"{target}: present, kept (--force downloads again)")
            continue
        url = base_url + name
        with atomic_file(target) as tmp:  # a failed or garbled download leaves nothing
            with open(tmp, "wb") as out:
                try:
                    with opener(url, timeout=60) as response:
                        while chunk := response.read(1 << 20):
                            out.write(chunk)
                except Exception as e:  # offline, 404, timeout, ...
                    raise DataError(f"could not download {url} ({type(e).__name__}: {e}); "
                                    f"`fetch` needs internet. Or copy the CSVs into {dest} "
                                    f"or set {DATA_ENV}") from None
            task, split = task_of[name]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DataWarning)  # quora-dev's known rows
                n = len(read_file(task, tmp, labelled=split != "test"))
        print(f"{target}: {n} examples")
        written.append(target)
    return written


def check(root=None):
    folder = data_dir(root)
    print(f"data folder: {folder}")
    for (task, split), name in FILES.items():
        if (folder / name).is_file():
            n = len(read_file(task, folder / name, labelled=split != "test"))
            print(f"  {name:32s} {task:6s} {split:5s} {n:7d}")
        else:
            print(f"  {name:32s} missing")
    has = lambda key: (folder / FILES[key]).is_file()
    if has(("quora", "dev")) and not has(("quora", "train")):
        print(f"  quora train/dev from {FILES['quora', 'dev']} by sha1(id): "
              f"{len(load('quora', 'train', folder))} / {len(load('quora', 'dev', folder))}")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m minbert.data", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    f = sub.add_parser("fetch", help="download the course CSVs (needs internet)")
    f.add_argument("--dest", default=os.environ.get(DATA_ENV) or str(REPO_DATA))
    f.add_argument("--force", action="store_true", help="download files already present again")
    c = sub.add_parser("check", help="read every file present and print counts")
    c.add_argument("--root", default=None)
    args = p.parse_args(argv)
    try:
        fetch(args.dest, force=args.force) if args.command == "fetch" else check(args.root)
    except DataError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
