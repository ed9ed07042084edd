"""Query embedding backends: speed, fidelity to torch fp32, and dense retrieval with each.

    python benchmarks/query_backend.py --data data --workdir /tmp/qb/bench --index-root /tmp/sweep/index > qb.json
    python benchmarks/query_backend.py --table qb.json

Steps (each cached in --workdir, so a rerun only measures again):
  variants   the bundled model exported once (qa/onnx_backend.py, intermediates kept), and the
             int8 variants measured here quantised from its fused fp32 graph;
  fidelity   every distinct question of the four evaluation sets (7086) embedded one at a time by
             each variant, cosine to torch fp32 (min, p01, how many below 0.99);
  retrieval  per set, the passage vectors of the cached evaluation index (`<index-root>/<set>-*`,
             as `qa eval` leaves them; passages are not embedded again), exact inner-product
             search with torch-fp32 query vectors and with each variant's: passage R@5 / MRR@10
             and their differences;
  latency    one question at a time, 150 xquad_nl + 150 kamervragen_nl questions, every variant
             in turn per question (so load changes hit them alike), one child process per thread
             count; p50/p95 in ms with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.measure import loadavg, machine, read_jsonl  # noqa: E402

SETS = ("xquad_nl", "ntrex_nl", "tatoeba_nld_eng", "kamervragen_nl")
LATENCY_SETS = (("xquad_nl", 150), ("kamervragen_nl", 150))
BOUND = 0.99
# name (no commas: --variants is a comma-separated list) -> how it is quantised from the fused
# fp32 graph: None = not quantised; "product" = the folder qa.onnx_backend.export writes for
# "int8" (what SentenceEmbedder uses: MatMulNBits, int8 weights and activations per block of 128);
# {"nbits": ...} = MatMulNBits with other settings; anything else = onnxruntime's quantize_dynamic
# (one activation scale per matrix), "keep" naming the FFN down projections left in fp32.
ONNX_VARIANTS = {
    "onnx-fp32": None,
    "int8 per-tensor": {"per_channel": False},
    "int8 per-channel": {"per_channel": True},
    "int8 per-channel emb-fp32": {"per_channel": True, "op_types_to_quantize": ["MatMul", "Attention"]},
    "int8 per-channel down-0+4-fp32": {"per_channel": True, "keep": (0, 4)},
    "int8 per-channel all-12-down-fp32": {"per_channel": True, "keep": "all"},
    "int4 blockwise-32": {"nbits": 4, "block": 32},
    "onnx-int8 blockwise-128": "product",
}
TORCH_VARIANTS = ("torch-fp32", "torch-bf16")
OPENVINO_VARIANTS = ("openvino-bf16", "openvino-fp32")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {msg}", file=sys.stderr, flush=True)


def down_projections(file: Path) -> list[str]:
    """The FFN down projections of an exported model (MatMul by a (intermediate, hidden) weight), first layer first."""
    import onnx

    model = onnx.load(str(file), load_external_data=False)
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and len(shapes.get(n.input[1], ())) == 2
            and shapes[n.input[1]][0] > shapes[n.input[1]][1]]


def all_questions(data: Path) -> list[str]:
    return list(dict.fromkeys(q["question"] for s in SETS for q in read_jsonl(data / s / "questions.jsonl")))


def latency_questions(data: Path) -> list[tuple[str, str]]:
    out = []
    for name, n in LATENCY_SETS:
        rows = read_jsonl(data / name / "questions.jsonl")
        step = len(rows) // n
        out += [(name, rows[i * step]["question"]) for i in range(n)]
    return out


# --- variants --------------------------------------------------------------------------------

def make_variants(workdir: Path) -> dict[str, Path]:
    """Export the bundled model (fp32 with intermediates, and the product int8) and quantise the others."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from qa import onnx_backend as ob
    from qa.bundled_model import DEFAULT_MODEL

    fp32_dir, int8_dir = workdir / "export-fp32", workdir / "export-int8"
    if not (fp32_dir / ob.INFO_FILE).is_file():
        log("exporting fp32 (raw and fused kept)")
        ob.export(DEFAULT_MODEL, fp32_dir, "fp32", keep_intermediate=True)
    if not (int8_dir / ob.INFO_FILE).is_file():
        log("exporting int8 as the product does")
        ob.export(DEFAULT_MODEL, int8_dir, "int8")
    fused = fp32_dir / "fused.onnx"
    files = {}
    for name, how in ONNX_VARIANTS.items():
        if how is None:
            files[name] = fp32_dir / "query-fp32.onnx"
        elif how == "product":
            files[name] = int8_dir / json.loads((int8_dir / ob.INFO_FILE).read_text())["file"]
        else:
            out = workdir / (name.replace(" ", "_").replace(",", "").replace("+", "") + ".onnx")
            if not out.is_file():
                log(f"quantising {name}")
                options = dict(how)
                if "nbits" in options:
                    _nbits(fused, out, options["nbits"], options["block"])
                else:
                    keep = options.pop("keep", None)
                    if keep is not None:
                        down = down_projections(fused)
                        options["nodes_to_exclude"] = down if keep == "all" else [down[i] for i in keep]
                    quantize_dynamic(str(fused), str(out), weight_type=QuantType.QInt8,
                                     extra_options={"DefaultTensorType": 1}, **options)
            files[name] = out
    files["openvino"] = fp32_dir / "raw.onnx"
    return files


def _nbits(src: Path, out: Path, bits: int, block: int) -> None:
    import onnx
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    config = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=True, accuracy_level=4, bits=bits,
                                          quant_format=QuantFormat.QOperator)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), algo_config=config)
    quantizer.process()
    quantizer.model.save_model_to_file(str(out), use_external_data_format=False)


class Encoders:
    """Every variant as a function: one question -> its vector (the product's own code for ONNX)."""

    def __init__(self, files: dict[str, Path], threads: int, names: list[str]):
        from qa.bundled_model import PROMPTS, bundled_model_path
        from qa.embedding import SentenceEmbedder
        from qa.onnx_backend import OnnxQueryEncoder, TextTokenizer

        self.prompt = PROMPTS["query"]
        self.threads = threads
        self.fns = {}
        tokenizer = TextTokenizer.from_folder(bundled_model_path())
        for name in names:
            if name in TORCH_VARIANTS:
                emb = SentenceEmbedder(precision=name.split("-")[1], query_backend="torch", threads=threads)
                self.fns[name] = self._torch(emb)
            elif name in OPENVINO_VARIANTS:
                self.fns[name] = self._openvino(files["openvino"], name.split("-")[1], threads, tokenizer)
            else:
                enc = OnnxQueryEncoder(tokenizer, files[name], threads=threads)
                self.fns[name] = lambda q, enc=enc: enc.encode([q], self.prompt)[0]

    def _torch(self, emb):
        import torch

        def encode(q: str) -> np.ndarray:
            torch.set_num_threads(self.threads)  # SentenceEmbedder itself always uses one thread for a question
            return emb.model.encode([q], prompt=self.prompt, normalize_embeddings=True, convert_to_numpy=True)[0]
        return encode

    def _openvino(self, file: Path, precision: str, threads: int, tokenizer):
        import openvino as ov

        from qa.onnx_backend import FEATURES

        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(file)), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": {"bf16": "bf16", "fp32": "f32"}[precision]})
        request = compiled.create_infer_request()
        inputs = [i.get_any_name() for i in compiled.inputs]

        def encode(q: str) -> np.ndarray:
            features = dict(zip(FEATURES, tokenizer([q], self.prompt)[0]))
            out = request.infer({k: np.array([features[k]], np.int64) for k in inputs})
            v = np.asarray(next(iter(out.values()))[0], np.float32)
            return v / np.linalg.norm(v)
        return encode


# --- fidelity and retrieval -------------------------------------------------------------------

def fidelity(data: Path, workdir: Path, files: dict[str, Path], names: list[str]) -> dict:
    questions = all_questions(data)
    ref = vectors_of(workdir, "torch-fp32", questions, files)
    out = {"questions": len(questions)}
    for name in names:
        if name == "torch-fp32":
            continue
        vec = vectors_of(workdir, name, questions, files)
        cos = np.sum(vec * ref, axis=1)
        worst = int(np.argmin(cos))
        out[name] = {"min": round(float(cos.min()), 5), "p01": round(float(np.percentile(cos, 1)), 5),
                     "p50": round(float(np.median(cos)), 5), "below_bound": int((cos < BOUND).sum()),
                     "worst": questions[worst]}
        log(f"fidelity {name}: {out[name]}")
    return out


def vectors_of(workdir: Path, name: str, questions: list[str], files: dict[str, Path]) -> np.ndarray:
    """Every question embedded one at a time by one variant (cached; torch fp32 in batches of 16)."""
    cache = workdir / f"vectors-{name.replace(' ', '_').replace(',', '').replace('+', '').replace('(', '').replace(')', '')}.npy"
    if cache.is_file():
        vec = np.load(cache)
        if len(vec) == len(questions):
            return vec
    log(f"embedding {len(questions)} questions with {name}")
    start = time.perf_counter()
    if name == "torch-fp32":  # the reference; batching changes its vectors by ~1e-7 only
        from qa.embedding import SentenceEmbedder

        vec = SentenceEmbedder(precision="fp32", query_backend="torch", threads=1).encode_queries(questions)
    else:
        fn = Encoders(files, 1, [name]).fns[name]
        vec = np.stack([fn(q) for q in questions]).astype(np.float32)
    log(f"  {time.perf_counter() - start:.0f} s")
    np.save(cache, vec)
    return vec


def retrieval(data: Path, workdir: Path, index_root: Path, files: dict[str, Path], names: list[str]) -> dict:
    from qa.index import open_live

    questions = all_questions(data)
    row = {q: i for i, q in enumerate(questions)}
    vectors = {name: vectors_of(workdir, name, questions, files) for name in ["torch-fp32", *names]}
    out = {}
    for s in SETS:
        folders = [f for f in index_root.glob(f"{s}-*") if f.name[len(s) + 1:].isalnum()]
        if not folders:
            log(f"no cached index for {s} under {index_root}: skipped (build it with `qa eval`)")
            continue
        gen = open_live(folders[0])
        passages = np.asarray(gen.vectors, np.float32)
        doc_ids = np.array([c.doc_id for c in gen.chunks])
        qs = read_jsonl(data / s / "questions.jsonl")
        gold = [set(q["answer_passage_ids"]) for q in qs]
        idx = [row[q["question"]] for q in qs]
        res = {"index": str(gen.folder), "index_model": gen.manifest["model"], "questions": len(qs), "chunks": len(doc_ids)}
        for name in ["torch-fp32", *names]:
            scores = vectors[name][idx] @ passages.T
            top = np.argsort(-scores, axis=1, kind="stable")[:, :60]
            r5, mrr = [], []
            for t, g in zip(top, gold):
                ranked = list(dict.fromkeys(doc_ids[t]))[:10]
                r5.append(len(g & set(ranked[:5])) / len(g))
                mrr.append(next((1 / (i + 1) for i, d in enumerate(ranked) if d in g), 0.0))
            res[name] = {"R@5": round(float(np.mean(r5)), 4), "MRR@10": round(float(np.mean(mrr)), 4)}
            if name != "torch-fp32":
                base = res["torch-fp32"]
                res[name]["dR@5"] = round(res[name]["R@5"] - base["R@5"], 4)
                res[name]["dMRR@10"] = round(res[name]["MRR@10"] - base["MRR@10"], 4)
        out[s] = res
        log(f"retrieval {s}: {json.dumps({k: v for k, v in res.items() if isinstance(v, dict) and k != 'index_model'})}")
    return out


# --- latency ----------------------------------------------------------------------------------

def latency_child(data: Path, workdir: Path, threads: int, names: list[str]) -> dict:
    files = make_variants(workdir)
    enc = Encoders(files, threads, names)
    qs = latency_questions(data)
    for fn in enc.fns.values():
        for _, q in qs[:10]:
            fn(q)
    times = {n: [] for n in names}
    load = [os.getloadavg()[0]]
    for _, q in qs:
        for n in names:
            t = time.perf_counter()
            enc.fns[n](q)
            times[n].append(1000 * (time.perf_counter() - t))
    load.append(os.getloadavg()[0])
    sets = np.array([s for s, _ in qs])
    out = {"threads": threads, "load": [round(x, 2) for x in load], "questions": len(qs)}
    for n, ts in times.items():
        ts = np.array(ts)
        out[n] = {"p50": round(float(np.percentile(ts, 50)), 2), "p95": round(float(np.percentile(ts, 95)), 2)}
        for s, _ in LATENCY_SETS:
            out[n][s] = [round(float(np.percentile(ts[sets == s], p)), 2) for p in (50, 95)]
    return out


def latency(data: Path, workdir: Path, threads: list[int], names: list[str], repeats: int) -> list[dict]:
    runs = []
    for _ in range(repeats):
        for th in threads:
            cmd = [sys.executable, __file__, "--data", str(data), "--workdir", str(workdir), "--latency-child", str(th),
                   "--variants", ",".join(names)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            runs.append(json.loads(done.stdout))
            log(f"latency x{th}: " + ", ".join(f"{n} {runs[-1][n]['p50']}" for n in names))
    return runs


# --- report -----------------------------------------------------------------------------------

def table(r: dict) -> str:
    names = r["variants"]
    lines = [f"CPU: {r['cpu']}; load average {r['load_start']} at start, {r['load_end']} at the end", ""]
    lines.append("| variant | threads | p50 / p95 ms (all) | xquad p50 / p95 | kamervragen p50 / p95 | load | "
                 "cos min | cos p01 | below 0.99 |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for run in r.get("latency", []):
        for n in names:
            f = r.get("fidelity", {}).get(n, {"min": 1.0, "p01": 1.0, "below_bound": 0} if n == "torch-fp32" else {})
            t = run[n]
            lines.append(f"| {n} | {run['threads']} | {t['p50']:.1f} / {t['p95']:.1f} | {t['xquad_nl'][0]:.1f} / {t['xquad_nl'][1]:.1f} | "
                         f"{t['kamervragen_nl'][0]:.1f} / {t['kamervragen_nl'][1]:.1f} | {run['load'][0]:.1f}-{run['load'][1]:.1f} | "
                         f"{f.get('min', '')} | {f.get('p01', '')} | {f.get('below_bound', '')} |")
    lines += ["", "| variant | " + " | ".join(f"{s} dR@5 / dMRR@10" for s in r.get("retrieval", {})) + " |",
              "|---|" + "---|" * len(r.get("retrieval", {}))]
    for n in ["torch-fp32", *[x for x in names if x != "torch-fp32"]]:
        if n == "torch-fp32":
            cells = [f"{v[n]['R@5']:.4f} / {v[n]['MRR@10']:.4f}" for v in r.get("retrieval", {}).values()]
        else:
            cells = [f"{v[n]['dR@5']:+.4f} / {v[n]['dMRR@10']:+.4f}" if n in v else "" for v in r.get("retrieval", {}).values()]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT / "data")
    p.add_argument("--workdir", type=Path, default=Path("/tmp/qb/bench"))
    p.add_argument("--index-root", type=Path, default=Path("/tmp/sweep/index"))
    p.add_argument("--variants", default=",".join([*TORCH_VARIANTS, *ONNX_VARIANTS, *OPENVINO_VARIANTS]))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeats", type=int, default=1, help="latency runs per thread count")
    p.add_argument("--skip", default="", help="comma-separated steps to skip: fidelity,retrieval,latency")
    p.add_argument("--table", type=Path, help="print the tables of a JSON result")
    p.add_argument("--latency-child", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import warnings
    warnings.filterwarnings("ignore")
    if a.table:
        print(table(json.loads(a.table.read_text())))
        return 0
    names = [n for n in a.variants.split(",") if n]
    if "openvino-bf16" in names or "openvino-fp32" in names:
        try:
            import openvino  # noqa: F401
        except ImportError:
            names = [n for n in names if n not in OPENVINO_VARIANTS]
    a.workdir.mkdir(parents=True, exist_ok=True)
    if a.latency_child:
        print(json.dumps(latency_child(a.data, a.workdir, a.latency_child, names)))
        return 0
    skip = set(a.skip.split(","))

    cpu = machine()
    result = {"cpu": cpu["cpu"], "machine": cpu, "load_start": loadavg(), "variants": names}
    files = make_variants(a.workdir)
    if "fidelity" not in skip:
        result["fidelity"] = fidelity(a.data, a.workdir, files, names)
    if "retrieval" not in skip:
        result["retrieval"] = retrieval(a.data, a.workdir, a.index_root, files, [n for n in names if n != "torch-fp32"])
    if "latency" not in skip:
        result["latency"] = latency(a.data, a.workdir, [int(t) for t in a.threads.split(",")], names, a.repeats)
    result["load_end"] = loadavg()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
