"""Past one machine: Ray Data ingestion, date-range shards with global BM25 statistics, and
sharded serving on Ray Serve (SCALING.md).

- `shards`: a shard layout (ROOT/shard-00 … each a normal index folder, plus ROOT/shards.json with
  the shards' date ranges, the collection's BM25 statistics and the global wire-copy clusters);
  building and syncing it.
- `searcher`: one shard served: its index with BM25 weighed by the collection's statistics, and
  each leg's top rows for a prepared question.
- `router`: `ShardedQA`, a `QA` whose legs fan out to shards and are merged, then ranked and
  assembled by the same code as `QA.retrieve` / `QA.ask` (`api.rank`).
- `ingest` (needs Ray): reading, chunking and embedding on Ray Data.
- `serve` (needs Ray): the shards and the router as Ray Serve deployments (`qa serve`).
- `client`: `qa ask --server URL` (HTTP, standard library only).

Only `ingest` and `serve` import Ray (the optional extra `.[scale]`); nothing else in `qa`
imports this package's Ray modules unless `--ray` or `qa serve` is used.
"""
