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
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ray
from ray import serve
from ray.exceptions import RayActorError

from ..embedding import load_embedder
from ..errors import QAError, QuestionError
from .ingest import connect
from .router import TIMEOUT_S, ShardedQA, answer_request
from .searcher import ShardSearcher, process_memory
from .shards import Layout, is_shard_root

# A shard's search is one numpy/FAISS thread; the router embeds questions (and highlight
# sentences). Fractions, so that a 2-CPU machine holds the router, several shards and Ray's own
# processes (whole CPUs for each would leave the shards unscheduled: Serve waits silently).
SHARD_CPUS = 0.25
ROUTER_CPUS = 0.5
# A shard replica only supervises its searcher actor (below).
SUPERVISOR_CPUS = 0.01
# How soon Serve notices a replica that died and starts another (its default is 10 s).
HEALTH_CHECK_PERIOD_S = 2.0
HEALTH_CHECK_TIMEOUT_S = 30.0
APP = "nieuws-qa"
LOOKUP_MIN_S = 0.02  # the wait for a shard's actor handle that is already there, past the deadline


@ray.remote(num_cpus=SHARD_CPUS, max_restarts=0)
class ShardActor:
    """A shard's `ShardSearcher` in a plain Ray actor: the router's calls go straight to it.

    Three concurrent calls to Serve replicas cost ~5 ms on two busy cores, three plain actor calls
    ~2 ms (SCALING.md), so the question's hop skips Serve's request path. The actor belongs to
    its Serve replica (it dies with it), and the replica's health check fails when the actor is
    gone, so Serve's restarts and rolling updates still manage the shard."""

    def __init__(self, root: str, number: int):
        self.searcher = ShardSearcher(root, number)

    def call(self, method: str, *args):
        return getattr(self.searcher, method)(*args)


@serve.deployment(ray_actor_options={"num_cpus": SUPERVISOR_CPUS}, health_check_period_s=HEALTH_CHECK_PERIOD_S,
                  health_check_timeout_s=HEALTH_CHECK_TIMEOUT_S)
class ShardDeployment:
    """One shard's index folder, searched by the `ShardActor` this replica owns. `actor()` hands
    the router that actor; `memory` answers through Serve (benchmarks/scale.py)."""

    def __init__(self, root: str, number: int, generations: str = ""):
        # `generations` (the layout's) only makes a synced layout a new deployment version, so
        # that deploying again replaces the replicas one by one (a rolling update).
        self.searcher = ShardActor.remote(root, number)

    def actor(self):
        return self.searcher

    async def check_health(self) -> None:
        # Raises when the actor died or cannot open the shard: Serve then replaces this replica.
        await asyncio.wait_for(self._call("describe"), HEALTH_CHECK_TIMEOUT_S / 2)

    async def _call(self, method: str, *args):
        return await self.searcher.call.remote(method, *args)

    async def memory(self) -> dict:
        """The searcher actor's memory (ShardSearcher.memory), and this replica's resident MB."""
        return {**await self._call("memory"), "ReplicaRSS": process_memory().get("VmRSS")}


class _Pending:
    """One call to a shard's actor (router.ShardClient's result). When the router does not know
    the actor yet (first call, or its replica was replaced), it asks the deployment for it first,
    within the same deadline."""

    def __init__(self, shard: _ServeShard, method: str, args: tuple):
        self.shard, self.method, self.args = shard, method, args
        actor = shard.actor
        self.lookup = shard.handle.actor.remote() if actor is None else None
        self.ref = actor.call.remote(method, *args) if actor is not None else None

    def result(self, timeout: float):
        deadline, retried = time.monotonic() + timeout, False
        while True:
            if self.ref is None:
                self.shard.actor = self.lookup.result(timeout_s=max(LOOKUP_MIN_S, deadline - time.monotonic()))
                self.ref = self.shard.actor.call.remote(self.method, *self.args)
            try:
                return ray.get(self.ref, timeout=max(0.0, deadline - time.monotonic()))
            except RayActorError:
                # Its replica is gone: killed (Serve starts another), or replaced by a rolling
                # update (the new one already runs). Ask the deployment once more, in the deadline.
                self.shard.actor = None
                if retried:
                    raise
                retried, self.ref, self.lookup = True, None, self.shard.handle.actor.remote()

    def cancel(self) -> None:
        if self.ref is not None:
            ray.cancel(self.ref)
        elif self.lookup is not None:
            self.lookup.cancel()


class _ServeShard:
    """router.ShardClient over a shard deployment: calls its replica's `ShardActor` directly."""

    def __init__(self, name: str, handle):
        self.name, self.actor = name, None
        try:
            # Answers straight back over Serve's gRPC path rather than through the object store.
            self.handle = handle.options(_by_reference=False)
        except TypeError:  # a Ray without that option
            self.handle = handle

    def call(self, method: str, *args) -> _Pending:
        return _Pending(self, method, args)


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
