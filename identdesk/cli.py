"""The `identdesk` command line: each command group lives in its own module."""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import os
import re
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# One thread per numeric library: calls and image jobs already run side by side,
# and on a 2-core machine extra threads only wait on each other (MRZ reading under
# load: 197 ms mean per image with the default pools, 94 ms with one thread).
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

# Each module exposes `register(commands: Commands) -> None`. A module that is
# not present yet (a feature still being built) is skipped.
COMMAND_MODULES = (
    "identdesk.cli_serve",
    "identdesk.cli_export",
    "identdesk.cli_qa",
    "identdesk.cli_mrz",
    "identdesk.cli_doc",
    "identdesk.cli_eval",
    "identdesk.cli_faces",
    "identdesk.cli_bench",
    "identdesk.cli_cycles",
)


class Commands:
    """The top-level sub-command table plus named groups such as `eval`."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser
        self.root = parser.add_subparsers(dest="command", metavar="COMMAND")
        self._groups: dict[str, Any] = {}

    def add(self, name: str, help: str) -> argparse.ArgumentParser:
        return self.root.add_parser(name, help=help, description=help)

    def group(self, name: str, help: str) -> Any:
        """A command with sub-commands (`identdesk eval mrz ...`), created once."""
        if name not in self._groups:
            parser = self.root.add_parser(name, help=help, description=help)
            self._groups[name] = parser.add_subparsers(
                dest=f"{name}_command", metavar="SUBCOMMAND", required=True
            )
        return self._groups[name]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="identdesk", description="identdesk video identification service"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages"
    )
    commands = Commands(parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(commands)
    return parser


# on a stderr that is not a terminal (a log file, CI), progress goes out as plain
# lines: at the first, at each further tenth of an "i/n" in the text, and at
# least every PLAIN_EVERY seconds otherwise
PLAIN_EVERY = 5.0
_FRACTION = re.compile(r"(\d+)/(\d+)")


class _Progress:
    """One progress line on stderr, rewritten in place with a carriage return on
    a terminal (a log line or the end of the job first ends it); elsewhere a
    plain line now and then."""

    open = False
    shown_at = -math.inf
    tenth: int | None = None

    @classmethod
    def show(cls, text: str) -> None:
        if sys.stderr.isatty():
            print(f"\r{text}", end="", file=sys.stderr, flush=True)
            cls.open = True
            return
        now, tenth = time.monotonic(), _tenth(text)
        if now - cls.shown_at < PLAIN_EVERY and tenth == cls.tenth:
            return
        print(text, file=sys.stderr, flush=True)
        cls.shown_at, cls.tenth = now, tenth

    @classmethod
    def end(cls, record: logging.LogRecord | None = None) -> bool:
        if cls.open:
            print(file=sys.stderr, flush=True)
            cls.open = False
        return True


def _tenth(text: str) -> int | None:
    """Which tenth of the job the first "i/n" in `text` stands at, if any."""
    found = _FRACTION.search(text)
    if found is None or int(found[2]) == 0:
        return None
    return 10 * int(found[1]) // int(found[2])


def progress(text: str) -> None:
    """Show `text` as the progress line (on stderr; see _Progress)."""
    _Progress.show(text)


def end_progress() -> None:
    """End the progress line, if one is shown."""
    _Progress.end()


# --- bad input: one plain line and exit 2 -------------------------------------


class InputError(Exception):
    """A file that cannot be read; the command exits 2 with this message."""


class TimesParser(argparse.ArgumentParser):
    """argparse reads `--window -1-5` as a missing value: say how to pass it."""

    def error(self, message: str) -> Any:
        for option in ("--window", "--torch-on"):
            if f"argument {option}: expected one argument" in message:
                message += (
                    f" (times start at 0 s; a value beginning with '-' is given "
                    f"as {option}=VALUE)"
                )
        super().error(message)


def guard(handler: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except InputError as exc:
            print(f"identdesk: {exc}", file=sys.stderr)
            return 2
        except BrokenPipeError:
            raise  # the reader went away: main() ends quietly
        except OSError as exc:
            # a file that changed under us between the checks and the use
            print(f"identdesk: {exc.filename!r}: {os_reason(exc)}", file=sys.stderr)
            return 2

    return run


def os_reason(exc: OSError) -> str:
    """An OSError in plain words: "permission denied", "no such file", ..."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        return "no such file"
    return (exc.strerror or str(exc)).lower()


def write_reason(exc: OSError, path: str | Path) -> str:
    """Why a file or folder could not be created at `path`, in plain words (the
    real reason, where os_reason would say "no such file" of a missing output)."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    p = Path(path).absolute()
    existing = next((a for a in p.parents if a.exists()), None)
    if isinstance(exc, NotADirectoryError) or (
        existing is not None and not existing.is_dir()
    ):
        return f"{str(existing)!r} is a file, not a folder"
    if isinstance(exc, FileNotFoundError) and existing == p.parent:
        return f"files cannot be created in {str(existing)!r}"
    if isinstance(exc, FileNotFoundError):
        return f"no such folder {str(p.parent)!r}"
    return (exc.strerror or str(exc)).lower()


def file_problem(path: str) -> str | None:
    """Why `path` cannot be an input file, in plain words; None when it can."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return os_reason(exc)
    if stat.S_ISDIR(st.st_mode):
        return "it is a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"  # a FIFO or device: opening it may block
    if st.st_size == 0:
        return "the file is empty"
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return os_reason(exc)
    return None


def write_problem(path: str | Path) -> str | None:
    """Why a new file cannot be written at `path`, in plain words; None when it
    seems it can (the writer's own error still counts)."""
    p = Path(path)
    if p.is_dir():
        return "it is a folder"
    parent = p.resolve().parent
    if not parent.is_dir():
        return f"no such folder {str(parent)!r}"
    if not os.access(parent, os.W_OK):
        return "permission denied"
    return None


def write_image(path: str | Path, image: Any) -> None:
    """Write a PNG or JPEG; InputError when it is not written."""
    import cv2

    problem = write_problem(path)
    try:
        written = problem is None and cv2.imwrite(str(path), image)
    except cv2.error:
        written = False
    if not written:
        raise InputError(f"cannot write {str(path)!r}: {problem or 'write failed'}")


def remove_file(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # not ours to remove (a folder), or not removable: leave it


def _without_client_address(record: logging.LogRecord) -> bool:
    if isinstance(record.msg, str) and record.msg.startswith("Error handling request"):
        record.msg, record.args = "Error handling request", ()
    return True


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import cv2  # already loaded by the command modules

    cv2.setNumThreads(int(os.environ["OMP_NUM_THREADS"]))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiohttp names the client's address when a request fails; logs carry
    # pseudonyms only (signaling.services.client_tag)
    logging.getLogger("aiohttp.server").addFilter(_without_client_address)
    for log_handler in logging.getLogger().handlers:
        log_handler.addFilter(_Progress.end)
    if not args.verbose:
        logging.getLogger("aioice").setLevel(logging.WARNING)
        logging.getLogger("aiortc").setLevel(logging.WARNING)
    # everything identdesk writes (data, keys, outbox, exports) is for its owner only
    os.umask(0o077)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): no traceback, and no second error when
        # Python flushes stdout on the way out
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    finally:
        end_progress()


if __name__ == "__main__":
    # `python -m identdesk.cli` runs this file as __main__; the command modules
    # import identdesk.cli, whose progress line must be the one main() ends
    from identdesk import cli

    sys.exit(cli.main())
