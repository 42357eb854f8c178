"""Progress that shows in a terminal and in a log file alike.

tqdm draws nothing when stderr is not a terminal (`disable=None`), which is how long runs are
usually started (nohup, a pipe, CI): a 40-minute training or a 5-minute scoring pass then leaves
no trace in the log and looks hung. `Progress` is a tqdm bar in a terminal and, without one, a log
line every tenth of the work with the time so far and a linear estimate of what is left.
"""

from __future__ import annotations

import logging
import time

from tqdm import tqdm


class Progress:
    """A tqdm bar, or (no terminal) `<desc> <unit> k/total[, note], x min so far, ~y min left` log lines."""

    def __init__(self, total: int, desc: str, unit: str, log: logging.Logger, *, leave: bool = True, initial: int = 0) -> None:
        """`initial`: units already done (a resumed training); the time left is estimated from this run's rate."""
        self.total, self.desc, self.unit, self.log = total, desc, unit, log
        self.bar = tqdm(total=total, desc=desc, unit=unit, disable=None, leave=leave, initial=initial)
        self.every = max(1, total // 10) if self.bar.disable else 0
        self.done = self.initial = initial
        self.start = time.perf_counter()

    def update(self, n: int = 1, note: str = "") -> None:
        """Advance by n; `note` (a loss, say) goes into the bar's postfix and the log line."""
        before, self.done = self.done, self.done + n
        self.bar.update(n)
        if note:
            self.bar.set_postfix_str(note)
        if self.every and (self.done // self.every > before // self.every or self.done == self.total):
            elapsed = time.perf_counter() - self.start
            self.log.info("%s %s %d/%d%s, %.1f min so far, ~%.1f min left", self.desc, self.unit, self.done,
                          self.total, f", {note}" if note else "", elapsed / 60,
                          elapsed / (self.done - self.initial) * (self.total - self.done) / 60)

    def close(self) -> None:
        self.bar.close()
