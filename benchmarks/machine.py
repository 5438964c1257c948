"""What the machine was doing while a benchmark ran: printed with every table, because
other work on the 2 cores moves wall times several-fold."""

from __future__ import annotations

import os


def load() -> str:
    """``load average 1.4, 1.3, 2.4`` (1, 5 and 15 minutes)."""
    return "load average " + ", ".join(f"{v:.1f}" for v in os.getloadavg())
