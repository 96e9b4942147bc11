"""Run several `grokinterp` command lines, each in its own process, paying for the slow import once.

    python tests/_cli_cases.py CASES.json RESULTS.json

CASES.json is a list of {"argv": [...], "cwd": "..."}. This process imports grokinterp (about 4 s,
mostly transformer_lens), then forks one child per case: the child changes to its `cwd`, sends its
stdout and stderr to files, and exits with what `python -m grokinterp.cli ARGV` would exit with
(`sys.exit(main(argv))`, argparse's SystemExit included). RESULTS.json gets, per case, the exit
code, stdout and stderr. Not a test itself; tests/test_reliability.py uses it.
"""

import json
import os
import sys
import tempfile
import traceback

import grokinterp.train  # noqa: F401  (the slow import, shared by every child)
from grokinterp.cli import main


def run_case(argv: list[str], cwd: str) -> dict:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.chdir(cwd)
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                try:
                    code = main(argv)
                except SystemExit as e:  # what sys.exit / argparse would make the exit status
                    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                    if isinstance(e.code, str):
                        print(e.code, file=sys.stderr)
                code = 0 if code is None else code
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return {"code": os.waitstatus_to_exitcode(status), "stdout": out.read().decode(), "stderr": err.read().decode()}


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    results = [run_case(case["argv"], case["cwd"]) for case in cases]
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)
