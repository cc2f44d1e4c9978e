"""``slm-course grade``: score learners' exercise notebooks, each in a fresh sandboxed kernel.

How it fits together (see ``docs/grading.md`` for the threat model):

- :mod:`.submissions` finds the notebooks (files, folders, zips) and the chapter of each;
- :mod:`.transplant` puts the learner's exercise cells into the course's pristine notebook and
  flags cells that reach into grading internals;
- :mod:`.sandbox` runs :mod:`.runner` (kernel + client) under bubblewrap with time, memory,
  process and output limits;
- :mod:`.kernel_side` is the only grading code inside the kernel: installed before any learner
  code, it records what the learner's functions return on each case; :mod:`.values` carries those results out as plain data;
- :mod:`.scoring` scores them with the grader's own checks; :mod:`.table` writes the table.
"""
from slm_course.grading.cli import add_arguments, run

__all__ = ["add_arguments", "run"]
