"""The CLI driven as a user drives it."""

import subprocess
import sys

import tomli_w
from typer.testing import CliRunner

from pathdep.cli import _register, app
from tests.helpers import tiny

_register()
runner = CliRunner()


def test_run_then_ls(tmp_path):
    spec = tmp_path / "tiny.toml"
    spec.write_text(tomli_w.dumps(tiny()))
    result = runner.invoke(app, ["run", str(spec), "--store", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "3 runs" in result.output and "reliance" in result.output and "base" in result.output
    listing = runner.invoke(app, ["ls", "--store", str(tmp_path / "s")])
    assert listing.exit_code == 0 and "tiny: 3/3 runs finished" in listing.output
    runs = runner.invoke(app, ["ls", "tiny", "--store", str(tmp_path / "s")])
    assert runs.exit_code == 0 and "base-i2-d0" in runs.output and "60" in runs.output


def _main(*args):
    return subprocess.run([sys.executable, "-m", "pathdep", *args], capture_output=True, text=True)


def test_bad_spec_is_one_line_and_exit_code_2(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text(tomli_w.dumps(tiny(**{"process.optimizer.lr": -1})))
    done = _main("run", str(spec), "--store", str(tmp_path / "s"))
    assert done.returncode == 2
    assert done.stderr.strip() == "error: The 'process.optimizer.lr' field must be greater than 0. Got -1 instead."
    assert not (tmp_path / "s").exists()


def test_missing_spec_file_and_unknown_study(tmp_path):
    done = _main("run", str(tmp_path / "nope.toml"))
    assert done.returncode == 2 and "does not exist" in done.stderr and "Traceback" not in done.stderr
    done = _main("ls", "ghost", "--store", str(tmp_path))
    assert done.returncode == 1 and "has no study 'ghost'" in done.stderr
