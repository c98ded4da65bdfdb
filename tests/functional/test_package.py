"""The installed package as Salt sees it."""

import json
import subprocess
import sys
from pathlib import Path

import yaml


def test_salt_call_local_lists_hamn_functions_and_states(tmp_path):
    """`salt-call --local sys.list_functions hamn` after `pip install .` (the venv has it)."""
    (tmp_path / "minion").write_text(yaml.safe_dump({
        "root_dir": str(tmp_path), "id": "pkgtest", "file_client": "local",
        "log_file": "var/log/minion",
    }))
    salt_call = str(Path(sys.executable).parent / "salt-call")

    def call(*args):
        out = subprocess.run([salt_call, "--local", "-c", str(tmp_path), "--out=json", *args],
                             capture_output=True, text=True, timeout=120, check=True).stdout
        return json.loads(out)["local"]

    assert {"hamn.config", "hamn.version"} <= set(call("sys.list_functions", "hamn"))
    assert "hamn.pillar_valid" in call("sys.list_state_functions", "hamn")
    doc = call("sys.doc", "hamn.config")["hamn.config"]
    assert "CLI Example" in doc
