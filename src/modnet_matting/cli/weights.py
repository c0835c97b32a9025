"""``modnet weights``: list the named weights and download the ones that live behind a URL."""

from __future__ import annotations

import argparse
import sys

from .main import CLIError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("weights", help="list or download named weights", description=__doc__)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("list", help="names, descriptions and whether each is on this machine")
    fetch = actions.add_parser("fetch", help="download a named checkpoint and verify its SHA-256")
    fetch.add_argument("name")
    fetch.add_argument("--sha256", help="expected SHA-256 (needed when the registry records none)")
    parser.set_defaults(func=run)


def _is_local(name: str) -> bool:
    from ..weights import WeightsNotFoundError, resolve

    try:
        resolve(name)
    except WeightsNotFoundError:
        return False
    return True


def run(args: argparse.Namespace) -> int:
    from ..weights import DEFAULT_WEIGHTS, REGISTRY, describe, fetch

    if args.action == "list":
        width = max(len(name) for name in REGISTRY)
        print(f"{'NAME':<{width}}  LOCAL  DESCRIPTION")
        for name in REGISTRY:
            default = " [default]" if name == DEFAULT_WEIGHTS else ""
            local = "yes" if _is_local(name) else "no"
            print(f"{name:<{width}}  {local:<5}  {describe(name)}{default}")
        return 0
    try:
        path = fetch(args.name, sha256=args.sha256)
    except OSError as exc:  # network and disk errors
        raise CLIError(f"could not download '{args.name}': {exc}") from None
    print(path)
    print(f"fetched {args.name} -> {path}", file=sys.stderr)
    return 0
