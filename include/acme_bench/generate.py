"""A deterministic payments CSV for one day, written in chunks (memory does not grow with the row count).

Every row follows the contract (``acme_pipelines.contract.PAYMENTS``), so the
project load accepts all of them: unique integer ``payment_id``, ``amount``
>= 0 with two decimals, currency USD/EUR/GBP (the FX rates the bench inserts),
``paid_at`` an ISO 8601 UTC second within the day.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np

COLUMNS = ("payment_id", "order_id", "amount", "currency", "method", "status", "paid_at")
CURRENCIES = (("USD", 0.60), ("EUR", 0.25), ("GBP", 0.15))
METHODS = (("card", 0.70), ("paypal", 0.15), ("bank_transfer", 0.10), ("gift_card", 0.05))
STATUSES = (("captured", 0.90), ("failed", 0.06), ("refunded", 0.04))
CHUNK_ROWS = 100_000
DEFAULT_SEED = 20261101


def partition_file(landing_root: Path, day: date, source: str = "payments") -> Path:
    """``<landing_root>/payments/dt=YYYY-MM-DD/part-000.csv``, the layout ``load_partition`` reads."""
    return landing_root / source / f"dt={day.isoformat()}" / "part-000.csv"


def write_payments_csv(path: Path, rows: int, day: date, seed: int = DEFAULT_SEED, first_id: int = 1) -> int:
    """Write ``rows`` payments of ``day`` to ``path`` (header first), ids from ``first_id``; returns the file
    size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    prefix = f"{day.isoformat()}T"
    clock = [f"{prefix}{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)]
    cents = [f"{c:02d}" for c in range(100)]
    currencies, currency_p = zip(*CURRENCIES, strict=True)
    methods, method_p = zip(*METHODS, strict=True)
    statuses, status_p = zip(*STATUSES, strict=True)
    orders_high = max(rows // 2, 1) + 1  # about two payments per order
    with path.open("w", encoding="ascii", newline="") as out:
        out.write(",".join(COLUMNS) + "\n")
        for start in range(0, rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, rows - start)
            order_ids = rng.integers(1, orders_high, n).tolist()
            whole, frac = np.divmod(rng.integers(0, 100_000, n), 100)
            currency = rng.choice(len(currencies), n, p=currency_p).tolist()
            method = rng.choice(len(methods), n, p=method_p).tolist()
            status = rng.choice(len(statuses), n, p=status_p).tolist()
            second = rng.integers(0, 86_400, n).tolist()
            out.write(
                "".join(
                    f"{pid},{oid},{w}.{cents[f]},{currencies[c]},{methods[m]},{statuses[s]},{clock[t]}\n"
                    for pid, oid, w, f, c, m, s, t in zip(
                        range(first_id + start, first_id + start + n),
                        order_ids,
                        whole.tolist(),
                        frac.tolist(),
                        currency,
                        method,
                        status,
                        second,
                        strict=True,
                    )
                )
            )
    return path.stat().st_size
