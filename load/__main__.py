"""`python -m load PROFILE [--host URL]`: one load run and its SLO verdict (exit 0 pass, 1 an SLO breached, 2 the
profile or the target is unusable and nothing was judged, 3 an invalid run: the generator was the limit).
`python -m load accounts --count N --out FILE`: the accounts for a run against HOST (see load/accounts.py)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from load.accounts import make_accounts, write_accounts
from load.profile import ProfileError, load_profile
from load.run import ROOT, Options, TargetError, run

UNUSABLE = 2


def main(argv: list[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    if arguments.profile == "accounts":
        return _accounts(arguments)
    try:
        profile = load_profile(arguments.profile)
    except ProfileError as error:
        sys.stderr.write(f"invalid profile: {error}\n")
        return UNUSABLE
    accounts = os.environ.get("LOAD_ACCOUNTS")
    options = Options(
        host=arguments.host or os.environ.get("HOST") or None,
        processes=arguments.processes,
        insecure=os.environ.get("LOAD_INSECURE") == "1",
        accounts=Path(accounts) if accounts else None,
        reports=Path(arguments.reports),
    )
    try:
        return int(run(profile, options).outcome)
    except TargetError as error:
        sys.stderr.write(f"cannot load the target: {error}\n")
        return UNUSABLE


def _accounts(arguments: argparse.Namespace) -> int:
    password = os.environ.get("LOAD_PASSWORD")
    if not password:
        sys.stderr.write("LOAD_PASSWORD is the accounts' password\n")
        return UNUSABLE
    try:
        made = make_accounts(arguments.count, arguments.totp_share, password, dict(os.environ), Path.cwd())
    except RuntimeError as error:
        sys.stderr.write(f"{error}\n")
        return UNUSABLE
    write_accounts(made, Path(arguments.out))
    print(f"{len(made)} accounts ({sum(1 for a in made if a.totp_secret)} with TOTP) in {arguments.out}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m load", description=__doc__)
    parser.add_argument("profile", help="a profile's name (load/profiles/NAME.yaml) or path; or `accounts`")
    parser.add_argument("--host", help="the deployment to load (default: HOST; unset: the local topology)")
    parser.add_argument("--processes", type=int, default=int(os.environ.get("LOAD_PROCESSES", "1")))
    parser.add_argument("--reports", default=str(ROOT / "reports"))
    parser.add_argument("--count", type=int, default=100, help="accounts: how many")
    parser.add_argument("--totp-share", type=float, default=0.2, help="accounts: the share with TOTP on")
    parser.add_argument("--out", default="accounts.json", help="accounts: the file to write")
    return parser


if __name__ == "__main__":
    sys.exit(main())
