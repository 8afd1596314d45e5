"""The exit codes every command's `--help` lists, from one table (../shared/spec/
data-contract.md and allocator/errors.py ExitCode), so a scheduler's author reads the same
words under `solve --help`, `runs list --help` or `bench compare --help`.

`apply_epilogs(main)` gives every registered command (groups and their subcommands) its
list at start-up: commands named in COMMAND_CODES get theirs; any other command keeps an
epilog its module wrote, or gets the codes every command can end with.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import click

from allocator.errors import ExitCode

MEANINGS: dict[int, str] = {
    int(ExitCode.OK): "done (solve: optimal, or feasible within the requested gap)",
    int(ExitCode.INTERNAL): "internal error, a bug (the log path is printed)",
    int(ExitCode.BAD_INPUT): "bad input or usage: every problem, with file, row and column",
    int(ExitCode.INFEASIBLE): "infeasible: no plan meets the hard constraints (diagnosis "
                              "written)",
    int(ExitCode.TIME_LIMIT_NO_PLAN): "time limit reached with no plan (or, decomposed "
                                      "whole mode, no whole plan among the proposals)",
    int(ExitCode.TIME_LIMIT_WITH_PLAN): "time limit reached with a plan not proven optimal "
                                        "(or, decomposed whole mode, a gap left open; "
                                        "written; --accept-timeout makes it 0)",
    int(ExitCode.BENCH_WRONG_ANSWER): "a solver gave a wrong answer (against the checked "
                                      "optimum)",
    int(ExitCode.BENCH_REGRESSION): "compare --strict found a regression",
    int(ExitCode.ENVIRONMENT): "the machine failed the run (disk full, quota, read-only file "
                               "system, I/O error): nothing written",
    129: "interrupted by SIGHUP (nothing written)",
    130: "interrupted by SIGINT / Ctrl-C (nothing written)",
    143: "interrupted by SIGTERM (nothing written)",
}
EVERY = (0, 1, 2, 8)  # any command: done, a bug, bad input, the machine
SIGNALS = (130, 143, 129)
SOLVING = (*EVERY, 3, 4, 5, *SIGNALS)

# By command path ("bench run"); a group's entry is also its subcommands' default.
COMMAND_CODES: dict[str, Iterable[int] | Mapping[int, str]] = {
    "solve": SOLVING,
    "validate": EVERY,
    "generate": EVERY,
    "sensitivity": EVERY,
    "explain": (0, 1, 2),
    "solvers": (0, 1),
    "convert": EVERY,
    "runs": (0, 1, 2),
    "bench": (*EVERY, 6, 7),
    "bench run": (*EVERY, 6),
    "bench report": EVERY,
    "bench compare": (*EVERY, 7),
    "replay": {0: "reproduced: the plan identical (bytes), or under other versions the same "
                  "optimum",
               1: "not reproduced (the plan or the optimum differs), or an internal error",
               2: "bad input: not a bundle, an altered bundle, a target that cannot be "
                  "written",
               3: "the replayed run is infeasible", 4: MEANINGS[4], 5: MEANINGS[5],
               8: MEANINGS[8], 130: MEANINGS[130], 143: MEANINGS[143], 129: MEANINGS[129]},
}


def exit_codes_epilog(codes: Iterable[int] | Mapping[int, str] = EVERY) -> str:
    """The "Exit codes:" block of a --help, one code a line (`\\b` keeps Click from
    rewrapping it)."""
    meanings = codes if isinstance(codes, Mapping) else {c: MEANINGS[c] for c in codes}
    lines = [f"  {code:<3} {text}" for code, text in sorted(meanings.items())]
    return "\b\nExit codes:\n" + "\n".join(lines)


def _has_codes(command: click.Command) -> bool:
    return "exit codes" in (command.epilog or "").lower()


def apply_epilogs(group: click.Group, path: str = "") -> None:
    """Every command under `group` (and the top group itself: all the codes there are)
    lists its exit codes in its --help epilog."""
    if not path and not _has_codes(group):
        group.epilog = exit_codes_epilog(MEANINGS)
    for name, command in group.commands.items():
        key = f"{path} {name}".strip()
        codes = COMMAND_CODES.get(key)
        if codes is None and path in COMMAND_CODES:  # a subcommand: its group's codes
            codes = COMMAND_CODES[path]
        if codes is not None or not _has_codes(command):
            command.epilog = exit_codes_epilog(codes if codes is not None else EVERY)
        if isinstance(command, click.Group):
            apply_epilogs(command, key)
