"""A ``tqdm.auto`` progress bar that a stored notebook shows finished, never frozen at 0 %.

In a notebook ``tqdm.auto`` draws a widget, and the text a saved notebook keeps for it is the bar as
it was when first displayed (``0/600``). :func:`progress_bar` displays the widget with a display id
and, once the bar is closed, replaces the stored output with the finished bar. Outside a notebook it
is plain ``tqdm``. With ``summary`` (a callable returning one line), the bar gives way to that line
when it closes: in a notebook the widget is replaced in place (nothing of it is stored), elsewhere the
text bar is cleared and the line printed.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator


@contextlib.contextmanager
def progress_bar(total: int, *, desc: str, unit: str = "it", initial: int = 0, enabled: bool = True,
                 summary: Callable[[], str] | None = None) -> Iterator:
    """A tqdm bar of ``total`` steps (``initial`` already done); on leaving, the stored output shows it
    finished, or ``summary()`` in its place when ``summary`` is given."""
    from tqdm.auto import tqdm

    from tqdm.notebook import tqdm as notebook_tqdm

    handle = None
    leave = summary is None  # a summary takes the finished bar's place
    if enabled and issubclass(tqdm, notebook_tqdm):
        from IPython.display import display

        bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, display=False, leave=leave)
        handle = display(bar.container, display_id=True)
    else:
        bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, leave=leave)
    try:
        yield bar
    finally:
        bar.close()
        if summary is not None and enabled:
            text = summary()
            if handle is not None:
                from IPython.display import Pretty

                handle.update(Pretty(text))
                bar.container.close()  # the widget is gone from the page: nothing of it is stored
            else:
                print(text)
        elif handle is not None:
            handle.update(bar.container)  # re-render: the saved text is now the bar's last state
