"""The exercise machinery itself, on a toy problem defined here."""
import pytest
import torch

from slm_course.exercises import CORRECT, INCORRECT, NOT_ATTEMPTED, Case, Problem, call, compare_values


def reference_double(x: torch.Tensor) -> torch.Tensor:
    return x * 2


def make_problem(**overrides) -> Problem:
    def cases():
        return [
            Case("double(tensor([1., 2.]))", call(torch.tensor([1.0, 2.0])), lambda: reference_double(torch.tensor([1.0, 2.0]))),
            Case("double(zeros(2, 3))", call(torch.zeros(2, 3)), lambda: reference_double(torch.zeros(2, 3))),
            Case("double(tensor([-3.]))", call(torch.tensor([-3.0])), lambda: reference_double(torch.tensor([-3.0]))),
        ]

    settings = dict(name="q1", chapter="99", target="double", title="double a tensor", cases=cases,
                    hints=["Multiply.", "Return `x * 2`."], points=3.0)
    settings.update(overrides)
    return Problem(**settings)


def stub(x):
    raise NotImplementedError("Replace this line with your code.")


def test_stub_is_not_attempted():
    result = make_problem().check(stub, quiet=True)
    assert result.status == NOT_ATTEMPTED and result.points == 0
    assert "not attempted" in result.message


def test_missing_object_is_not_attempted():
    assert make_problem().grade({}).status == NOT_ATTEMPTED


def test_correct_gets_full_points(capsys):
    result = make_problem().check(lambda x: x + x)
    assert result.status == CORRECT and result.points == 3.0 and (result.passed, result.total) == (3, 3)
    assert "✓ q1 correct" in capsys.readouterr().out


def test_wrong_answer_names_input_expected_and_actual():
    result = make_problem().check(lambda x: x * 3, quiet=True)
    assert result.status == INCORRECT
    assert "double(tensor([1., 2.]))" in result.message
    assert "[2.0, 4.0]" in result.message and "[3.0, 6.0]" in result.message
    assert "1/3 cases passed" in result.message  # zeros * 3 is still right


def test_partial_credit_counts_cases():
    # right except on negative inputs
    result = make_problem().check(lambda x: (x * 2).clamp(min=0), quiet=True)
    assert (result.status, result.passed, result.total) == (INCORRECT, 2, 3)
    assert result.points == pytest.approx(2.0)
    assert "tensor([-3.])" in result.reason


def test_shape_and_dtype_are_named():
    result = make_problem().check(lambda x: (x * 2).long(), quiet=True)
    assert "dtype torch.float32" in result.message and "dtype torch.int64" in result.message
    result = make_problem().check(lambda x: (x * 2).reshape(-1, 1), quiet=True)
    assert "expected shape (2,), got shape (2, 1)" in result.message


def test_forgotten_return_is_spotted():
    def no_return(x):
        x * 2

    assert "did you forget a `return`?" in make_problem().check(no_return, quiet=True).message


def test_learner_traceback_is_shown_without_our_frames():
    def crashes(x):
        return x.no_such_method()

    result = make_problem().check(crashes, quiet=True)
    assert result.status == INCORRECT
    assert "AttributeError" in result.message and "crashes" in result.message
    assert "slm_course/exercises/core.py" not in result.message


def test_hints_levels_and_assessment(monkeypatch, capsys):
    problem = make_problem()
    assert problem.hint(1).endswith("Multiply.") and "hint(2)" in problem.hint(1)
    assert problem.hint(2).endswith("Return `x * 2`.")
    with pytest.raises(ValueError):
        problem.hint(0)
    monkeypatch.setenv("SLM_COURSE_ASSESSMENT", "1")
    capsys.readouterr()
    assert problem.hint(1) is None and problem.solution() is None
    out = capsys.readouterr().out
    assert "switched off during assessment" in out and "Multiply" not in out


def test_prepare_takes_expected_values_once():
    calls = []

    def cases():
        calls.append(1)
        return [Case("f()", lambda f: f(), lambda: 1)]

    problem = make_problem(cases=cases)
    problem.prepare()
    problem.check(lambda: 1, quiet=True)
    problem.check(lambda: 2, quiet=True)
    assert len(calls) == 1


@pytest.mark.parametrize(
    "expected, actual, fragment",
    [
        ([1, 2], [1, 2, 3], "expected 2 items, got 3"),
        ({"a": 1}, {"b": 1}, "missing keys"),
        (0.5, 0.6, "expected 0.5, got 0.6"),
        (True, 1, "expected True"),
        ("abc", "abd", "expected 'abc', got 'abd'"),
        (torch.tensor([1, 2]), torch.tensor([1, 3]), "1 of 2 values differ"),
    ],
)
def test_compare_values_explains(expected, actual, fragment):
    assert fragment in compare_values(expected, actual)


def test_compare_values_accepts_equal():
    assert compare_values({"a": [1.0, torch.ones(2)]}, {"a": [1.0 + 1e-9, torch.ones(2)]}) is None


def test_check_needs_the_function_not_its_result():
    problem = make_problem()
    result = problem.check(torch.tensor([2.0, 4.0]), quiet=True)
    assert result.status == INCORRECT and "not its result" in result.message and "q1.check(double)" in result.message
    with pytest.raises(TypeError, match=r"call `q1.check\(double\)`"):
        problem.check()
