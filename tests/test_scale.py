"""Ingestion on Ray Data and sharded serving on Ray Serve, on a real 2-node local Ray cluster.

The cluster's nodes are 127.0.0.2 and 127.0.0.3 (Ray replaces 127.0.0.1 with the network
card's address) with one CPU each; every actor takes a fraction of one. Every wait is bounded,
and a watchdog ends the run if the cluster hangs anyway, so CI fails instead of blocking.
Run alone with `pytest -m scale`; `make test-fast` leaves these out.
"""

from __future__ import annotations

import faulthandler
import html
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[scale]'")

from conftest import free_port  # noqa: E402
from test_scale_shards import NEWS, comparable, questions, tie_at_cut  # noqa: E402

from qa import QA  # noqa: E402
from qa.cli import format_answer, main  # noqa: E402
from qa.embedding import load_embedder  # noqa: E402
from qa.scale import client, ingest  # noqa: E402
from qa.scale.router import local_router  # noqa: E402

try:  # the browser fixtures (Chromium, or a skip); without gradio or playwright the browser test skips
    from test_browser import browser, chromium  # noqa: F401
except pytest.skip.Exception:
    pass

pytestmark = pytest.mark.scale

WATCHDOG_S = 480      # the whole module, cluster start to shutdown
SERVE_TIMEOUT_S = 5.0  # the router's deadline per fan-out (generous: the machine is shared)


def files_equal(a: Path, b: Path) -> None:
    """Two generations hold the same bytes in every file; their manifests differ only in time (and
    in the name of the generation each was derived from)."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        if name != "manifest.json":
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma, mb = (json.loads((f / "manifest.json").read_text()) for f in (a, b))
    for m in (ma, mb):
        m.pop("created"), m.pop("manifest_sha256"), m["derived"].pop("from")
    assert ma == mb


@pytest.fixture(scope="module")
def cluster():
    from ray import serve
    from ray.cluster_utils import Cluster

    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.2",
                                                         "include_dashboard": False})
    try:
        nodes.add_node(num_cpus=1, node_ip_address="127.0.0.3")
        nodes.wait_for_nodes(timeout=60)
        ingest.connect(nodes.address)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        yield nodes
    finally:
        serve.shutdown()
        ray.shutdown()
        nodes.shutdown()
        faulthandler.cancel_dump_traceback_later()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ray-corpus")
    shutil.copy(NEWS / "articles.jsonl", folder / "articles.jsonl")
    return folder


def test_ray_build_equals_the_local_build_and_a_sync_embeds_only_what_is_new(cluster, corpus, tmp_path, capsys):
    ray_dir, local_dir = tmp_path / "ray", tmp_path / "local"
    assert main(["build", str(corpus), "--index", str(ray_dir), "--model", "hash-64", "--ray", cluster.address]) == 0
    assert "embedded 956 chunks on Ray" in capsys.readouterr().err  # (which nodes: the real-model test below)
    local = QA.build([corpus], local_dir, model="hash-64")
    files_equal(QA.load(ray_dir).folder, local.folder)  # same chunk ids, BM25 arrays, vectors: every byte

    (corpus / "new.jsonl").write_text(json.dumps({"doc_id": "nieuw-1", "title": "Nieuw", "date": "2023-02-01",
                                                  "text": "Nieuw bericht over de Ryder Cup in Rome. " * 8}) + "\n",
                                      encoding="utf-8")
    try:
        assert main(["sync", str(corpus), "--index", str(ray_dir), "--ray", cluster.address, "--json"]) == 0
        out = capsys.readouterr()
        report = json.loads(out.out)
        assert report["chunks"]["embedded"] >= 1 and report["chunks"]["reused"] == len(local.chunks)
        assert f"embedded {report['chunks']['embedded']} chunks on Ray" in out.err  # only the new ones were sent
        QA.sync([corpus], local_dir, model="hash-64")
        files_equal(QA.load(ray_dir).folder, QA.load(local_dir).folder)
    finally:
        (corpus / "new.jsonl").unlink()


@pytest.mark.model
def test_ray_vectors_of_the_real_model_equal_the_local_ones(cluster, tmp_path, real_embedder):
    # 60 articles, 254 chunks: a few blocks, each taking the model seconds, so both actors get some
    # (with the instant hash model, the first actor may finish every block before the next arrives)
    articles = [json.loads(line) for line in (NEWS / "articles.jsonl").read_text(encoding="utf-8").splitlines()[:60]]
    corpus = tmp_path / "few.jsonl"
    corpus.write_text("".join(json.dumps(a, ensure_ascii=False) + "\n" for a in articles), encoding="utf-8")
    embedder = ingest.ray_embedder([corpus], stall_timeout=240)
    assert embedder.identity == real_embedder.identity  # the same model, prompts and precision
    assert len({worker.rsplit(":", 1)[0] for worker in embedder.workers}) == 2  # both nodes embedded
    ray_qa = QA.build([corpus], tmp_path / "ray", embedder=embedder)
    local = QA.build([corpus], tmp_path / "local", embedder=real_embedder)
    assert embedder.missed == 0
    assert [c.chunk_id for c in ray_qa.chunks] == [c.chunk_id for c in local.chunks]
    for name in ("bm25_data.npy", "bm25_indices.npy", "bm25_indptr.npy", "terms_ids.npy", "chunk_sha256.npy"):
        assert (ray_qa.folder / name).read_bytes() == (local.folder / name).read_bytes(), name
    cosines = np.sum(np.asarray(ray_qa.vectors) * np.asarray(local.vectors), axis=1)
    assert cosines.min() >= 0.9999


@pytest.fixture(scope="module")
def served(cluster, corpus, tmp_path_factory):
    """3 shards built on Ray (CLI), one index of the same corpus, and the shards on Ray Serve."""
    from qa.scale import serve

    out = tmp_path_factory.mktemp("served")
    assert main(["build", str(corpus), "--index", str(out / "shards"), "--model", "hash-64", "--shards", "3",
                 "--ray", cluster.address]) == 0
    single = QA.build([corpus], out / "single", model="hash-64")
    url = serve.start(out / "shards", address=cluster.address, port=free_port(), timeout=SERVE_TIMEOUT_S)
    return url, out / "shards", single


def test_sharded_serving_equals_one_index(served):
    url, root, single = served
    cases = questions()
    equal = 0
    for question, options in cases:
        data = client.ask(url, question, **_client_options(options))
        assert data["partial"] is None
        got = {k: v for k, v in data.items() if k != "answer_citation"}
        if comparable(got) == comparable(json.loads(json.dumps(single.ask(question, **options).to_dict()))):
            equal += 1
        else:  # only where one index's leg has exactly equal scores across its cut (test_scale_shards.tie_at_cut)
            assert tie_at_cut(single, question, options, 5), (question, options)
    assert equal >= 100


def test_cli_asks_the_server_and_prints_what_a_local_ask_prints(served, capsys):
    url, root, single = served
    question = "Waarover stemden de Macedoniërs in september 2022?"
    assert main(["ask", "--server", url, question]) == 0
    assert capsys.readouterr().out.strip() == format_answer(single.ask(question)).strip()
    assert main(["ask", "--server", url, "--json", question]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["partial"] is None and data["citations"]


def test_a_killed_shard_replica_gives_a_partly_searched_answer_then_recovers(served):
    url, root, single = served
    question = "Waarover stemden de Macedoniërs in september 2022?"
    whole = client.ask(url, question)
    assert whole["partial"] is None
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)]
    replica = next(n for n in names if "REPLICA" in n and "#shard-01#" in n)
    ray.kill(ray.get_actor(replica, namespace="serve"), no_restart=True)

    # Asked at once, with a deadline shorter than Serve takes to start a new replica.
    start = time.monotonic()
    answer = client.ask(url, question, shard_timeout=1.0)
    assert time.monotonic() - start < 10  # bounded, never hanging
    failed = {u["shard"]: u for u in answer["partial"]["unsearched"]}
    assert "shard-01" in failed and failed["shard-01"]["since"] == whole_since(root, 1)  # which part of the archive
    # (On a busy machine a live shard may miss so short a deadline too while Serve starts the new replica.)
    assert all("no answer within" in u["reason"] for name, u in failed.items() if name != "shard-01")
    assert "gedeeltelijk doorzocht" in client.partial_note(answer["partial"], "nl")
    app = pytest.importorskip("app")  # (gradio: the ui extra)
    shown = html.unescape(app.render_answer(client.answer_from_dict(answer))[0])  # the chat says so too
    assert "gedeeltelijk doorzocht: shard-01" in shown
    cited = {c["doc_id"] for c in answer["citations"]}
    assert cited and cited <= {c["doc_id"] for c in whole["citations"]} | set(single.docs)  # the other shards' answer

    deadline = time.monotonic() + 90
    while answer["partial"] is not None and time.monotonic() < deadline:
        time.sleep(1)
        answer = client.ask(url, question)
    assert answer["partial"] is None, "the shard did not come back within 90 s"
    assert answer == whole  # recovered: the whole archive again


def test_the_chat_app_answers_from_the_served_shards(served):
    app = pytest.importorskip("app")  # (gradio: the ui extra)
    url, root, _ = served
    remote = client.RemoteQA(url)
    local = local_router(root, load_embedder("hash-64"))
    assert remote.publishers == local.publishers and len(remote.publishers) >= 2
    assert app.publishers_of(remote) == remote.publishers  # the chat's publisher filter
    asked = [("Waarover stemden de Macedoniërs in september 2022?", {}),
             ("Wat zei de president?", {"since": "2022-03", "until": "2022-06", "publishers": remote.publishers[:1]})]
    for question, filters in asked:
        shown = app.answer_markdown(remote, question, **filters)
        assert "nqa-passage" in shown[0] and "nqa-partial" not in shown[0]
        assert shown == app.answer_markdown(local, question, **filters)  # as the chat renders one index's answer
    assert app.answer_markdown(remote, "  ")[0] == app.answer_markdown(local, "  ")[0]  # refused alike


@pytest.mark.browser
def test_the_chat_in_a_browser_answers_from_the_served_shards(served, request):
    pytest.importorskip("gradio")
    pytest.importorskip("playwright.sync_api")
    from conftest import serve as serve_app

    chrome = request.getfixturevalue("browser")  # (test_browser's fixture)
    url, _, _ = served
    remote = client.RemoteQA(url)
    with serve_app(remote) as app_url:
        chrome.page.goto(app_url)
        answer = chrome.ask("Waarover stemden de Macedoniërs in september 2022?")
        assert answer.locator("details.nqa-passage").count() >= 1 and answer.locator(".nqa-partial").count() == 0
        shown = answer.inner_text()
        assert "september 2022" in shown  # the date range read from the question, applied by the server
        chrome.page.locator("#nqa-publishers input").click()  # the publisher filter lists the shards' publishers
        assert chrome.page.get_by_role("option", name=remote.publishers[0], exact=True).count() == 1
    assert chrome.foreign_requests() == []


def whole_since(root: Path, i: int) -> str:
    from qa.scale.shards import Layout

    return Layout.load(root).shards[i].since.isoformat()


def test_a_local_router_and_the_served_one_agree(served):
    url, root, _ = served
    router = local_router(root, load_embedder("hash-64"))
    for question, options in questions()[:10]:
        answer, status = router.ask_with_status(question, **options)
        data = client.ask(url, question, **_client_options(options))
        assert data["partial"] is None and status is None
        assert {k: v for k, v in data.items() if k != "answer_citation"} == json.loads(
            json.dumps(answer.to_dict()))


def _client_options(options: dict) -> dict:
    from qa.news import make_filters

    filters = make_filters(options.get("since"), options.get("until"), options.get("publishers"))
    return {"since": filters.since, "until": filters.until, "publishers": filters.publishers,
            "recency": options.get("recency")}


def test_a_synced_layout_deployed_again_replaces_the_replicas_while_questions_are_answered(served, corpus):
    # Last in this module: the served shards get a new article.
    from concurrent.futures import ThreadPoolExecutor

    from qa.scale import serve

    url, root, _ = served
    question = "Wat maakte de Oostendse vissersbond bekend over de garnalenvangst?"
    assert "oostende-1" not in {c["doc_id"] for c in client.ask(url, question)["citations"]}
    (corpus / "late.jsonl").write_text(json.dumps({
        "doc_id": "oostende-1", "title": "Garnalen", "date": "2022-12-30", "publisher": "Kustkrant",
        "text": "De Oostendse vissersbond maakte bekend dat de garnalenvangst dit jaar met een derde is gedaald. "
                "Volgens de bond ligt dat aan het warme zeewater."}) + "\n", encoding="utf-8")
    try:
        assert main(["sync", str(corpus), "--index", str(root)]) == 0
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with ThreadPoolExecutor(1) as pool:
            # Questions keep coming while Serve replaces the router and each shard's replica.
            redeploy = pool.submit(serve.start, root, address=ray.get_runtime_context().gcs_address, port=port,
                                   timeout=SERVE_TIMEOUT_S)
            answers = []
            while not redeploy.done() or not answers:
                answers.append(client.ask(url, "Waarover stemden de Macedoniërs in september 2022?"))
            redeploy.result(timeout=240)
        assert len(answers) >= 3 and all(a["partial"] is None and a["citations"] for a in answers)
        cited = client.ask(url, question)["citations"]
        assert cited[0]["doc_id"] == "oostende-1" and cited[0]["publisher"] == "Kustkrant"  # the synced shards serve
    finally:
        (corpus / "late.jsonl").unlink()
