"""docker-compose.yml is valid (`docker-compose config -q` needs no Docker engine)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def compose(program: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    key = tmp_path / "key.txt"
    key.write_text("k\n")
    env = {"PATH": "/usr/bin:/bin", "LSR_API_KEY_FILE": str(key), "LSR_DATASET": str(tmp_path)}
    return subprocess.run([program, "-f", str(ROOT / "docker-compose.yml"), *args], env=env, capture_output=True, text=True, cwd=ROOT)


def test_compose_file_is_valid(docker_compose, tmp_path):
    result = compose(docker_compose, tmp_path, "config", "-q")
    assert result.returncode == 0, result.stderr
    rendered = compose(docker_compose, tmp_path, "config").stdout
    assert "healthcheck" in rendered and "service_completed_successfully" in rendered


def test_compose_milvus_profile_is_valid_and_optional(docker_compose, tmp_path):
    """`--profile milvus` adds a Milvus standalone server (etcd, MinIO, Milvus) for `--engine milvus --uri http://…`."""
    assert compose(docker_compose, tmp_path, "--profile", "milvus", "config", "-q").returncode == 0
    rendered = compose(docker_compose, tmp_path, "--profile", "milvus", "config").stdout
    assert "milvusdb/milvus" in rendered and "profiles" in rendered
