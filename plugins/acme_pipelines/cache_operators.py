"""The cache refresh operator (logic in ``cache``; SQL in ``include/sql/cache``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from acme_pipelines.operators import SQL_ROOT, WarehouseOperator, Work
from acme_pipelines.partitions import DAY, Grain, Partition

QUARTER_HOUR = Grain.minutes(15)
SUMMARY_KEYS = ("today", "top_products")  # the rest are customer:{id}
INPUTS = ("core.fact_orders", "core.fact_order_items", "core.dim_product", "core.fx_rates")


class CacheUnavailableError(RuntimeError):
    """Redis cannot be reached; the task fails and Airflow retries it."""


class CacheRefreshOperator(WarehouseOperator):
    """Publish hot aggregates of the run's 15-minute window to Redis as one new version.

    Keys (``{prefix}:v{N}:...``): ``today`` (orders and booked value of the
    day so far), ``top_products`` and ``customer:{id}`` for every customer who
    ordered in the last ``recent_days``. Readers follow ``{prefix}:current``.

    :param ttl_seconds: lifetime of every version key (templated).
    """

    template_fields: Sequence[str] = ("key_prefix", "ttl_seconds", "redis_conn_id")
    partition_grain = QUARTER_HOUR

    def __init__(
        self,
        *,
        redis_conn_id: str = "redis_cache",
        key_prefix: str = "{{ var.value.get('cache_key_prefix', 'acme:cache') }}",
        ttl_seconds: int | str = "{{ var.value.get('cache_ttl_seconds', '3600') }}",
        recent_days: int = 7,
        top_n: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.redis_conn_id = redis_conn_id
        self.key_prefix = key_prefix
        self.ttl_seconds = ttl_seconds
        self.recent_days = recent_days
        self.top_n = top_n

    def _entries(self, hook: Any, conn: Any, params: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        with conn.cursor() as cur:
            [today] = hook.query_rows(cur, (SQL_ROOT / "cache" / "today.sql").read_text(), params)
            top = hook.query_rows(
                cur, (SQL_ROOT / "shared" / "top_products.sql").read_text(), {**params, "limit": self.top_n}
            )
        yield "today", {"day": params["day_start"].date(), "until": params["until"], **today}
        yield "top_products", {"day": params["day_start"].date(), "until": params["until"], "products": top}
        query = (SQL_ROOT / "cache" / "recent_customers.sql").read_text()
        for batch in hook.query_batches(conn, query, params, batch_rows=5_000):
            for row in batch.to_pylist():
                yield f"customer:{row['customer_id']}", {"until": params["until"], **row}

    def run(self, context: Any, window: Partition, hook: Any) -> Work:
        import redis
        from airflow.providers.redis.hooks.redis import RedisHook

        from acme_pipelines import cache

        params = {"day_start": DAY.floor(window.start), "until": window.end, "recent_days": self.recent_days}
        redis_hook = RedisHook(redis_conn_id=self.redis_conn_id)
        try:
            client = redis_hook.get_conn()
            client.ping()
            with hook.scoped_connection() as conn:
                entries = self._entries(hook, conn, params)
                published = cache.publish(client, self.key_prefix, entries, int(self.ttl_seconds))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            where = f"{redis_hook.host}:{redis_hook.port}"
            raise CacheUnavailableError(
                f"Redis at {where} (connection {self.redis_conn_id}) is unreachable: {exc}. "
                f"Readers keep the current snapshot; this task retries."
            ) from exc
        self.log.info(
            "%s: version %d live (%d keys, %d customers; ttl %ss), previous %s, %d old keys deleted",
            window, published.version, published.keys, published.keys - len(SUMMARY_KEYS), self.ttl_seconds,
            published.previous, published.deleted_keys,
        )  # fmt: skip
        return Work(
            {"window": str(window), "version": published.version, "keys": published.keys},
            inputs=[hook.dataset(t) for t in INPUTS],
            outputs=[(f"redis://{redis_hook.host}:{redis_hook.port}", self.key_prefix)],
            counters=[("cache_keys", published.keys, self.key_prefix)],
        )
