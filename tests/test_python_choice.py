"""Checking a Python interpreter the user chooses: real interpreters, a shim, a program that is no Python."""

from __future__ import annotations

import sys

import pytest

from core import dependency_manager as dm
from core.deps import python_choice as pc

HERE = (sys.version_info[0], sys.version_info[1])


def test_qgis_s_own_python_is_accepted():
    info = pc.check_python(sys.executable)
    assert info == pc.PythonInfo(sys.executable, tuple(sys.version_info[:3]), sys.prefix, None)
    assert info.describe() == f"{sys.executable}: Python {'.'.join(map(str, sys.version_info[:3]))} in {sys.prefix}"


def test_another_install_of_the_same_version_is_allowed_with_a_warning(tmp_path):
    info = pc.check_python(sys.executable, HERE, prefixes=[str(tmp_path / "qgis")])
    assert info.warning.startswith(f"'{sys.executable}' is not the Python of this QGIS (it lives in {sys.prefix}; "
                                   f"QGIS's is in {tmp_path / 'qgis'})")


def test_another_python_version_is_refused():
    """A real interpreter whose version differs from the one QGIS runs."""
    other = (HERE[0], HERE[1] - 1)
    with pytest.raises(dm.DependencyInstallError) as err:
        pc.check_python(sys.executable, other)
    version = ".".join(map(str, sys.version_info[:3]))
    assert str(err.value).startswith(f"'{sys.executable}' is Python {version}, but QGIS runs Python "
                                     f"{other[0]}.{other[1]}: packages installed with it would not load in QGIS.")


def test_the_probe_s_answer_is_judged():
    answer = {"version": [3, 9, 18], "prefix": "/opt/py39", "base_prefix": "/opt/py39", "pip": True}
    with pytest.raises(dm.DependencyInstallError, match=r"is Python 3\.9\.18, but QGIS runs Python 3\.11"):
        pc.judge_python("/opt/py39/bin/python3.9", answer, (3, 11), ["/usr"])
    info = pc.judge_python("/opt/py39/bin/python3.9", answer, (3, 9), ["/opt/py39"])
    assert (info.version, info.prefix, info.warning) == ((3, 9, 18), "/opt/py39", None)
    venv = dict(answer, prefix="/home/me/venv")  # a venv made from QGIS's Python: its base prefix is QGIS's
    assert pc.judge_python("/home/me/venv/bin/python", venv, (3, 9), ["/opt/py39"]).warning is None
    with pytest.raises(dm.DependencyInstallError, match="has no pip"):
        pc.judge_python("/opt/py39/bin/python3.9", dict(answer, pip=False), (3, 9), ["/opt/py39"])


def test_a_shim_and_programs_that_are_no_python_are_refused(tmp_path):
    shim = tmp_path / "shims" / "python3"
    shim.parent.mkdir()
    shim.write_text('#!/usr/bin/env bash\nexec pyenv exec python3 "$@"\n')
    shim.chmod(0o755)
    with pytest.raises(dm.DependencyInstallError, match="is a launcher script"):
        pc.check_python(str(shim))
    qgis = tmp_path / "qgis-bin"
    qgis.write_bytes(b"\x7fELF")
    with pytest.raises(dm.DependencyInstallError, match="is not a Python interpreter: choose a program named python"):
        pc.check_python(str(qgis))
    broken = tmp_path / "python3"
    broken.write_bytes(b"\x00\x01not a program")
    broken.chmod(0o755)
    with pytest.raises(dm.DependencyInstallError, match=f"'{broken}' did not run as a Python interpreter"):
        pc.check_python(str(broken))
    with pytest.raises(dm.DependencyInstallError, match="did not run"):
        pc.check_python(str(tmp_path / "absent" / "python3"))
    with pytest.raises(dm.DependencyInstallError, match="is not a Python interpreter"):
        pc.check_python("python3")  # not a full path
