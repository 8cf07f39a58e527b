"""Validate a file on disk: one process for small files, byte ranges on every core for large ones."""

from __future__ import annotations

import errno
import itertools
import os
import stat
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import BinaryIO, Protocol

from bot.datasets.report import Report, build_report
from bot.datasets.tokens import TokenCounter
from bot.datasets.validator import Scan, Scanner, iter_lines
from bot.models import catalog

# Below this, starting a second process costs more than it saves.
PARALLEL_MIN_BYTES = 8 * 1024 * 1024
# Ranges a parallel scan cuts the file into: at least a few per process, and none much over 8 MB.
RANGES_PER_WORKER = 4
RANGE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ValidationOptions:
    model: str
    method: str | None = None
    max_bytes: int = 512 * 1024 * 1024
    prices: dict[str, float] = field(default_factory=dict)
    workers: int = 0  # 0: one per core


def validate_path(path: Path, options: ValidationOptions) -> Report:
    """Validate ``path``; raises OSError only when the file cannot be opened or read.

    Only a regular file is read: a device (/dev/zero) or a pipe has no size to trust and no end."""
    status = path.stat()
    if not stat.S_ISREG(status.st_mode):
        raise OSError(errno.EINVAL, "it is not a regular file (a device, a pipe or a socket)")
    size = status.st_size
    if size > options.max_bytes:
        return build_report(
            Scan(),
            model=options.model,
            method=options.method,
            prices=options.prices,
            file_too_large=(size, options.max_bytes),
        )
    info = catalog.lookup(options.model)
    limit = info.example_token_limit if info else 65_536
    scanner = Scanner(counter=TokenCounter(catalog.encoding_for(options.model)), example_token_limit=limit)
    workers = options.workers or os.cpu_count() or 1
    if workers > 1 and size >= PARALLEL_MIN_BYTES:
        scan = _scan_in_parallel(path, size, scanner, workers)
    else:
        with path.open("rb") as stream:
            scan = scanner.scan(iter_lines(stream))
    return build_report(scan, model=options.model, method=options.method, prices=options.prices)


def _range_lines(stream: BinaryIO, start: int, end: int) -> BinaryIO:
    stream.seek(start)
    return _Bounded(stream, end - start)  # type: ignore[return-value]


class _Bounded:
    """A read-only view of the next ``remaining`` bytes of a stream, for iter_lines."""

    def __init__(self, stream: BinaryIO, remaining: int) -> None:
        self._stream = stream
        self._remaining = remaining

    def readline(self, limit: int = -1) -> bytes:
        if self._remaining <= 0:
            return b""
        size = self._remaining if limit < 0 else min(limit, self._remaining)
        line = self._stream.readline(size)
        self._remaining -= len(line)
        return line


def _boundaries(path: Path, size: int, parts: int) -> list[tuple[int, int]]:
    """(start byte, end byte) of up to ``parts`` ranges that each start on a line.

    Nobody counts the lines in front of a range: each range is scanned with its lines numbered from
    1, and Scan.merge renumbers them, so no process reads the whole file before the work starts.
    """
    cuts = [0]
    with path.open("rb") as stream:
        for index in range(1, parts):
            stream.seek(max(cuts[-1], size * index // parts))
            stream.readline()
            position = stream.tell()
            if position < size and position > cuts[-1]:
                cuts.append(position)
    cuts.append(size)
    return list(itertools.pairwise(cuts))


def _scan_range(scanner: Scanner, path: Path, start: int, end: int) -> Scan:
    with path.open("rb") as stream:
        return scanner.scan(iter_lines(_range_lines(stream, start, end), first_line_of_file=start == 0))


class _RangeCounter(Protocol):
    """A multiprocessing.Value("i"): the index of the next range nobody has taken."""

    value: int

    def get_lock(self) -> AbstractContextManager[object]: ...


def _take_ranges(
    scanner: Scanner, path: Path, ranges: list[tuple[int, int]], next_range: _RangeCounter
) -> list[tuple[int, Scan]]:
    """Scan ranges, each time the next one nobody has taken, until none is left."""
    scans: list[tuple[int, Scan]] = []
    while True:
        with next_range.get_lock():
            index = next_range.value
            next_range.value = index + 1
        if index >= len(ranges):
            return scans
        scans.append((index, _scan_range(scanner, path, *ranges[index])))


def _child(
    scanner: Scanner, path: Path, ranges: list[tuple[int, int]], next_range: _RangeCounter, sender: Connection
) -> None:
    try:
        sender.send(_take_ranges(scanner, path, ranges, next_range))
    except BaseException as error:  # reported to the parent, which raises it
        sender.send(error)
    finally:
        sender.close()


def _scan_in_parallel(path: Path, size: int, scanner: Scanner, workers: int) -> Scan:
    """Scan byte ranges in forked processes and merge them in order.

    Forking (not spawning) lets the children share the tokenizer the parent already loaded, so the
    tables exist once in memory and nothing is pickled on the way in. There are several ranges per
    process, and each process takes the next free one when it is done with its last: a process
    that a busy machine slows down scans less, instead of keeping the others waiting at the end.
    """
    context = get_context("fork")
    ranges = _boundaries(path, size, max(workers * RANGES_PER_WORKER, size // RANGE_BYTES))
    next_range = context.Value("i", 0)
    children: list[tuple[BaseProcess, Connection]] = []
    try:
        for _ in range(workers - 1):
            receiver, sender = context.Pipe(duplex=False)
            child = context.Process(target=_child, args=(scanner, path, ranges, next_range, sender))
            child.start()
            sender.close()
            children.append((child, receiver))
        scans = dict(_take_ranges(scanner, path, ranges, next_range))
        for _, receiver in children:
            result = receiver.recv()
            if isinstance(result, BaseException):
                raise result
            scans.update(result)
    finally:
        for started, receiver in children:
            receiver.close()
            started.join(timeout=5)
            if started.is_alive():
                started.kill()
    scan = scans[0]
    for index in range(1, len(ranges)):
        scan.merge(scans[index])
    return scan
