"""docker-compose.yml is valid (`docker-compose config -q` needs no Docker engine)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_compose_file_is_valid(tmp_path):
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (Debian package `docker-compose`; .ci/run installs it)")
    key = tmp_path / "key.txt"
    key.write_text("k\n")
    env = {"PATH": "/usr/bin:/bin", "LSR_API_KEY_FILE": str(key), "LSR_DATASET": str(tmp_path)}
    result = subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    rendered = subprocess.run([compose, "-f", str(ROOT / "docker-compose.yml"), "config"], env=env, capture_output=True, text=True, cwd=ROOT).stdout
    assert "healthcheck" in rendered and "service_completed_successfully" in rendered


def test_compose_milvus_profile_is_valid_and_optional(tmp_path):
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (Debian package `docker-compose`; .ci/run installs it)")
    key = tmp_path / "key.txt"
    key.write_text("k\n")
    env = {"PATH": "/usr/bin:/bin", "LSR_API_KEY_FILE": str(key), "LSR_DATASET": str(tmp_path)}
    command = [compose, "-f", str(ROOT / "docker-compose.yml"), "--profile", "milvus", "config"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "milvusdb/milvus" in result.stdout and "profiles" in result.stdout
