"""The exercise machinery itself, on a toy problem defined here."""
import pytest
import torch

from slm_course.exercises import (
    CORRECT, INCORRECT, NOT_ATTEMPTED, Case, Problem, call, compare_values, describe, forbid, show,
)


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


# --------------------------------------------------------------------------- rules and messages

def test_in_place_edit_of_an_input_is_incorrect_and_names_the_argument():
    problem = make_problem()

    def edits(x):
        x.mul_(2)
        return x

    result = problem.check(edits, quiet=True)
    assert result.status == INCORRECT and result.passed == 1  # zeros * 2 == zeros: nothing changed there
    assert "changed its input `x` in place" in result.message and "clone" in result.message

    def appends(scores, extra):
        scores.append(extra)
        return sorted(scores)

    case = Case("f([3, 1], 2)", call([3, 1], 2), [1, 2, 3])
    listy = make_problem(cases=lambda: [case])
    message = listy.check(appends, quiet=True).message
    assert "changed its input `scores` in place" in message
    assert listy.check(lambda scores, extra: sorted([*scores, extra]), quiet=True).status == CORRECT


def test_in_place_edit_of_a_dict_or_keyword_argument_is_caught():
    def adds_key(vocab, token="<|unk|>"):
        vocab.setdefault(token, len(vocab))
        return vocab[token]

    problem = make_problem(cases=lambda: [Case("f({'a': 0})", call({"a": 0}, token="b"), 1)])
    message = problem.check(adds_key, quiet=True).message
    assert "`vocab`" in message and "dict(d)" in message
    assert problem.check(lambda vocab, token: {**vocab, token: len(vocab)}[token], quiet=True).status == CORRECT


def test_nan_inputs_left_alone_are_not_reported_as_changed():
    nan = torch.tensor([float("nan"), 1.0])
    problem = make_problem(cases=lambda: [Case("f(nan)", call(nan), lambda: nan.nan_to_num(0.0))])
    assert problem.check(lambda x: x.nan_to_num(0.0), quiet=True).status == CORRECT
    assert problem.check(lambda x: x.nan_to_num_(0.0), quiet=True).status == INCORRECT


@pytest.mark.parametrize(
    "expected, actual, fragment",
    [
        ((1, 2), [1, 2], "expected a tuple, got a list"),
        ([1, 2], (1, 2), "expected a list, got a tuple"),
        (3, 3.0, "expected 3 (an int), got float"),
        (3, True, "expected 3 (an int), got bool"),
        (True, 1, "expected True (a bool), got int"),
        (0.5, "0.5", "expected 0.5 (a float), got str"),
        ("a", ["a"], "expected a str, got list"),
    ],
)
def test_types_are_exact_where_a_statement_names_one(expected, actual, fragment):
    assert fragment in compare_values(expected, actual)


def test_an_int_is_accepted_where_a_float_is_expected():
    assert compare_values(0.0, 0) is None and compare_values(2.0, 2) is None
    assert compare_values(2.0, 3) == "expected 2.0, got 3.0"


def test_nan_is_reported_as_nan():
    assert compare_values(0.5, float("nan")) == "expected 0.5, got NaN"
    reason = compare_values(torch.tensor([0.0, 1.0]), torch.tensor([0.0, float("nan")]))
    assert "got NaN" in reason and "NaN at 1 position" in reason and "inf" not in reason
    assert compare_values(torch.tensor([float("nan")]), torch.tensor([float("nan")])) is None


def test_when_only_values_differ_that_is_said_first_with_the_place():
    reason = compare_values(torch.zeros(2, 3), torch.zeros(2, 3).index_put_((torch.tensor(1), torch.tensor(2)), torch.tensor(0.25)))
    assert reason.startswith("the shape (2, 3) and dtype are right, but 1 of 6 values differ")
    assert "index [1, 2]: expected 0.0, got 0.25" in reason


def test_floats_are_rounded_but_keep_the_digits_that_differ():
    assert compare_values(1 / 3, 0.3334) == "expected 0.3333, got 0.3334"
    assert compare_values(0.5, 0.5007) == "expected 0.5, got 0.5007"
    assert "0.3333" in describe([1 / 3]) and "0.33333" not in describe([1 / 3])


def test_nested_results_are_described_by_position_in_words():
    parts = ("window", ("input", "target"), "position")
    expected = [([1, 2], [2, 3]), ([3, 4], [4, 5])]
    actual = [([1, 2], [2, 3]), ([3, 4], [4, 6])]
    assert compare_values(expected, actual, parts=parts) == "window 1, target, position 1: expected 5, got 6"
    assert compare_values(expected, actual) == "item 1, item 1, item 1: expected 5, got 6"
    case = Case("pairs", call(), expected, parts=parts)  # parts folded into compare: survives copies
    assert "window 1, target" in Case(case.label, case.run, case.expected, case.compare).compare(expected, actual)


def test_a_failure_message_says_what_differs_then_both_values():
    result = make_problem().check(lambda x: x * 3, quiet=True)
    first_line = result.message.splitlines()[0]
    assert "On `double(tensor([1., 2.]))`: the shape (2,) and dtype are right, but 2 of 2 values differ" in first_line
    assert "expected: tensor of shape (2,)" in result.message and "got:      tensor" in result.message


def test_show_writes_a_short_input_whole():
    assert show(torch.tensor([0.0, 100.0])) == "tensor([0.0, 100.0])"
    assert show([[1, 2], [3]]) == "[[1, 2], [3]]" and show("a b") == "'a b'"


def test_forbidden_function_is_refused_however_it_is_spelled():
    import torch.nn.functional as F
    from torch import softmax as imported_softmax

    x = torch.tensor([1.0, 2.0])

    def cases():
        return [Case("softmax(tensor([1., 2.]))", forbid(call(x), "torch.softmax", "torch.nn.functional.softmax",
                                                         "torch.Tensor.softmax", advice="Use exp and sum."),
                     lambda: torch.softmax(x, -1))]

    problem = make_problem(cases=cases)
    spellings = [lambda v: torch.softmax(v, -1), lambda v: F.softmax(v, -1), lambda v: v.softmax(-1),
                 lambda v: torch.nn.Softmax(dim=-1)(v), lambda v: imported_softmax(v, -1)]
    for answer in spellings:
        result = problem.check(answer, quiet=True)
        assert result.status == INCORRECT and "asks you not to use" in result.message, result.message
        assert "Use exp and sum." in result.message
    assert problem.check(lambda v: v.exp() / v.exp().sum(), quiet=True).status == CORRECT
    assert torch.softmax(x, -1).shape == (2,) and "softmax" not in vars(torch.Tensor)  # restored


def test_hint_past_the_last_level_says_so(capsys):
    problem = make_problem()
    text = problem.hint(5)
    assert "has 2 hint levels, not 5" in text and "q1.solution()" in text and text.endswith("Return `x * 2`.")
    assert "the last hint" in problem.hint(2)
    with pytest.raises(ValueError):
        problem.hint(True)


def test_check_warns_about_names_from_cells_the_grader_does_not_run(monkeypatch, capsys):
    import linecache

    from slm_course.exercises import ch00, scope

    monkeypatch.setattr(scope, "setup_names", lambda chapter: frozenset({"torch", "q2"}))
    folder = "/tmp/ipykernel_test"
    scratch, exercise, other = f"{folder}/1.py", f"{folder}/2.py", f"{folder}/3.py"
    sources = {
        scratch: "import numpy as np\nSCALE = 2\ndef helper(x):\n    return x\n",
        other: "def split_heads(x, h):\n    return x\ndef shared(x):\n    return x\n",
        exercise: ("import math\ndef softmax(x):\n    y = helper(x) * SCALE + np.float32(math.e)\n"
                   "    return shared(torch.exp(y))\n"),
    }
    namespace = {"__name__": "__main__"}
    for filename, source in sources.items():
        lines = source.splitlines(keepends=True)
        monkeypatch.setitem(linecache.cache, filename, (len(source), None, lines, filename))
        exec(compile(source, filename, "exec"), namespace)
    namespace["torch"] = torch
    names = scope.outside_names(namespace["softmax"], "00", ["count_words", "softmax", "split_heads"])
    assert names == ["helper", "SCALE", "np"]  # math: own cell; shared: another exercise cell; torch: setup
    message = ch00.q2.check(namespace["softmax"]).message
    assert "⚠ Your `softmax` uses `helper`, `SCALE`, `np`" in message and "would get 0" in message
    assert "⚠" not in ch00.q2.check(lambda x: x, quiet=True).message  # not a notebook cell: no warning


def test_rule_errors_replayed_by_name_read_as_the_rule_not_as_a_crash():
    # The grader carries an error out of the sandbox by class name and message, then re-raises a
    # class of that name: the verdict must be the same sentence as in the notebook.
    replayed = type("InputChanged", (Exception,), {})

    def run(obj):
        raise replayed("your function changed its input `x` in place; the caller still needs it")

    problem = make_problem(cases=lambda: [Case("f(x)", run, 1)])
    result = problem._evaluate(object())
    assert result.status == INCORRECT and result.reason.startswith("`f(x)`: your function changed its input `x`")
    assert "Traceback" not in result.message


@pytest.mark.parametrize("chapter", ["00", "01", "02", "03", "04", "05"])
def test_hints_come_in_levels_and_hint_2_never_gives_the_finished_return_line(chapter):
    # How much of the solution the last hint spells out is measured in test_hint_share.py.
    from slm_course.exercises import load_chapter, problems_of
    from slm_course.exercises.build import load_solution_source

    for problem in problems_of(load_chapter(chapter)):
        assert len(problem.hints) == 2, problem.name
        idea, key_step = problem.hints
        assert idea != key_step, f"{chapter} {problem.name}: the two hints are the same"
        body = load_solution_source(chapter, problem.name).splitlines()
        solution_lines = {line.split("#")[0].strip() for line in body if len(line.split("#")[0].strip()) > 12}
        hint_lines = {line.split("#")[0].strip() for line in key_step.splitlines()}
        finished = {line for line in solution_lines & hint_lines
                    if line.startswith("return ") and not line[7:].isidentifier()}  # `return counts` gives nothing away
        assert not finished, f"{chapter} {problem.name}: hint 2 gives the finished return line {finished}"


# --------------------------------------------------------------------------- float tolerance, new rules

def test_a_float32_computation_returned_with_float_is_right():
    for value in (1e-4, 2.5e-7, 1 / 3, 123456.789, 6.02e23):
        assert compare_values(value, float(torch.tensor(value, dtype=torch.float32))) is None, value
    assert compare_values(0.0, 1e-13) is None  # within the absolute floor
    # ... but a formula off by a little more than float32 rounding is wrong
    assert compare_values(1e-4, 1e-4 * (1 + 1e-4)) is not None
    assert compare_values(1e-4, 1.1e-4) is not None  # no absolute tolerance that swallows small values


def test_a_message_about_close_floats_prints_the_digits_that_differ():
    reason = compare_values(1e-4, 1.0002e-4)
    assert reason == "expected 0.0001, got 0.00010002"
    expected_text, got_text = reason[len("expected "):].split(", got ")
    assert expected_text != got_text


def test_a_tensor_that_comes_back_requiring_grad_counts_as_an_edited_input():
    from slm_course.exercises.rules import InputChanged

    def switches_it_on(w):
        w.requires_grad_()
        return w.sum().item()

    def gives_it_a_grad(w):
        w.grad = torch.ones_like(w)
        return 1.0

    for answer in (switches_it_on, gives_it_a_grad):
        with pytest.raises(InputChanged, match="requires grad or holds a `.grad`"):
            call(torch.ones(3))(answer)
    assert call(torch.ones(3))(lambda w: w.detach().clone().requires_grad_().sum().item()) == 3.0


def test_count_calls_counts_backward_and_puts_it_back():
    from slm_course.exercises.rules import CallCount, count_calls

    original = torch.Tensor.backward

    def backward_each(w, n):
        w = w.detach().clone().requires_grad_()
        for _ in range(n):
            (w * 2).sum().backward()
        return w.grad

    run = count_calls(call(torch.ones(2), 3), "torch.Tensor.backward", times=3, what="`backward()` three times")
    assert torch.equal(run(backward_each), torch.full((2,), 6.0))
    wrong = count_calls(call(torch.ones(2), 1), "torch.Tensor.backward", times=3, what="`backward()` three times")
    with pytest.raises(CallCount, match=r"asks for `backward\(\)` three times: 3 calls here, but your function made 1"):
        wrong(backward_each)
    assert torch.Tensor.backward is original
    problem = make_problem(cases=lambda: [Case("f(w)", wrong, torch.full((2,), 6.0))])
    result = problem.check(backward_each, quiet=True)
    assert result.status == INCORRECT and "Traceback" not in result.message and "made 1" in result.message


def test_call_for_new_refuses_the_input_itself():
    from slm_course.exercises.rules import InputChanged, call_for_new

    run = call_for_new([torch.ones(2)], 1.0)
    with pytest.raises(InputChanged, match="returned its input `grads` itself"):
        run(lambda grads, max_norm: grads)
    assert len(run(lambda grads, max_norm: list(grads))) == 1
