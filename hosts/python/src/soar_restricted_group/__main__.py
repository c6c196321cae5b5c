"""`python -m soar_restricted_group`: the `soar-host` command line (README, "Command line") for
the provider-facing commands and `describe`: global options before the command, one JSON
document on stdout, logs on stderr, the same exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

from . import files, trace
from .action import Host, Refusal, Report, describe, load_plugin, refusal_report, stderr_log
from .users import printable

MAX_USERS_FILE_BYTES = 64 * 1024 * 1024
COMMANDS = ("test-connection", "add-to-group", "remove-from-group", "check-membership", "describe")


class _Refused(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage problem as a refusal document instead of exiting."""

    def error(self, message: str):
        raise _Refused(f"{message}; see python -m soar_restricted_group --help")


def parser() -> argparse.ArgumentParser:
    top = _Parser(prog="python -m soar_restricted_group", description="Runs the restricted-group plugin (soar-host's command line).")
    top.add_argument("--plugin", metavar="FILE")
    top.add_argument("--config", metavar="FILE")
    top.add_argument("--output", choices=("json", "table"), default="json")
    top.add_argument("--correlation-id", metavar="ID")
    top.add_argument("--trace", metavar="FILE")
    commands = top.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    def users(command):
        command.add_argument("--user", action="append", default=[], metavar="USER")
        command.add_argument("--users-file", action="append", default=[], metavar="FILE")

    def target(command):
        command.add_argument("--idp", metavar="NAME")

    target(commands.add_parser("test-connection", help="checks the token and finds the restricted group"))
    for name in ("add-to-group", "remove-from-group"):
        change = commands.add_parser(name, help=f"{name.replace('-', ' ')} for each user")
        users(change)
        target(change)
        change.add_argument("--dry-run", action="store_true")
        change.add_argument("--max-retries", type=int, metavar="N")
        change.add_argument("--timeout-ms", type=int, metavar="N")
    check = commands.add_parser("check-membership", help="whether each user is in the group")
    users(check)
    target(check)
    commands.add_parser("describe", help="prints the plugin's manifest")
    return top


def read_users(args) -> list[str]:
    """`--user` values, then each `--users-file` (one a line, blank lines and `#` comments skipped)."""
    found = list(args.user)
    for path in args.users_file:
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                data, _ = files.read_regular(path, MAX_USERS_FILE_BYTES)
                text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal("invalid-input", f"cannot read --users-file {path}: it is not UTF-8 text") from None
        except (files.FileProblem, OSError) as why:
            raise Refusal("invalid-input", f"cannot read --users-file {path}: {why}") from None
        found += [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return found


def run(argv: list[str]) -> tuple[Report, str]:
    """The report of one command line and its output format."""
    try:
        args = parser().parse_args(argv)
    except _Refused as why:
        command = next((word for word in argv if word in COMMANDS), None)
        return refusal_report(command, "invalid-input", str(why)), "json"
    if args.command is None:
        return refusal_report(None, "invalid-input", "no command given; see python -m soar_restricted_group --help"), "json"
    if args.command == "describe":
        try:
            return Report(describe(load_plugin(args.plugin, None)), 0), "json"
        except Refusal as refusal:
            return refusal_report("describe", refusal.kind, refusal.message), args.output
    try:
        users = read_users(args) if args.command != "test-connection" else []
        if args.config is None:
            raise Refusal("invalid-config", "--config FILE is required: it lists the identity providers")
        host = Host.from_config_file(args.config, args.plugin, stderr_log(args.correlation_id))
    except Refusal as refusal:
        return refusal_report(args.command, refusal.kind, refusal.message), args.output
    options = {"idp": args.idp, "correlation_id": args.correlation_id}
    if args.command in ("add-to-group", "remove-from-group"):
        options.update(dry_run=args.dry_run, max_retries=args.max_retries, timeout_ms=args.timeout_ms)
    try:
        trace_file = trace.TraceFile(args.trace) if args.trace else None
    except trace.TraceError as unusable:
        return refusal_report(args.command, "invalid-input", str(unusable)), args.output
    recorder = trace.Recorder() if trace_file else None
    report = host.run(args.command, users if args.command != "test-connection" else [], watch=recorder, **options)
    if trace_file:
        try:
            trace_file.write(recorder.har(("soar-restricted-group", host_version())))
        except trace.TraceError as why:  # the action ran; the operator must learn that its trace is missing
            host.log("error", str(why))
            report.document["trace_error"] = str(why)
            report.exit_code = max(report.exit_code, 1)
    return report, args.output


def host_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("soar-restricted-group")
    except metadata.PackageNotFoundError:  # run from a checkout
        return "unknown"


def table(document: dict, colour: bool = False) -> str:
    """`soar-host`'s table: one line per provider and user, the outcome or the error's kind and
    message; server text escaped so that nothing in it can move the cursor or reorder the line."""

    def paint(text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if colour else text

    def describe_error(error: dict) -> str:
        return f"{error.get('kind', '?')}: {error.get('message', '')}"

    status = document.get("status") or "?"
    status_colour = "32" if status == "success" else "33" if status == "partial" else "31"
    lines = [f"{document.get('action') or 'soar-host'} {paint(status, status_colour)}  (http requests: {document.get('http_requests') or 0})"]
    if not isinstance(document.get("providers"), list) and isinstance(document.get("error"), dict):
        lines.append(paint(printable(describe_error(document["error"])), "31"))
    rows = [["PROVIDER", "USER", "OUTCOME", "DETAIL"]]
    for provider in document.get("providers") or []:
        idp = provider.get("idp") or "?"
        group = provider.get("group") or {}
        group_text = group.get("display_name") or group.get("id") or ""
        if isinstance(provider.get("error"), dict):
            rows.append([idp, "-", "error", describe_error(provider["error"])])
        elif provider.get("outcome"):
            rows.append([idp, "-", provider["outcome"], f"group {group_text}"])
        for user in provider.get("users") or []:
            name = user.get("user") or "?"
            if isinstance(user.get("error"), dict):
                rows.append([idp, name, "error", describe_error(user["error"])])
            elif user.get("outcome"):
                rows.append([idp, name, user["outcome"], f"user id {user['user_id']}" if user.get("user_id") else ""])
            else:
                rows.append([idp, name, "-", ""])
    rows = [[printable(str(cell)) for cell in row] for row in rows]
    if len(rows) > 1:
        widths = [max(len(row[column]) for row in rows) for column in range(3)]
        for index, row in enumerate(rows):
            outcome = row[2].ljust(widths[2])
            if index > 0 and row[2] == "error":
                outcome = paint(outcome, "31")
            elif index > 0 and row[2] != "-":
                outcome = paint(outcome, "32")
            lines.append(f"{row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  {outcome}  {row[3]}".rstrip())
    return "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    report, output = run(sys.argv[1:] if argv is None else argv)
    if output == "table":
        sys.stdout.write(table(report.document, sys.stdout.isatty()))
    else:  # as soar-host prints it (serde_json's pretty form)
        sys.stdout.write(json.dumps(report.document, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return report.exit_code


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Everything is written and flushed (the audit log synced); tearing down wasmtime's objects
    # one by one would add 40 ms to every action.
    os._exit(code)
