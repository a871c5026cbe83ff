"""deploy/ops/restore-postgres-backup.sh: the runbook's positional interface, usage errors,
how it finds the CLI (override, PATH, checkout venv, bootstrap, job image), and that the
target URL travels in the environment, never in the argv of what it starts.

The CLI and the container engine are stand-in scripts that record what they were given;
tests/e2e run the script against the real CLI, PostgreSQL and S3."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devstack.tools import repo_root

pytestmark = pytest.mark.unit

SCRIPT = repo_root() / "deploy" / "ops" / "restore-postgres-backup.sh"
URI = "s3://agent-bom-prod-backups/agent-bom/postgres/agent-bom-20260101T030000Z.dump"
URL = "postgresql://agent_bom:p%40ss%3Aw0rd@staging-postgres:5432/agent_bom"
REGION = "eu-central-1"
BASE_PATH = "/usr/bin:/bin"
# records argv and the variables it was given as JSON into $RECORD
RECORDER = """#!/usr/bin/python3
import json, os, sys
names = ("AGENT_BOM_RESTORE_POSTGRES_URL", "AGENT_BOM_BACKUP_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
with open(os.environ["RECORD"], "w") as fh:
    json.dump({"argv": sys.argv, "env": {n: os.environ.get(n) for n in names}}, fh)
"""


def _stub(path: Path, text: str = RECORDER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def _run(args: list[str], tmp_path: Path, script: Path = SCRIPT, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {"PATH": BASE_PATH, "HOME": str(tmp_path), "RECORD": str(tmp_path / "record.json"),
                "AGENT_BOM_TOOLS_DIR": str(tmp_path / "no-tools")} | env
    return subprocess.run([str(script), *args], env=full_env, capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, check=False)


def _record(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "record.json").read_text())


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_prints_usage_and_exits_0(tmp_path: Path, flag: str) -> None:
    result = _run([flag], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Usage: restore-postgres-backup.sh BACKUP_URI RESTORE_POSTGRES_URL AWS_REGION")


@pytest.mark.parametrize("args", [[], [URI], [URI, URL]], ids=["none", "one", "two"])
def test_too_few_arguments_print_usage_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    result = _run(args, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "expected BACKUP_URI RESTORE_POSTGRES_URL AWS_REGION" in result.stderr
    assert "Usage:" in result.stderr


def test_option_among_the_positionals_exits_2(tmp_path: Path) -> None:
    result = _run([URI, "--clean", REGION], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "options go after the three arguments" in result.stderr


@pytest.mark.parametrize("position", [0, 1, 2], ids=["uri", "url", "region"])
def test_empty_argument_exits_2(tmp_path: Path, position: int) -> None:
    args = [URI, URL, REGION]
    args[position] = ""
    assert _run(args, tmp_path).returncode == 2


def test_usage_error_never_prints_the_url(tmp_path: Path) -> None:
    result = _run([URI, URL, ""], tmp_path)
    assert "p%40ss" not in result.stdout + result.stderr and "staging-postgres" not in result.stdout + result.stderr


def test_cli_gets_restore_the_uri_and_the_options_only(tmp_path: Path) -> None:
    cli = _stub(tmp_path / "bin" / "fake-cli")
    _run([URI, URL, REGION, "--clean", "--confirm-target", "agent_bom", "--approval", "INC-123"], tmp_path,
         AGENT_BOM_BACKUP_CLI=str(cli))
    assert _record(tmp_path)["argv"][1:] == ["restore", URI, "--clean", "--confirm-target", "agent_bom",
                                             "--approval", "INC-123"]


def test_cli_gets_the_url_and_region_in_its_environment(tmp_path: Path) -> None:
    cli = _stub(tmp_path / "bin" / "fake-cli")
    _run([URI, URL, REGION], tmp_path, AGENT_BOM_BACKUP_CLI=str(cli))
    assert _record(tmp_path)["env"] == {"AGENT_BOM_RESTORE_POSTGRES_URL": URL, "AGENT_BOM_BACKUP_REGION": REGION,
                                        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION}


def test_exit_code_of_the_cli_is_the_script_exit_code(tmp_path: Path) -> None:
    cli = _stub(tmp_path / "bin" / "fake-cli", "#!/bin/sh\nexit 8\n")
    assert _run([URI, URL, REGION], tmp_path, AGENT_BOM_BACKUP_CLI=str(cli)).returncode == 8


def test_cli_on_path_is_used(tmp_path: Path) -> None:
    _stub(tmp_path / "bin" / "agent-bom-backup")
    _run([URI, URL, REGION], tmp_path, PATH=f"{tmp_path / 'bin'}:{BASE_PATH}")
    assert _record(tmp_path)["argv"][0] == str(tmp_path / "bin" / "agent-bom-backup")


def test_checkout_venv_cli_is_used(tmp_path: Path) -> None:
    venv_cli = _stub(tmp_path / "tools" / "venv" / "bin" / "agent-bom-backup")
    _run([URI, URL, REGION], tmp_path, AGENT_BOM_TOOLS_DIR=str(tmp_path / "tools"))
    assert _record(tmp_path)["argv"][0] == str(venv_cli)


def test_checkout_without_cli_is_bootstrapped(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    script = checkout / "deploy" / "ops" / SCRIPT.name
    script.parent.mkdir(parents=True)
    shutil.copy2(SCRIPT, script)
    # a stand-in bootstrap that installs the recorder as the venv's CLI
    _stub(checkout / "scripts" / "bootstrap.sh", "#!/bin/sh\n"
          'echo "$@" > "$RECORD.bootstrap"\n'
          'mkdir -p "$(dirname "$0")/../.tools/venv/bin"\n'
          f'cat > "$(dirname "$0")/../.tools/venv/bin/agent-bom-backup" <<\'EOF\'\n{RECORDER}EOF\n'
          'chmod +x "$(dirname "$0")/../.tools/venv/bin/agent-bom-backup"\n')
    result = _run([URI, URL, REGION], tmp_path, script=script, AGENT_BOM_TOOLS_DIR="")
    assert ((tmp_path / "record.json.bootstrap").read_text().split(), _record(tmp_path)["argv"][1:]) == (
        ["-q", "python"], ["restore", URI]), result.stderr


IMAGE = "localhost/agent-bom-backup:dev"


def _run_in_image(args: list[str], tmp_path: Path, **env: str) -> list[str]:
    """The restore script in image mode with a recording engine: the engine's argv."""
    engine = _stub(tmp_path / "bin" / "fake-engine")
    _run(args, tmp_path, AGENT_BOM_BACKUP_IMAGE=IMAGE, AGENT_BOM_BACKUP_CONTAINER_ENGINE=str(engine), **env)
    return list(_record(tmp_path)["argv"])


def _volumes(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "--volume"]


def _env_names(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == "--env"]


def test_image_mode_passes_variables_by_name_only(tmp_path: Path) -> None:
    argv = _run_in_image([URI, URL, REGION, "--approval", "INC-9"], tmp_path, AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
                         PGPASSWORD="hunter2")
    assert sorted(_env_names(argv)) == ["AGENT_BOM_BACKUP_REGION", "AGENT_BOM_RESTORE_POSTGRES_URL",
                                        "AGENT_BOM_TOOLS_DIR", "AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION", "AWS_REGION",
                                        "PGPASSWORD"]


def test_image_mode_runs_restore_in_the_image(tmp_path: Path) -> None:
    argv = _run_in_image([URI, URL, REGION, "--approval", "INC-9"], tmp_path)
    assert (argv[1], argv[-6:]) == ("run", [IMAGE, "agent-bom-backup", "restore", URI, "--approval", "INC-9"])


def test_image_mode_mounts_the_aws_profiles_read_only(tmp_path: Path) -> None:
    """AWS_PROFILE / SSO: the image's HOME is /tmp, so ~/.aws goes to /tmp/.aws."""
    (tmp_path / ".aws").mkdir()
    argv = _run_in_image([URI, URL, REGION], tmp_path, AWS_PROFILE="prod")
    assert (f"{tmp_path}/.aws:/tmp/.aws:ro" in _volumes(argv), argv[argv.index("AWS_PROFILE") - 1]) == (True, "--env")


def test_image_mode_without_aws_profiles_mounts_none(tmp_path: Path) -> None:
    argv = _run_in_image([URI, URL, REGION], tmp_path)
    assert [v for v in _volumes(argv) if ".aws" in v] == []


def test_image_mode_mounts_an_aws_config_file_named_in_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "elsewhere" / "aws-config"
    config.parent.mkdir()
    config.write_text("[profile prod]\n")
    argv = _run_in_image([URI, URL, REGION], tmp_path, AWS_CONFIG_FILE=str(config))
    assert f"{config}:{config}:ro" in _volumes(argv)


def test_image_mode_keeps_secrets_out_of_the_engine_argv(tmp_path: Path) -> None:
    argv = " ".join(_run_in_image([URI, URL, REGION], tmp_path, PGPASSWORD="hunter2"))
    assert "p%40ss" not in argv and "hunter2" not in argv


def test_image_mode_mounts_the_age_identity_file_read_only(tmp_path: Path) -> None:
    identity = tmp_path / "keys" / "identity.txt"
    identity.parent.mkdir()
    identity.write_text("AGE-SECRET-KEY-1PLACEHOLDER\n")
    argv = _run_in_image([URI, URL, REGION], tmp_path, AGENT_BOM_RESTORE_IDENTITY_FILE=str(identity))
    assert (f"{identity}:{identity}:ro" in _volumes(argv), "AGENT_BOM_RESTORE_IDENTITY_FILE" in _env_names(argv),
            "AGE-SECRET-KEY" in " ".join(argv)) == (True, True, False)
