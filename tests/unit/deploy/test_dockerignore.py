""".dockerignore and the build context: local state stays out, everything the Dockerfile
copies (the packages and the files pyproject.toml names) stays in."""

from __future__ import annotations

import re
from pathlib import Path

from tests.unit.deploy.dockerfile import dockerfile, stage
from tests.unit.deploy.dockerignore import dockerignore_patterns, is_dockerignored
from tests.unit.deploy.paths import PYPROJECT, ROOT


def test_dockerignore_leaves_out_local_state() -> None:
    patterns = dockerignore_patterns()
    for path in (".venv/bin/python", ".cache/x", ".git/HEAD", ".artifacts/a.png"):
        assert is_dockerignored(path, patterns), path
    assert is_dockerignored("proxy/__pycache__/app.cpython-311.pyc", patterns)
    assert is_dockerignored("vetcache.egg-info/PKG-INFO", patterns)


def test_everything_the_dockerfile_copies_is_in_the_build_context() -> None:
    patterns = dockerignore_patterns()
    sources = [
        source
        for i in dockerfile()
        if i.keyword == "COPY" and not i.args.startswith("--from")
        for source in i.args.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not is_dockerignored(source, patterns), f"{source} is in .dockerignore"
    assert not is_dockerignored("proxy/app.py", patterns)


def test_the_dockerfile_copies_the_packages_and_readme_pyproject_names() -> None:
    pyproject = PYPROJECT.read_text("utf-8")
    include = re.search(r"\[tool\.setuptools\.packages\.find\]\ninclude = \[(.*)\]", pyproject)
    readme = re.search(r'^readme = "(.+)"', pyproject, re.MULTILINE)
    assert include is not None and readme is not None
    packages = {name.strip(' "*') for name in include.group(1).split(",")}
    copied = {
        Path(source).name
        for i in stage("builder")
        if i.keyword == "COPY"
        for source in i.args.split()[:-1]
    }
    assert packages | {"pyproject.toml", readme.group(1)} <= copied
