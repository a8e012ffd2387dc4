"""What the CLI tests share: run ``jaxbp`` in-process, write a small CSV."""

from __future__ import annotations

import csv

from jaxbp.cli import main


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of ``jaxbp ARGV`` run in-process; never a traceback."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def write_csv(path, header, rows):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path
