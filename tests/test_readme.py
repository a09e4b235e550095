"""The README's first set-up command is what CI runs on the newcomer path (.ci/run)."""

import importlib.util
from pathlib import Path

import pytest

pytestmark = [pytest.mark.main_env, pytest.mark.board_env]

ROOT = Path(__file__).resolve().parents[1]


def newcomer():
    spec = importlib.util.spec_from_file_location("newcomer", ROOT / "tools" / "newcomer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_first_setup_command_is_the_demo_in_a_fresh_venv():
    command = newcomer().first_setup_command((ROOT / "README.md").read_text())
    assert command.startswith("python3 -m venv .venv && ")
    assert command.endswith("kcnn demo") and "\n" not in command


def test_missing_setup_section_is_an_error():
    with pytest.raises(SystemExit, match="no '## Set up' section"):
        newcomer().first_setup_command("# Title\n")
    with pytest.raises(SystemExit, match="no ```sh block"):
        newcomer().first_setup_command("## Set up\ntext only\n")
