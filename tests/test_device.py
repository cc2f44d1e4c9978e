import pytest
import torch

import slm_course
from slm_course.device import pick_device, set_seed


def test_cpu_when_nothing_else(monkeypatch):
    monkeypatch.delenv("SLM_COURSE_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("slm_course.device._mps_available", lambda: False)
    assert pick_device() == torch.device("cpu")


def test_cuda_then_mps_order(monkeypatch):
    monkeypatch.delenv("SLM_COURSE_DEVICE", raising=False)
    monkeypatch.setattr("slm_course.device._mps_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device().type == "mps"


def test_environment_variable_overrides(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("SLM_COURSE_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")


def test_unknown_device_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SLM_COURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="expected one of cpu, cuda, mps"):
        pick_device()


def test_unavailable_device_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        pick_device("cuda")


def test_set_seed_makes_runs_repeat():
    set_seed(3)
    a = torch.randn(4)
    set_seed(3)
    assert torch.equal(a, torch.randn(4))


def test_environment_report_names_device_and_versions(monkeypatch):
    monkeypatch.setenv("SLM_COURSE_DEVICE", "cpu")
    report = slm_course.environment_report()
    assert report.splitlines()[0] == "device: cpu"
    assert f"slm_course {slm_course.__version__}" in report
    assert f"torch {torch.__version__}" in report


def test_profile_defaults_to_fast_and_full_trains_longer(monkeypatch):
    monkeypatch.delenv("SLM_COURSE_PROFILE", raising=False)
    assert slm_course.profile() == "fast" and slm_course.by_profile(fast=10, full=100) == 10
    monkeypatch.setenv("SLM_COURSE_PROFILE", "FULL")
    assert slm_course.profile() == "full" and slm_course.by_profile(fast=10, full=100) == 100


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("SLM_COURSE_PROFILE", "turbo")
    with pytest.raises(ValueError, match="expected one of fast, full"):
        slm_course.profile()
