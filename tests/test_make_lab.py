"""`make lab` starts JupyterLab with the course (issue 14, acceptance 1).

The README's first command, on a free local port: the server answers /api/status, serves
JupyterLab's page, and its root holds the course's notebooks; then it is stopped. It uses
the environment that runs the tests (VENV=sys.prefix) and runs only when that environment is
up to date for make (`make -q env`), so the test never installs anything; `make test` and
.ci/run make it so (elsewhere it skips and says `make env`).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "minbert-make-lab-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.read()


def test_make_lab_serves_the_course(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed (apt-get install -y make)")
    venv = f"VENV={sys.prefix}"
    if subprocess.run(["make", "-q", "env", venv], cwd=ROOT).returncode != 0:
        pytest.skip(f"{sys.prefix} is not up to date for make: run `make env` first")
    port = free_port()
    lab_args = (f"LAB_ARGS=--no-browser --allow-root --port={port} --ServerApp.ip=127.0.0.1 "
                f"--ServerApp.port_retries=0 --IdentityProvider.token={TOKEN} "
                f"--LabApp.workspaces_dir={tmp_path}")
    log = (tmp_path / "make-lab.log").open("w")
    proc = subprocess.Popen(["make", "lab", venv, lab_args], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                status, body = fetch(f"{base}/api/status?token={TOKEN}")
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, \
                    (tmp_path / "make-lab.log").read_text()[-3000:]
                time.sleep(0.5)
        assert status == 200 and {"started", "kernels"} <= set(json.loads(body))
        status, page = fetch(f"{base}/lab?token={TOKEN}")
        assert status == 200 and b"JupyterLab" in page
        _, listing = fetch(f"{base}/api/contents?token={TOKEN}")
        names = {item["name"] for item in json.loads(listing)["content"]}
        assert {"01_attention.ipynb", "08_results.ipynb"} <= names, "root is notebooks/"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # make and the server it started: one process group
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    assert "jupyter lab notebooks/" in (tmp_path / "make-lab.log").read_text()
