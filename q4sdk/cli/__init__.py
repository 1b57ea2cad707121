"""The ``q4sdk`` command line: ``main`` and ``build_parser``.

Each submodule adds its commands with ``register(subparsers)``: ``model`` (quantize, generate,
inspect), ``check`` (verify, report), ``target`` (boards, run, generate --board) and ``demo``;
``common`` holds what they share. Only ``q4sdk.__main__`` imports this package (tests/test_layering.py).

Every command fails with a one-line ``error: ...`` naming the file / node / field at fault and exit
status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys

from q4sdk.cli import check, demo, model, target
from q4sdk.errors import Q4Error


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="q4sdk", description="INT4 post-training quantization to bit-exact C")
    ap.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = ap.add_subparsers(dest="command", required=True)
    for module in (model, target, check, demo):
        module.register(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Q4Error as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        # a path the command reads or writes that its own checks did not catch
        if args.debug:
            raise
        if not e.filename:
            return _internal_error(e)
        print(f"error: {e.filename}: {e.strerror or type(e).__name__}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the last line of defence for a CLI
        if args.debug:
            raise
        return _internal_error(e)


def _internal_error(e: Exception) -> int:
    print(f"internal error: {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main())
