"""The one place minbert reads its environment switches.

MINBERT_CI=1  -> CI mode: every notebook shrinks data and steps so it runs under
                 nbval in about a minute on 2 CPU cores. Nothing else differs.
MINBERT_DATA  -> folder holding the course CSVs (see data/README.md).
"""
import os

CI_ENV = "MINBERT_CI"
DATA_ENV = "MINBERT_DATA"


def ci_mode() -> bool:
    return os.environ.get(CI_ENV, "0").strip().lower() not in ("", "0", "false", "no")


def pick(*, student, ci):
    """The CI-mode value in CI, the student value otherwise: `pick(student=2560, ci=32)`."""
    return ci if ci_mode() else student
