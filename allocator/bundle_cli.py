"""`allocator replay BUNDLE --out DIR`: re-run a run's bundle and say whether it reproduced."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console

from allocator.exit_codes import exit_codes_epilog
from allocator.failures import report_failure

REPLAY_CODES = {0: "reproduced: the plan identical, or (other versions) the same optimum",
                1: "not reproduced (the plan or the optimum differs), or an internal error"}


@click.command("replay", epilog=exit_codes_epilog(REPLAY_CODES))
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Run folder to write the replayed run to (written whole or not at all).")
@click.option("--force", is_flag=True, help="Replace an existing run folder.")
@click.option("--json", "as_json", is_flag=True, help="The comparison as JSON on stdout.")
def replay_command(bundle: Path, out_dir: Path, force: bool, as_json: bool) -> None:
    """Re-run BUNDLE (a bundle.tar.gz, or the run folder holding one, written by `solve
    --bundle`) into --out, and compare its plan tables (bytes), optimum and versions with
    the run that wrote it."""
    from allocator.replay import replay_bundle

    err = Console(stderr=True, soft_wrap=True)
    try:
        report = replay_bundle(bundle, Path(os.path.expanduser(out_dir)), force=force)
    except BaseException as exc:
        sys.exit(report_failure(exc, err))
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=1, default=str))
    else:
        for line in report.lines():
            click.echo(line)
        click.echo(f"written: {report.folder} (exit {report.verdict_code})")
    sys.exit(report.verdict_code)
