"""The command-line side of scaling: `qa build/sync --ray/--shards`, `qa serve`, `qa ask --server`
(qa/cli.py parses the flags and hands over here; Ray is imported only for --ray and `qa serve`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .. import store
from ..chunking import ChunkSettings
from ..errors import QAError
from .shards import Layout, ShardsReport, is_shard_root, sync_shards


def require_ray() -> None:
    """Raise QAError (with how to install it) when Ray is missing."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise QAError("--ray and `qa serve` need Ray: pip install -e '.[scale]' (ray[data,serve])")


def ray_embedder(args, index_dirs: list[Path], *, sync: bool):
    """The Ray Data pass of a build or sync (`--ray [ADDRESS]`): the vectors of every chunk the
    write will need (for a sync, those the live index lacks)."""
    require_ray()
    from . import ingest

    model, chunking = args.model, None
    if sync:
        recorded = _recorded(index_dirs)
        model = model or (recorded or {}).get("model", {}).get("name")
        chunking = ChunkSettings(**recorded["chunking"]) if recorded else None
    ingest.connect(None if args.ray == "local" else args.ray)
    start = time.perf_counter()
    known = ingest.known_chunks(index_dirs, model, chunking) if sync else None
    embedder = ingest.ray_embedder(args.paths, model=model, chunking=chunking, known=known,
                                   progress=sys.stderr.isatty())
    nodes = sorted({w.rsplit(":", 1)[0] for w in embedder.workers})
    print(f"embedded {len(embedder)} chunks on Ray in {time.perf_counter() - start:.1f} s "
          f"({len(embedder.workers)} actors on {len(nodes)} node{'' if len(nodes) == 1 else 's'})", file=sys.stderr)
    return embedder


def build_shards(args, embedder) -> ShardsReport:
    return sync_shards(args.paths, args.index, shards=args.shards, embedder=embedder, model=args.model,
                       dense=args.dense, skip_bad=args.skip_bad, progress=sys.stderr.isatty())


def sync_root(args, embedder) -> ShardsReport:
    return sync_shards(args.paths, args.index, embedder=embedder, model=args.model, dense=args.dense,
                       skip_bad=args.skip_bad, progress=sys.stderr.isatty())


def shard_folders(index: str | Path) -> list[Path]:
    """A shard root's shard folders ([index] for a single index)."""
    if not is_shard_root(index):
        return [Path(index)]
    layout = Layout.load(index)
    return [layout.folder(i) for i in range(len(layout.shards))]


def serve(args) -> int:
    """`qa serve`: deploy the shards and the router on Ray Serve and keep them up until Ctrl-C."""
    require_ray()
    from ray import serve as ray_serve

    from . import serve as sharded

    root = sharded.shard_root(args.shards)
    url = sharded.start(root, address=None if args.ray in (None, "local") else args.ray, host=args.host, port=args.port,
                        timeout=args.timeout, model=args.model, replicas=args.replicas)
    print(f"serving {root} ({len(Layout.load(root).shards)} shards) at {url} — POST {{\"question\": ...}}; Ctrl-C stops",
          flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        ray_serve.shutdown()
    return 0


def _recorded(index_dirs: list[Path]) -> dict | None:
    try:
        return store.open_index(Path(index_dirs[0]), verify=False)[1]
    except QAError:
        return None
