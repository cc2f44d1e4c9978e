"""Progress bars that read the same live and stored (DESIGN.md: no bar stored short of 100 %).

``progress_bar(...)`` takes ``tqdm``'s arguments and returns ``tqdm.auto``'s bar: a widget in JupyterLab, text in a
terminal. A notebook keeps a displayed widget's *text* form as it was when the widget appeared (``0/600``), which
is what a page read without a kernel shows. The bar made here is displayed with a display id and, when it
closes, that display is updated, so the stored text is the finished bar (``600/600``). Used by every long loop
of the course (training, tokenizer training, classifier finetuning, benchmark runs).
"""
from __future__ import annotations

from typing import Any, Iterable


def _notebook_bar_class():
    from tqdm.autonotebook import tqdm as auto
    from tqdm.notebook import tqdm_notebook

    if not issubclass(auto, tqdm_notebook):
        return None

    class StoredBar(tqdm_notebook):
        """tqdm's notebook bar, shown through a display handle that ``close`` refreshes."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["display"] = False
            super().__init__(*args, **kwargs)
            self._handle = None
            if not self.disable and hasattr(self, "container"):
                from IPython.display import display

                self._handle = display(self.container, display_id=True)
                self.displayed = True

        def close(self) -> None:
            super().close()
            if getattr(self, "_handle", None) is not None:
                self._handle.update(self.container)
                self._handle = None

    return StoredBar


def progress_bar(iterable: Iterable | None = None, **kwargs: Any):
    """A ``tqdm`` bar (``tqdm.auto``'s kind) whose stored notebook output is the finished bar.

    Same arguments as ``tqdm`` (``total``, ``desc``, ``disable``, ``leave`` …); use it as a context manager or
    iterate it, so that it closes."""
    import warnings

    with warnings.catch_warnings():  # tqdm.autonotebook warns when it falls back to text in a console
        warnings.simplefilter("ignore")
        bar_class = _notebook_bar_class()
    if bar_class is None:
        from tqdm import tqdm

        bar_class = tqdm
    return bar_class(iterable, **kwargs)
