"""Print the README's first set-up command exactly as written (the newcomer path).

    python3 tools/newcomer.py README.md

CI runs what this prints in a fresh copy of the repository, so the README and CI cannot
diverge; the second set-up command (tools/test.sh) is what CI runs anyway.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def first_setup_command(readme: str) -> str:
    section = readme.split("## Set up", 1)
    if len(section) != 2:
        raise SystemExit("README.md has no '## Set up' section")
    block = re.search(r"```sh\n(.*?)\n```", section[1], re.S)
    if block is None:
        raise SystemExit("README.md's set-up section has no ```sh block")
    return block.group(1).strip()


if __name__ == "__main__":
    print(first_setup_command(Path(sys.argv[1]).read_text()))
