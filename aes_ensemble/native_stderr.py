"""LightGBM calls without LightGBM's own copy of a fatal error on stderr.

LightGBM's C++ ``Log::Fatal`` writes ``[LightGBM] [Fatal] <reason>`` straight to the process's
stderr (file descriptor 2) and then raises: that line bypasses the Python log callback
(``lightgbm.register_logger``) and ``verbosity``. The reason also comes back as the
``LightGBMError`` the runner turns into our one-line ``error:``, so the raw line is noise. Inside
``lightgbm_stderr`` descriptor 2 goes through a pipe whose relay thread passes everything on as
it comes (a progress bar keeps moving), except from a fatal line on: that is held until the
block ends and passed on without the text of the error it raised.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import lightgbm as lgb

FATAL = b"[LightGBM] [Fatal] "
_LOCK = threading.Lock()  # descriptor 2 is the process's: one redirect at a time


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _relay(source: int, target: int, held: bytearray) -> None:
    """Copy ``source`` to ``target`` until end of file, keeping from the first fatal line on."""
    while chunk := os.read(source, 65536):
        if not held:
            start = chunk.find(FATAL)
            if start < 0:
                _write_all(target, chunk)
                continue
            _write_all(target, chunk[:start])
            chunk = chunk[start:]
        held.extend(chunk)


@contextmanager
def lightgbm_stderr() -> Iterator[None]:
    """Run the block with LightGBM's fatal line taken off stderr; all else passes through."""
    with _LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        source, sink = os.pipe()
        os.dup2(sink, 2)
        os.close(sink)
        held = bytearray()
        relay = threading.Thread(target=_relay, args=(source, saved, held), daemon=True)
        relay.start()
        fatal = b""
        try:
            yield
        except lgb.basic.LightGBMError as exc:
            fatal = FATAL + str(exc).encode("utf-8") + b"\n"
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)  # closes the pipe's last writer: the relay reads end of file
            relay.join()
            os.close(source)
            rest = bytes(held)
            if fatal and rest.startswith(fatal):
                rest = rest[len(fatal) :]
            _write_all(saved, rest)
            os.close(saved)
