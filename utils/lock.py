#!/usr/bin/env python3
"""Take or give back a directory's run lock from a shell script (steps/core/dir_lock.py).

    utils/lock.py acquire <dir> --pid $$ --command "$0 $*"   # exit 1, naming the holder, if held
    utils/lock.py release <dir> --pid $$
    utils/lock.py show <dir>

The lock file is <dir>/.run.lock. A lock whose process is gone is taken over. The recipes
take it right after parsing their options and give it back on exit (trap ... EXIT).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from steps.core.dir_lock import LockHeld, acquire, read_holder, release  # noqa: E402

LOCK_NAME = ".run.lock"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["acquire", "release", "show"])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--pid", type=int, default=None, help="the holder (default: the parent shell)")
    parser.add_argument("--command", default="", help="what the holder runs (shown to a second run)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%Y-%m-%d %H:%M:%S")
    path = args.dir / LOCK_NAME
    pid = args.pid or os.getppid()
    if args.action == "acquire":
        try:
            acquire(path, pid=pid, command=args.command)
        except LockHeld as e:
            print(f"lock.py: {e}", file=sys.stderr)
            return 1
    elif args.action == "release":
        release(path, pid=pid)
    else:
        holder = read_holder(path)
        print(holder.describe() if holder else "not locked")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
