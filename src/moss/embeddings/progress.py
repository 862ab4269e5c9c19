"""Progress of long embedding work: a tqdm bar, a plain stderr line, or the caller's callback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ..errors import InvalidArgumentError

#: A callback told ``(done, total)`` texts after each embedded chunk.
ProgressCallback = Callable[[int, int], None]
#: What ``add_docs(progress=...)`` accepts: None (automatic), True/False, or a callback.
Progress = bool | ProgressCallback | None

#: Automatic progress shows only when more texts than this are embedded (about 10 s of the
#: default model on 2 cores for short texts), and only when someone watches the output.
AUTO_MIN_TEXTS = 1_000
#: Texts embedded per model call while progress is reported: big enough that batching across
#: cores stays efficient, small enough that the bar moves every second or two.
CHUNK_TEXTS = 256


def progress_reporter(progress: object, total: int) -> Reporter | None:
    """The reporter for embedding ``total`` texts as ``progress`` asks (None: report nothing)."""
    if progress is None:
        if total <= AUTO_MIN_TEXTS or not _interactive():
            return None
        return Reporter(_bar(total))
    if progress is True:
        return Reporter(_bar(total))
    if progress is False:
        return None
    if callable(progress):
        return Reporter(None, progress)
    raise InvalidArgumentError(
        f"progress must be None (automatic), True, False or a callable (done, total), "
        f"got {type(progress).__name__}"
    )


class Reporter:
    """Counts embedded texts and shows them: a bar (tqdm or a stderr line) or a callback."""

    def __init__(self, bar: Any, callback: ProgressCallback | None = None) -> None:
        self._bar = bar
        self._callback = callback
        self.done = 0

    def advance(self, count: int, total: int) -> None:
        """``count`` more texts were embedded (of ``total``)."""
        self.done += count
        if self._callback is not None:
            self._callback(self.done, total)
        elif self._bar is not None:
            self._bar.update(count)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _interactive() -> bool:
    """Whether a person likely watches: stderr is a terminal, or the code runs in a notebook."""
    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):  # a replaced or closed stderr
        pass
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return type(shell).__name__ == "ZMQInteractiveShell"


def _bar(total: int) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a dependency, but a stripped environment may lack it
        return _StderrLine(total)
    return tqdm(total=total, desc="embedding", unit="doc", dynamic_ncols=True)


class _StderrLine:
    """A one-line stderr counter, for when tqdm cannot be imported."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._done = 0

    def update(self, count: int) -> None:
        self._done += count
        sys.stderr.write(f"\rembedding: {self._done}/{self._total} documents")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()
