"""plan.xlsx written by XlsxWriter (what the run folder uses) against openpyxl's write-only mode.

    .venv/bin/allocator generate --size medium --out /tmp/gmed
    .venv/bin/allocator solve /tmp/gmed/scenario.toml --out /tmp/mrun --no-store
    .venv/bin/python benchmarks/workbook.py /tmp/mrun [--repeats 1] [--without sensitivity]

The run folder's tables (read back as `allocator.open_run` reads them) are written to one
workbook both ways, with the same number formats, frozen header and widths: XlsxWriter by
`allocator.outputs.workbook.write_workbook`; openpyxl as its write-only mode must, a styled
cell object for every formatted number. Wall and this process's CPU seconds, and the size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import pandas as pd  # noqa: E402

from allocator.api import open_run  # noqa: E402
from allocator.outputs.workbook import (  # noqa: E402
    _cells,
    _width,
    number_format,
    sheet_order,
    summary_rows,
    write_workbook,
)


def with_openpyxl(path: Path, tables: dict[str, pd.DataFrame], summary: dict[str, Any]) -> None:
    import openpyxl
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    book = openpyxl.Workbook(write_only=True)
    frames = {"summary": summary_rows(summary), **tables}
    for name in sheet_order(list(frames)):
        frame = frames[name]
        sheet = book.create_sheet(name)
        sheet.freeze_panes = "A2"
        columns = [_cells(frame[c]) for c in frame.columns]
        formats = [number_format(name, str(c)) if kind == "number" else None
                   for c, (_, kind) in zip(frame.columns, columns, strict=True)]
        for j, header in enumerate(frame.columns):
            letter = openpyxl.utils.get_column_letter(j + 1)
            sheet.column_dimensions[letter].width = _width(str(header), columns[j][0],
                                                           formats[j])
        bold = []
        for header in frame.columns:
            cell = WriteOnlyCell(sheet, value=str(header))
            cell.font = Font(bold=True)
            bold.append(cell)
        sheet.append(bold)
        for row in zip(*(cells for cells, _ in columns), strict=True):
            out: list[Any] = []
            for value, fmt in zip(row, formats, strict=True):
                if fmt is None or value is None or isinstance(value, str):
                    out.append(value)
                else:
                    cell = WriteOnlyCell(sheet, value=value)
                    cell.number_format = fmt
                    out.append(cell)
            sheet.append(out)
    book.save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--without", nargs="*", default=[], help="tables to leave out")
    args = parser.parse_args()
    run = open_run(args.run)
    tables = {name: run.table(name) for name in run.tables() if name not in args.without}
    cells = sum(frame.size for frame in tables.values())
    print(f"# {args.run}: {', '.join(f'{n} {len(f):,}' for n, f in tables.items())} rows; "
          f"{cells:,} cells", flush=True)
    work = Path(tempfile.mkdtemp(prefix="bench-workbook-"))
    for engine, write in (("xlsxwriter", write_workbook), ("openpyxl", with_openpyxl)):
        walls, cpus = [], []
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            write(work / f"{engine}.xlsx", tables, run.summary)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        size = (work / f"{engine}.xlsx").stat().st_size / 2**20
        print(f"{engine:10}: {statistics.median(walls):7.2f} s wall "
              f"{statistics.median(cpus):7.2f} s CPU  {size:6.1f} MiB  "
              f"({cells / statistics.median(cpus):,.0f} cells per CPU second)", flush=True)


if __name__ == "__main__":
    main()
