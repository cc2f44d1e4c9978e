"""A ``tqdm.auto`` progress bar that a stored notebook shows finished, never frozen at 0 %.

In a notebook ``tqdm.auto`` draws a widget, and the text a saved notebook keeps for it is the bar as
it was when first displayed (``0/600``). :func:`progress_bar` displays the widget with a display id
and, once the bar is closed, replaces the stored output with the finished bar. Outside a notebook it
is plain ``tqdm``.
"""
from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def progress_bar(total: int, *, desc: str, unit: str = "it", initial: int = 0, enabled: bool = True) -> Iterator:
    """A tqdm bar of ``total`` steps (``initial`` already done); on leaving, the stored output shows it finished."""
    from tqdm.auto import tqdm

    from tqdm.notebook import tqdm as notebook_tqdm

    handle = None
    if enabled and issubclass(tqdm, notebook_tqdm):
        from IPython.display import display

        bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, display=False)
        handle = display(bar.container, display_id=True)
    else:
        bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled)
    try:
        yield bar
    finally:
        bar.close()
        if handle is not None:
            handle.update(bar.container)  # re-render: the saved text is now the bar's last state
