"""The Dockerfile and compose.yaml: built where a Docker engine answers; everywhere else their
structure is checked (pinned images, a non-root user, health checks, commands that exist,
LEDGER_* variables that are real settings)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import ROOT
from tests.test_settings_docs import names_in_code

DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())


def docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    return done.returncode == 0


@pytest.mark.skipif(not docker_answers(), reason="no Docker engine here: structure checked below")
def test_the_image_builds_and_runs_as_a_non_root_user() -> None:
    tag = "session-ledger:test"
    subprocess.run(["docker", "build", "-t", tag, str(ROOT)], check=True, timeout=1800)
    who = subprocess.run(["docker", "run", "--rm", tag, "id", "-u"], capture_output=True,
                         text=True, check=True, timeout=120)  # fmt: skip
    assert who.stdout.strip() not in ("", "0")
    help_ = subprocess.run(["docker", "run", "--rm", tag, "ledger", "serve", "--help"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert help_.returncode == 0 and "--worker" in help_.stdout


def pinned(image: str) -> bool:
    """A tag naming a version (digits), not latest or a bare name."""
    name, _, tag = image.partition(":")
    return bool(name) and bool(re.search(r"\d", tag)) and "latest" not in tag


def test_the_dockerfile_is_slim_pinned_non_root_and_healthchecked() -> None:
    joined = DOCKERFILE.replace("\\\n", " ")  # continuation lines as one instruction
    lines = [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]
    bases = [ln.split()[1] for ln in lines if ln.startswith("FROM ")]
    assert bases and all(pinned(b) and "slim" in b and b.startswith("python:3.11") for b in bases)
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert any(ln.startswith("HEALTHCHECK") and "/healthz" in ln for ln in lines)
    cmd = next(ln for ln in reversed(lines) if ln.startswith("CMD "))
    assert '"ledger", "serve", "--host", "0.0.0.0"' in cmd
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git"} <= set(ignored)


def test_compose_runs_postgres_the_api_and_a_worker() -> None:
    services = COMPOSE["services"]
    assert set(services) == {"db", "api", "worker"}
    assert all(pinned(s["image"]) for s in services.values())
    assert services["db"]["image"].startswith("postgres:")
    assert services["api"]["command"][:2] == ["ledger", "serve"]
    assert services["worker"]["command"] == ["ledger", "project"]
    assert services["api"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert "healthcheck" in services["db"] and "/healthz" in str(services["api"]["healthcheck"])
    assert any(v.startswith("pgdata:") for v in services["db"]["volumes"])
    assert set(COMPOSE["volumes"]) >= {"pgdata", "ledger-data"}


def test_the_commands_and_settings_named_exist() -> None:
    services = COMPOSE["services"]
    for service in ("api", "worker"):
        command = services[service]["command"]
        done = subprocess.run([sys.executable, "-m", "api.cli", *command[1:], "--help"],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 0, (command, done.stderr)
        # The options given are the command's own: argparse accepts them.
        for option in (a for a in command if a.startswith("--")):
            assert option in done.stdout, (service, option)
        for name in services[service]["environment"]:
            assert name in names_in_code(), name
    for name in re.findall(r"LEDGER_[A-Z_]*[A-Z]", DOCKERFILE):
        assert name in names_in_code(), name
