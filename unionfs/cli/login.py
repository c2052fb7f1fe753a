"""``unionfs login [-u USER] [-p PASS | --password-stdin] REGISTRY``: prove credentials to a
registry, then keep them where podman keeps them (``registry.authfile``) for pull and push.
Asks on a terminal for what is not given (the password unechoed); ``--get-login`` prints
the user kept for REGISTRY. Prints ``Login Succeeded!``, as podman.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from unionfs.cli.registrycli import parse_bool, registries
from unionfs.errors import UserError
from unionfs.registry import authfile
from unionfs.registry.auth import Credentials
from unionfs.registry.client import Client
from unionfs.registry.reference import DOCKER_HUB, DOCKER_HUB_API, parse_reference


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("login", help="log in to a registry", description=__doc__)
    p.add_argument("registry", metavar="REGISTRY", nargs="?", default=DOCKER_HUB,
                   help="host[:port] (default docker.io)")  # fmt: skip
    p.add_argument("-u", "--username", metavar="USER")
    p.add_argument("-p", "--password", metavar="PASS",
                   help="others see it in the process list: use --password-stdin")  # fmt: skip
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--authfile", metavar="FILE", help="where to keep the credentials")
    p.add_argument("--get-login", action="store_true", help="print the user logged in")
    p.add_argument("--tls-verify", type=parse_bool, nargs="?", const=True, default=None,
                   metavar="BOOL", help="verify the registry's certificate (default: true, "
                   "unless registries.conf marks it insecure)")  # fmt: skip


def _ask(args: argparse.Namespace) -> tuple[str, str]:
    user, password = args.username, args.password
    if args.password_stdin:
        if password is not None:
            raise UserError("give --password or --password-stdin, not both", exit_code=2)
        if user is None:
            raise UserError("--password-stdin needs --username", exit_code=2)
        password = sys.stdin.readline().rstrip("\r\n")
    if user is None or password is None:
        if not sys.stdin.isatty():
            raise UserError("give --username and --password (or --password-stdin): stdin is "
                            "not a terminal to ask on", exit_code=2)  # fmt: skip
        if user is None:
            user = input("Username: ").strip()
        if password is None:
            password = getpass.getpass("Password: ")
    if not user:
        raise UserError("the user name is empty", exit_code=2)
    return user, password


def run(args: argparse.Namespace) -> int:
    server = authfile.key_for(args.registry)
    path = authfile.write_path(args.authfile)
    if args.get_login:
        user = authfile.username(path, server)
        if user is None:
            raise UserError(f"not logged into {server}")
        print(user)
        return 0
    host = server.split("/", 1)[0]
    ref = parse_reference(f"{server}/x" if "/" not in server else server)
    conf = registries()
    conf.check_allowed(ref)
    verify = args.tls_verify if args.tls_verify is not None else not conf.insecure(ref)
    user, password = _ask(args)
    api = DOCKER_HUB_API if host == DOCKER_HUB else host
    with Client(host, api, tls_verify=verify, credentials=Credentials(user, password)) as client:
        client.check_login()
    authfile.store(path, server, user, password)
    print("Login Succeeded!")
    return 0
