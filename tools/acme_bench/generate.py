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


EVENT_TYPES = (("page_view", 0.57), ("add_to_cart", 0.19), ("checkout", 0.12), ("purchase", 0.12))
EVENT_REFERRERS = ("search", "email", "ads")
EVENTS_PER_SESSION = 4
ANONYMOUS_SHARE = 0.125  # events without a customer, as in the sample data
PRODUCTS = 10_000


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_UUID_DIGITS = [i for i in range(36) if i not in (8, 13, 18, 23)]


def _uuid4_texts(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` random version-4 UUIDs as canonical text (8-4-4-4-12), formatted by numpy."""
    raw = rng.integers(0, 256, (n, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    digits = np.empty((n, 32), dtype=np.uint8)
    digits[:, 0::2], digits[:, 1::2] = _HEX[raw >> 4], _HEX[raw & 0x0F]
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, _UUID_DIGITS] = digits
    flat = text.tobytes().decode("ascii")
    return [flat[i : i + 36] for i in range(0, 36 * n, 36)]


def write_events_jsonl(
    path: Path, rows: int, day: date, seed: int = DEFAULT_SEED, customers: int = 1_000, orders: int = 1_000
) -> int:
    """Write ``rows`` events of ``day`` to ``path`` as JSON lines, in chunks (memory does not grow with ``rows``);
    returns the file size in bytes.

    Every line follows the contract (``acme_pipelines.contract.EVENTS``): a unique UUID ``event_id``, a known
    ``event_type``, ``occurred_at`` within the day in the three spellings the sample data uses (``Z``, a +01:00
    offset, no offset), sessions of ``EVENTS_PER_SESSION`` events in a row, ``customer_id`` in 1..``customers`` or
    null (anonymous, ``ANONYMOUS_SHARE``), ``properties`` on purchases (an order in 1..``orders``) and on some
    other events.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    midnight = f"{day.isoformat()}"
    clock = [
        [f"{midnight}T{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)],
        [f"{midnight} {h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)],
    ]
    # the +01:00 spelling of the same instant: one hour later on the clock (the last hour is the next date's)
    following = date.fromordinal(day.toordinal() + 1).isoformat()
    clock.append(
        [
            f"{midnight if h < 23 else following}T{(h + 1) % 24:02d}:{m:02d}:{s:02d}+01:00"
            for h in range(24)
            for m in range(60)
            for s in range(60)
        ]
    )
    kinds, kind_p = zip(*EVENT_TYPES, strict=True)
    currencies, currency_p = zip(*CURRENCIES, strict=True)
    heads = [f'","event_type":"{k}","occurred_at":"' for k in kinds]
    with path.open("w", encoding="ascii", newline="") as out:
        for start in range(0, rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, rows - start)
            sessions = _uuid4_texts(rng, n // EVENTS_PER_SESSION + 1)
            kind = rng.choice(len(kinds), n, p=kind_p)
            style, second = rng.integers(0, 3, n), rng.integers(0, 86_400, n)
            customer = [str(c) for c in rng.integers(1, customers + 1, n).tolist()]
            for i in np.flatnonzero(rng.random(n) < ANONYMOUS_SHARE).tolist():
                customer[i] = "null"
            product = [str(p) for p in rng.integers(1, PRODUCTS + 1, n).tolist()]
            for i in np.flatnonzero(kind == 2).tolist():  # a checkout names no product
                product[i] = "null"
            # the end of each line: purchases name their order, 30% of the others a referrer
            referrer = rng.integers(0, 10, n)
            tails = [
                f',"properties":{{"referrer":"{EVENT_REFERRERS[r % 3]}"}}}}\n' if r < 3 else "}\n"
                for r in referrer.tolist()
            ]
            orders_of = rng.integers(1, orders + 1, n).tolist()
            currency = rng.choice(len(currencies), n, p=currency_p).tolist()
            for i in np.flatnonzero(kind == 3).tolist():
                tails[i] = f',"properties":{{"order_id":{orders_of[i]},"currency":"{currencies[currency[i]]}"}}}}\n'
            out.write(
                "".join(
                    f'{{"event_id":"{event_id}{heads[k]}{clock[t][sec]}","session_id":"'
                    f'{sessions[i // EVENTS_PER_SESSION]}","customer_id":{c},"product_id":{p}{tail}'
                    for i, (event_id, k, t, sec, c, p, tail) in enumerate(
                        zip(
                            _uuid4_texts(rng, n),
                            kind.tolist(),
                            style.tolist(),
                            second.tolist(),
                            customer,
                            product,
                            tails,
                            strict=True,
                        )
                    )
                )
            )
    return path.stat().st_size


POS_STORES = 8
POS_OPENING_SECONDS = (8 * 3600, 21 * 3600)  # the stores sell from 08:00 to 21:00 UTC


def write_pos_sqlite(path: Path, rows: int, day: date, seed: int = DEFAULT_SEED) -> int:
    """Write ``rows`` point-of-sale sales of ``day`` to a SQLite file at ``path`` (table ``sales`` as the sample
    data's stores write it, ``acme_sample_data.generator.POS_DDL``), in chunks; returns the file size in bytes.

    Every row follows the contract (``acme_pipelines.contract.POS``): unique ``sale_id`` from 1, a store of
    ``STORE_CURRENCIES`` selling in its currency, ``product_id`` in 1..``PRODUCTS``, ``quantity`` 1 to 4,
    ``amount`` >= 0 with two decimals, ``sold_at`` in opening hours in the sample data's three spellings. The file
    is written under a temporary name and renamed, as the stores' system delivers it.
    """
    import os
    import sqlite3

    from acme_sample_data.generator import POS_COLUMNS, POS_DDL, STORE_CURRENCIES

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    rng = np.random.default_rng(seed + 2)
    stores = sorted(STORE_CURRENCIES)
    opening, closing = POS_OPENING_SECONDS
    following = date.fromordinal(day.toordinal() + 1).isoformat()
    clock = [
        [f"{day}T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}Z" for s in range(86_400)],
        [f"{day} {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86_400)],
        [
            f"{day if s < 82_800 else following}T{(s // 3600 + 1) % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}+01:00"
            for s in range(86_400)
        ],
    ]
    cents = [f"{c:02d}" for c in range(100)]
    conn = sqlite3.connect(partial)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute(POS_DDL)
        insert = f"INSERT INTO sales ({', '.join(POS_COLUMNS)}) VALUES ({', '.join('?' for _ in POS_COLUMNS)})"
        for start in range(0, rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, rows - start)
            store = rng.integers(0, len(stores), n).tolist()
            register = rng.integers(1, 4, n).tolist()
            product = rng.integers(1, PRODUCTS + 1, n).tolist()
            quantity = rng.choice(4, n, p=(0.60, 0.25, 0.10, 0.05)) + 1
            whole, frac = np.divmod(rng.integers(199, 49_999, n) * quantity, 100)
            style = rng.integers(0, 3, n).tolist()
            second = rng.integers(opening, closing, n).tolist()
            conn.executemany(
                insert,
                (
                    (
                        sale_id,
                        stores[s],
                        stores[s] * 10 + r,
                        p,
                        q,
                        f"{w}.{cents[f]}",
                        STORE_CURRENCIES[stores[s]],
                        clock[t][sec],
                    )
                    for sale_id, s, r, p, q, w, f, t, sec in zip(
                        range(start + 1, start + n + 1),
                        store,
                        register,
                        product,
                        quantity.tolist(),
                        whole.tolist(),
                        frac.tolist(),
                        style,
                        second,
                        strict=True,
                    )
                ),
            )
        conn.commit()
    finally:
        conn.close()
    os.replace(partial, path)
    return path.stat().st_size
