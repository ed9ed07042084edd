"""Sharded serving on Ray Serve (`qa serve --shards ROOT`).

One deployment per shard (`ShardDeployment`: a `ShardSearcher` over the shard's index folder) and
a router deployment (`RouterDeployment`: a `ShardedQA` that reaches the shards through their
deployment handles) which takes HTTP requests::

    POST /   {"question": "...", "k": 5, "history": [...], "since": "2022-10-01", "until": ...,
              "publishers": [...], "now": ..., "recency": null, "read_time": true,
              "timeout": null (seconds this question may wait for the shards; default --timeout)}
         ->  Answer.to_dict() plus "answer_citation" (the n of the citation whose sentence
             answers, or null) and "partial" (null, or which shards could not be searched and why)
    GET  /   the shards and the model

A question is refused with 400 and {"error": ...} when it is empty or too long. Every call to a
shard has a deadline (`--timeout`), so a shard that is down or slow makes a partial answer,
never a hanging one; Serve restarts a dead replica and the shard answers again.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ray import serve

from ..embedding import load_embedder
from ..errors import QAError, QuestionError
from .ingest import connect
from .router import TIMEOUT_S, ShardedQA, answer_request
from .searcher import ShardSearcher
from .shards import Layout, is_shard_root

# A shard's search is one numpy/FAISS thread; the router embeds questions (and highlight
# sentences). Fractions, so that a 2-CPU machine holds the router, several shards and Ray's own
# processes (whole CPUs for each would leave the shards unscheduled: Serve waits silently).
SHARD_CPUS = 0.25
ROUTER_CPUS = 0.5
# How soon Serve notices a replica that died and starts another (its default is 10 s).
HEALTH_CHECK_PERIOD_S = 2.0
APP = "nieuws-qa"


@serve.deployment(ray_actor_options={"num_cpus": SHARD_CPUS}, health_check_period_s=HEALTH_CHECK_PERIOD_S,
                  health_check_timeout_s=30.0)
class ShardDeployment:
    """One shard's index folder, searched (`ShardSearcher`'s methods)."""

    def __init__(self, root: str, number: int, generations: str = ""):
        # `generations` (the layout's) only makes a synced layout a new deployment version, so
        # that deploying again replaces the replicas one by one (a rolling update).
        self.searcher = ShardSearcher(root, number)

    def describe(self) -> dict:
        return self.searcher.describe()

    def legs(self, query, settings, today):
        return self.searcher.legs(query, settings, today)

    def records(self, rows, doc_ids):
        return self.searcher.records(rows, doc_ids)

    def memory(self) -> dict:
        return self.searcher.memory()


class _Pending:
    """A call to a shard deployment, awaited with a timeout (router.ShardClient's result)."""

    def __init__(self, response):
        self.response = response

    def result(self, timeout: float):
        return self.response.result(timeout_s=timeout)

    def cancel(self) -> None:
        self.response.cancel()


class _ServeShard:
    """router.ShardClient over a shard deployment's handle."""

    def __init__(self, name: str, handle):
        self.name = name
        try:
            # Answers straight back over Serve's gRPC path rather than through the object store:
            # a 3-shard fan-out took 4.1 ms instead of 7.6 ms (p50, 2 busy cores; SCALING.md).
            self.handle = handle.options(_by_reference=False)
        except TypeError:  # a Ray without that option
            self.handle = handle

    def call(self, method: str, *args) -> _Pending:
        return _Pending(getattr(self.handle, method).remote(*args))


@serve.deployment(ray_actor_options={"num_cpus": ROUTER_CPUS}, health_check_period_s=HEALTH_CHECK_PERIOD_S)
class RouterDeployment:
    """The HTTP entry: questions prepared, fanned out to the shards, ranked and answered."""

    def __init__(self, root: str, shards: list, model: str | None, timeout: float, generations: str = ""):
        layout = Layout.load(root)
        clients = [_ServeShard(s.name, h) for s, h in zip(layout.shards, shards)]
        embedder = load_embedder(model or layout.model.get("name"))
        # The router waits for the shards (`describe`) as it starts; Serve runs constructors on the
        # replica's event loop, where handles must not be waited on: wait in a thread.
        with ThreadPoolExecutor(1) as pool:
            self.qa = pool.submit(ShardedQA, clients, embedder, layout, timeout=timeout).result()

    async def __call__(self, request):
        from starlette.responses import JSONResponse

        if request.method == "GET":
            return JSONResponse(self.qa.info())
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the request body is not JSON"}, status_code=400)
        try:
            # The router's work (embedding, fusion, assembly) and its waits on the shards run in
            # a thread, off the replica's event loop.
            return JSONResponse(await asyncio.get_running_loop().run_in_executor(None, self.ask, body))
        except (QuestionError, ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        except QAError as exc:
            return JSONResponse({"error": str(exc)}, status_code=500)

    def ask(self, body: dict) -> dict:
        """Answer one request body (see the module docstring)."""
        return answer_request(self.qa, body)


def shard_root(paths: list[str | Path]) -> Path:
    """The shard root that `qa serve --shards` names: the root itself, or all of its shard folders.

    Raises:
        QAError: the folders are not one root's shards, all of them.
    """
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and is_shard_root(paths[0]):
        return paths[0]
    roots = {p.resolve().parent for p in paths}
    if len(roots) != 1 or not is_shard_root(next(iter(roots))):
        raise QAError("--shards takes a shard root (made by `qa build --shards N`) or all of its shard folders")
    root = next(iter(roots))
    names = {s.name for s in Layout.load(root).shards}
    if {p.name for p in paths} != names:
        raise QAError(f"{root} has shards {', '.join(sorted(names))}; serve all of them (or give the root)")
    return root


def application(root: str | Path, *, model: str | None = None, timeout: float = TIMEOUT_S, replicas: int = 1):
    """The Serve application: one deployment per shard (named after it) and the router. Deployed
    again after `qa sync` of the root (`start` with the same cluster), Serve replaces the replicas
    of the new layout one by one while the old ones answer."""
    layout = Layout.load(root)
    generations = ",".join(s.generation for s in layout.shards)
    shards = [ShardDeployment.options(name=s.name, num_replicas=replicas).bind(str(layout.root), i, generations)
              for i, s in enumerate(layout.shards)]
    return RouterDeployment.options(name="router").bind(str(layout.root), shards, model, timeout, generations)


def start(root: str | Path, *, address: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          timeout: float = TIMEOUT_S, model: str | None = None, replicas: int = 1) -> str:
    """Connect to (or start) Ray, deploy the shards and the router, and return the endpoint's URL."""
    connect(address)
    # One HTTP proxy, on the head node: nodes that share a machine would fight over the port.
    serve.start(http_options={"host": host, "port": port}, proxy_location="HeadOnly")
    serve.run(application(root, model=model, timeout=timeout, replicas=replicas), name=APP, route_prefix="/")
    return f"http://{host}:{port}/"
