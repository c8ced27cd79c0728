"""The Dockerfile's pip install steps are scripts/install.sh's (what ``make install`` runs)
in the same order with the same pins; the few differences are listed in
``INSTALL_DIFFERENCES`` and asserted, so neither side can drift."""

from __future__ import annotations

import re
import shlex

import pytest

from tests.unit.deploy.paths import MAKEFILE, TORCH_CPU_INDEX
from tests.unit.deploy.pip_steps import (
    PipInstall,
    dockerfile_pip_installs,
    install_differences,
    install_sh_pip_installs,
    pip_installs,
)

INSTALL_DIFFERENCES = frozenset(
    {
        # A bare torch from PyPI is a multi-GB CUDA build; the machine install.sh runs on
        # resolves torch==2.13.0 to the CPU wheel by itself, the image must ask PyTorch's
        # CPU index for it. The pin is the same.
        f"torch==2.13.0: --index-url {TORCH_CPU_INDEX} in the Dockerfile only",
        # The image installs the package, not an editable checkout with the test tools.
        "<project>: editable in scripts/install.sh only",
        "<project>: extras [dev] in scripts/install.sh only",
    }
)
"""How the Dockerfile's pip steps differ from scripts/install.sh's: these and nothing else."""


def test_make_install_runs_scripts_install_sh() -> None:
    makefile = MAKEFILE.read_text("utf-8")
    recipe = re.search(r"^\.venv/\.installed:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)
    assert re.search(r"^install: \.venv/\.installed", makefile, re.MULTILINE)
    assert recipe is not None and "scripts/install.sh" in recipe.group(1)


def test_the_dockerfile_installs_what_scripts_install_sh_installs() -> None:
    sh = install_sh_pip_installs()
    docker = dockerfile_pip_installs()
    assert [s.requirement for s in sh] == ["pip", "torch==2.13.0", "<project>"], sh
    assert install_differences(sh, docker) == INSTALL_DIFFERENCES


def test_install_differences_notice_a_changed_pin_or_index() -> None:
    sh = install_sh_pip_installs()
    docker = dockerfile_pip_installs()
    moved = [
        PipInstall("torch==2.14.0", d.extras, d.options) if "torch" in d.requirement else d
        for d in docker
    ]
    with pytest.raises(AssertionError, match="same pins"):
        install_differences(sh, moved)
    cuda = [
        PipInstall(d.requirement, d.extras, frozenset()) if "torch" in d.requirement else d
        for d in docker
    ]
    assert install_differences(sh, cuda) != INSTALL_DIFFERENCES


def test_pip_install_lines_are_parsed() -> None:
    argv = shlex.split('.venv/bin/python -m pip install --quiet -e ".[dev]"')
    assert pip_installs(argv) == [
        PipInstall("<project>", ("dev",), frozenset({("--editable", "")}))
    ]
    argv = shlex.split(f'pip install "torch==2.13.0" --index-url {TORCH_CPU_INDEX}')
    assert pip_installs(argv) == [
        PipInstall("torch==2.13.0", (), frozenset({("--index-url", TORCH_CPU_INDEX)}))
    ]
    assert pip_installs(["python", "-m", "venv", "/opt/venv"]) == []
