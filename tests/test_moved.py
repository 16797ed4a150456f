"""The module paths docs named before 0.2 still work, with a DeprecationWarning, and name the same objects."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from sparsecodec._moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_paths_warn_and_alias_the_new_module(old: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {MOVED[old]}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(MOVED[old])


def test_old_api_import_still_works() -> None:
    sys.modules.pop("sparsecodec.codec", None)
    with pytest.warns(DeprecationWarning):
        from sparsecodec.codec import decode_file, encode_file
    from sparsecodec.api import decode_file as new_decode
    from sparsecodec.api import encode_file as new_encode

    assert (encode_file, decode_file) == (new_encode, new_decode)


def test_python_m_sparsecodec_train_runs_training() -> None:
    r = subprocess.run(
        [sys.executable, "-W", "default", "-m", "sparsecodec.train", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "python -m training.train" in r.stderr and "--out" in r.stdout
