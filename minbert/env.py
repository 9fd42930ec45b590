"""The one place minbert reads its environment switches.

MINBERT_CI=1  -> CI mode: every notebook shrinks data and steps so it runs under
                 nbval in about a minute on 2 CPU cores. Nothing else differs.
MINBERT_DATA  -> folder holding the course CSVs (see data/README.md).
MINBERT_RESULTS -> folder holding the result JSONs notebook 08 reads (default: the
                 results/ folder beside the minbert package; minbert.report.results).
MINBERT_YOURS  -> folder of the learner's saved exercise answers (default: yours/ beside
                 the minbert package; minbert.yours).
MINBERT_CHECKS=raise|report -> what a failing check cell does (minbert.checks).
                 report (the default for a student, interactive): it prints its verdict
                 and returns, so "Run All" runs every later cell. raise (the default under
                 MINBERT_CI=1; nbval, the grader and `python -m minbert.check` set it): it raises.
"""
import os
from pathlib import Path

CI_ENV = "MINBERT_CI"
DATA_ENV = "MINBERT_DATA"
RESULTS_ENV = "MINBERT_RESULTS"
YOURS_ENV = "MINBERT_YOURS"
CHECKS_ENV = "MINBERT_CHECKS"
CHECK_MODES = ("raise", "report")


def ci_mode() -> bool:
    return os.environ.get(CI_ENV, "0").strip().lower() not in ("", "0", "false", "no")


def pick(*, student, ci):
    """The CI-mode value in CI, the student value otherwise: `pick(student=2560, ci=32)`."""
    return ci if ci_mode() else student


def checks_raise() -> bool:
    """True when a failing check must raise: MINBERT_CHECKS=raise, or unset in CI mode."""
    mode = os.environ.get(CHECKS_ENV, "").strip().lower()
    if mode and mode not in CHECK_MODES:
        raise ValueError(f"{CHECKS_ENV}={os.environ[CHECKS_ENV]!r}: expected one of "
                         f"{', '.join(CHECK_MODES)} (or unset)")
    return mode == "raise" if mode else ci_mode()


def chosen_folder(path, variable: str, default) -> tuple:
    """(folder, where it came from): `path` if given, else $variable if set, else `default`."""
    if path is not None:
        folder, source = Path(path), "the path argument"
    elif os.environ.get(variable):
        folder, source = Path(os.environ[variable]), f"${variable}"
    else:
        folder, source = Path(default), "the default"
    return folder.expanduser(), source
