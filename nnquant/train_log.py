"""The evaluation log of a training run: one row per evaluation, CSV (``*.csv``) or JSON lines (otherwise).

Columns: iteration, epoch, train_loss (mean over the iterations since the previous row), val_loss, val_acc,
beta, lr (those of the last iteration of the interval); empty / null where there is no value.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from nnquant.checkpoint import write_atomic

COLUMNS = ("iteration", "epoch", "train_loss", "val_loss", "val_acc", "beta", "lr")


class EvalLog:
    """Writes ``rows`` (the history so far, e.g. from a resumed checkpoint) atomically, then appends rows."""

    def __init__(self, path: str | Path, rows: list[dict]):
        self.path = Path(path)
        self.csv = self.path.suffix.lower() == ".csv"
        text = self._header() + "".join(self._line(r) for r in rows)
        write_atomic(self.path, text.encode())

    def _header(self) -> str:
        return ",".join(COLUMNS) + "\n" if self.csv else ""

    def _line(self, row: dict) -> str:
        values = {c: row.get(c) for c in COLUMNS}
        if not self.csv:
            return json.dumps(values) + "\n"
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(["" if v is None else repr(v) for v in values.values()])
        return buf.getvalue()

    def append(self, row: dict) -> None:
        with open(self.path, "a") as f:
            f.write(self._line(row))
