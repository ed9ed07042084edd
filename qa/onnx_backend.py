"""Query embeddings through ONNX Runtime: a sentence-transformers model's transformer exported
once to ONNX, its attention and layer norms fused, its matrix products in int8 (weights and
activations with one scale per block of 128 values).

Questions take this path (`SentenceEmbedder(query_backend=...)`), and so do the sentences of
cited passages that are embedded only to choose a highlight (`encode_sentences`); the passages
an index stores stay on the torch path. Text is tokenised with the model's own tokenizer.json
(Hugging Face `tokenizers`), as its sentence-transformers preprocessing does (prompt in front,
truncated at max_seq_length: identical ids on 9,075 questions and passages with both prompts),
so serving needs neither torch nor sentence-transformers; pooled inside the exported graph as
the folder's Pooling module does and normalised here. Each text is run alone: no padding is
computed, and a text's vector never depends on what it was embedded with.

The export runs once per model, in a child process (it needs ~2 GB for a moment, which the
serving process should not keep, and onnxruntime's quantiser reconfigures logging on import),
into a folder next to the converted models (`cache_root()`),
keyed by the model's files and the versions that made it. It checks the exported model against
the torch fp32 model on PROBES and records the result; a model that missed FIDELITY_BOUND is
never used, and any failure falls back to torch with a log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .bundled_model import cache_root, model_source

log = logging.getLogger("nieuws-qa.embedding")

EXPORT_VERSION = "3"
VARIANTS = ("int8", "fp32")
FIDELITY_BOUND = 0.99       # cosine to torch fp32, per question (BENCHMARKS.md "Query embedding backends")
EXPORT_TIMEOUT_S = 900
INFO_FILE = "export.json"
# The tokenizer outputs an exported model may take, in TextTokenizer's order.
FEATURES = ("input_ids", "attention_mask", "token_type_ids")
# int8: every matrix product (MatMul) gets int8 weights with one scale per block of 128 along the
# input dimension, and multiplies int8 activations quantised per block too (ONNX Runtime's
# MatMulNBits, accuracy level 4, VNNI); the embedding tables get int4 with one scale per 32
# values (GatherBlockQuantized: the bundled model's tables were 4-bit blocks of 32 already), which
# keeps the session at ~100 MB instead of ~400. Attention and layer norms stay fp32. Dynamic int8
# quantisation (one activation scale per matrix) was ~1.5x faster still but moved dense retrieval
# by up to 0.016 (BENCHMARKS.md).
INT8_BLOCK = 128
INT8_ACCURACY_LEVEL = 4   # int8 x int8 products with int32 sums
EMBEDDING_BITS, EMBEDDING_BLOCK = 4, 32

# Checked at export against the torch fp32 model: short and long, Dutch and English, including
# the questions dynamic int8 handled worst (BENCHMARKS.md).
PROBES = (
    "Hoeveel punten gaf de verdediging van de Panthers weg?",
    "How many points did the Panthers defense surrender?",
    "Naar welke historische figuur is Jacksonville vernoemd?",
    "Syrië 'klaar' om vluchtelingen te laten terugkeren, aldus minister",
    "Waarvan getuigen gedoneerde genen?",
    "The West saw the East as what?",
    "Het principe van faunale successie werd 100 jaar voor wiens werk ontwikkeld?",
    "Bernard Vann: geestelijke en drager van het Victoria Cross uit de Eerste Wereldoorlog",
    "Wie schreef het artikel waarop de \"Millennial Northern Hemisphere temperature reconstruction\" gebaseerd was?",
    "De competentie van de Moslim Broederschap steekt goed af tegen wat?",
    "Deelt u onze grote zorgen over de grote toename van mensen met ernstige gehoorschade en het feit dat deze "
    "groep steeds jonger wordt? Zo ja, welke acties hebt u ondernomen om dit tegen te gaan? Zo nee, waarom niet?",
    "Klopt het dat ook het toenmalig Ministerie van Economische Zaken op de hoogte was van de risico's?",
    "Wie won het WK voetbal in Qatar?",
    "Who won the 2022 World Cup?",
    "inflatie december",
    "hallo",
    "Tom is niet thuis.",
    "I don't know what to do.",
    "Hoeveel vierkante kilometer is in minder dan een week bevrijd?",
    "financiële één café naïef — „citaat” (1.127 dagen)",
)


class ExportError(Exception):
    """The model cannot be exported (unsupported modules, a missing package, a failed trace)."""


class TextTokenizer:
    """A sentence-transformers model's tokenisation without the model: its `tokenizers.Tokenizer`,
    truncated at max_seq_length, the prompt put in front of the text.

    Raises (from_folder, from_model):
        ExportError: the model has no fast tokenizer to take this from.
    """

    def __init__(self, tokenizer, max_length: int):
        self._tokenizer = tokenizer
        tokenizer.enable_truncation(max_length)
        tokenizer.no_padding()

    @classmethod
    def from_folder(cls, folder: Path) -> TextTokenizer:
        """From a sentence-transformers folder (tokenizer.json, sentence_bert_config.json)."""
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            config = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        except Exception as exc:  # OSError, ValueError, and tokenizers' own Exception
            raise ExportError(f"cannot read the tokenizer in {folder}: {exc}") from exc
        if config.get("do_lower_case"):
            raise ExportError(f"{folder} lowercases its input; only its sentence-transformers preprocessing does that")
        return cls(tokenizer, int(config.get("max_seq_length") or 512))

    @classmethod
    def from_model(cls, st) -> TextTokenizer:
        """From a loaded SentenceTransformer (a model hub name, whose files are in the hub's cache)."""
        from tokenizers import Tokenizer

        backend = getattr(st.tokenizer, "backend_tokenizer", None)
        if backend is None or getattr(st[0], "do_lower_case", False):
            raise ExportError("the model has no fast tokenizer (or lowercases its input)")
        return cls(Tokenizer.from_str(backend.to_str()), int(st.max_seq_length or 512))

    def __call__(self, texts: list[str], prompt: str) -> list[tuple[list[int], list[int], list[int]]]:
        """(input ids, attention mask, token type ids) per text: FEATURES, in order."""
        return [(e.ids, e.attention_mask, e.type_ids) for e in self._tokenizer.encode_batch([prompt + t for t in texts])]


class OnnxQueryEncoder:
    """Texts through an exported model: one ONNX Runtime session.

    Args:
        tokenizer: the model's `TextTokenizer`.
        file: the exported model (one input per tokenizer output it uses, one output: the pooled
            sentence embedding).
        variant: what it is ("int8", "fp32"), for `SentenceEmbedder.query_backend`.
        threads: ONNX Runtime intra-op threads (questions: 1, see embedding.INTERACTIVE_THREADS).
    """

    def __init__(self, tokenizer: TextTokenizer, file: Path, *, variant: str = "", threads: int = 1):
        import onnxruntime as ort

        self.variant = variant
        self._tokenizer, self._pools = tokenizer, {}
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        self.dim = self._session.get_outputs()[0].shape[-1]
        if not isinstance(self.dim, int):
            raise ExportError(f"{file} does not say how wide its embeddings are")

    def encode(self, texts: list[str], prompt: str, *, workers: int = 1) -> np.ndarray:
        """L2-normalised float32 rows, one per text, each run alone (see the module's docstring: one
        text per run was also the fastest for the ~20 sentences of five cited passages, 385 ms
        against 410-670 ms in padded batches of 4-20 on this machine's CPU). `workers` > 1: the
        texts are run from that many threads at once (one session serves them all; each run is
        still one thread, so a busy core delays only its own texts): 20 sentences 380 -> 215 ms
        with 2 on 2 idle cores."""
        tokens = self._tokenizer(list(texts), prompt)
        out = np.zeros((len(texts), self.dim), np.float32)

        def run(rows: range) -> None:
            for row in rows:
                arrays = dict(zip(FEATURES, tokens[row]))
                out[row] = self._session.run(None, {n: np.array([arrays[n]], np.int64) for n in self._inputs})[0][0]

        parts = [range(start, len(texts), workers) for start in range(min(workers, len(texts)))]
        if len(parts) > 1:
            list(self._pool(workers).map(run, parts))
        else:
            run(range(len(texts)))
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out

    def _pool(self, workers: int) -> ThreadPoolExecutor:
        if workers not in self._pools:
            self._pools[workers] = ThreadPoolExecutor(workers, thread_name_prefix="onnx-encode")
        return self._pools[workers]


def open_query_encoder(name: str, variant: str, *, st_model=None, threads: int = 1) -> OnnxQueryEncoder | None:
    """The ONNX encoder of a model, exporting it first if needed; None to stay on torch.

    Never raises for a model that cannot take this path: it logs why and returns None.

    Args:
        name: the model name or folder (DEFAULT_MODEL: the bundled model); the export loads it
            from there, in fp32, and is checked against that.
        variant: one of VARIANTS.
        st_model: the loaded SentenceTransformer, for a model hub name (its tokenizer is taken
            from it); a folder's tokenizer is read from the folder, without loading the model.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        log.info("onnxruntime is not installed: questions are embedded with torch (pip install onnxruntime onnx)")
        return None
    try:
        folder = export_folder(name, variant)
    except (OSError, ExportError) as exc:
        log.warning("questions are embedded with torch: cannot find the files of %s for an ONNX export (%s)", name, exc)
        return None
    if not (folder / INFO_FILE).is_file():
        try:
            import onnx  # noqa: F401 - the export's fusion and quantisation need it, serving does not
        except ImportError:
            log.info("the onnx package is not installed, so %s cannot be exported: questions are embedded with torch "
                     "(pip install onnx)", name)
            return None
        log.warning("exporting %s to ONNX (%s) for question embeddings, once: %s", name, variant, folder)
        try:
            export_in_child(name, folder, variant)
        except ExportError as exc:
            log.warning("questions are embedded with torch: the ONNX export of %s failed (%s)", name, exc)
            return None
    try:
        info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
        if not info.get("passed"):
            log.warning("questions are embedded with torch: the ONNX %s export of %s is not used (%s; recorded in %s)",
                        variant, name, info.get("reason"), folder / INFO_FILE)
            return None
        tokenizer = TextTokenizer.from_model(st_model) if st_model is not None else TextTokenizer.from_folder(model_source(name))
        return OnnxQueryEncoder(tokenizer, folder / info["file"], variant=variant, threads=threads)
    except Exception as exc:  # noqa: BLE001 - any failure to open the export means: stay on torch
        log.warning("questions are embedded with torch: cannot open the ONNX export in %s (%s: %s)",
                    folder, type(exc).__name__, exc)
        return None


def export_folder(name: str, variant: str) -> Path:
    """Where the export of this model and variant lives: keyed by the model's files and the versions that export."""
    import onnxruntime

    source = model_source(name)
    if source.is_dir():
        source = source.resolve()
        files = sorted((str(p.relative_to(source)), p.stat().st_size, p.stat().st_mtime_ns)
                       for p in source.rglob("*") if p.is_file())
        fingerprint, slug = [str(source), files], source.name
    else:  # a model hub name: its files live in the hub's cache
        fingerprint, slug = [name], name.replace("/", "--")
    recipe = [EXPORT_VERSION, variant, onnxruntime.__version__, INT8_BLOCK, INT8_ACCURACY_LEVEL, EMBEDDING_BITS,
              EMBEDDING_BLOCK, fingerprint]
    key = hashlib.sha256(json.dumps(recipe).encode()).hexdigest()[:12]
    return cache_root() / f"{slug}-onnx-{variant}-{key}"


def export_in_child(name: str, folder: Path, variant: str) -> None:
    """Run `export` in a child process (its memory is returned when it ends).

    Raises:
        ExportError: it failed or timed out; the message carries its last lines of output.
    """
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([sys.executable, "-m", "qa.onnx_backend", name, str(folder), variant], env=env,
                              capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExportError(str(exc)) from exc
    if done.returncode != 0 or not (folder / INFO_FILE).is_file():
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise ExportError(f"exit code {done.returncode}: {tail}")


def export(name: str, folder: Path, variant: str, *, keep_intermediate: bool = False) -> dict:
    """Export, fuse, quantise (int8) and check the model; write it and `export.json` into `folder`.

    The folder is written under a temporary name and renamed into place, so a crash never
    leaves a half-written export; a failed fidelity check is written too (passed: false), so
    it is not tried again at every start.

    Args:
        keep_intermediate: also keep `raw.onnx` (as exported) and `fused.onnx` (for benchmarks/query_backend.py).

    Returns:
        What `export.json` holds.

    Raises:
        ExportError: the model's modules are not Transformer + Pooling (+ Normalize), or a step failed.
    """
    import torch
    from sentence_transformers import SentenceTransformer

    from .embedding import _prompts_for

    start = time.perf_counter()
    st = SentenceTransformer(str(model_source(name)), device="cpu")
    pooling = _check_modules(st)
    prompt = _prompts_for(name, st.prompts)["query"]
    inner = st[0].auto_model
    inner.eval()
    try:  # the eager attention graph is the one ONNX Runtime's BERT fusion recognises
        inner.set_attn_implementation("eager")
    except (AttributeError, ValueError):
        pass
    sample = _tokenize(st, PROBES[0], prompt)
    inputs = [k for k in FEATURES if k in sample]
    if inputs[:2] != ["input_ids", "attention_mask"]:
        raise ExportError(f"the tokenizer gives {sorted(sample)}, not input_ids and attention_mask")

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".onnx-export-", dir=folder.parent))
    try:
        raw = tmp / "raw.onnx"
        wrapper = _pooled(inner, pooling, inputs)
        options = {"input_names": inputs, "output_names": ["sentence_embedding"], "opset_version": 17,
                   "dynamic_axes": {k: {0: "batch", 1: "tokens"} for k in inputs} | {"sentence_embedding": {0: "batch"}}}
        try:
            with torch.no_grad():
                try:  # the TorchScript exporter: the dynamo one needs onnxscript and gives graphs the fusion does not know
                    torch.onnx.export(wrapper, tuple(sample[k] for k in inputs), str(raw), dynamo=False, **options)
                except TypeError:  # torch < 2.5 has no `dynamo` argument
                    torch.onnx.export(wrapper, tuple(sample[k] for k in inputs), str(raw), **options)
        except Exception as exc:  # whatever the tracer refuses, the answer is "stay on torch"
            raise ExportError(f"torch.onnx.export: {type(exc).__name__}: {exc}") from exc
        fused = tmp / "fused.onnx"
        fusion = _fuse(raw, fused, inner.config)
        out_name = f"query-{variant}.onnx"
        if variant == "int8":
            _quantise(fused, tmp / out_name)
        else:
            shutil.copyfile(fused, tmp / out_name)
        if not keep_intermediate:
            for leftover in (raw, fused):
                leftover.unlink()
        info = {"variant": variant, "file": out_name, "model": name, "export_version": EXPORT_VERSION,
                "inputs": inputs, "pooling": pooling, "fused": fusion}
        cosine = _probe(st, tmp / out_name, prompt, info)
        info.update(probe_min_cosine=round(float(cosine.min()), 6), probes=len(PROBES),
                    passed=bool(cosine.min() >= FIDELITY_BOUND), seconds=round(time.perf_counter() - start, 1))
        if not info["passed"]:
            (tmp / out_name).unlink()
            info["reason"] = f"it missed the fidelity bound: min cosine {info['probe_min_cosine']} < {FIDELITY_BOUND} on the probes"
        _place(tmp, folder, info)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info


def record_failure(folder: Path, variant: str, reason: str) -> None:
    """Write an export folder that says this export cannot be made, so later starts do not try again."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".onnx-export-", dir=folder.parent))
    try:
        _place(tmp, folder, {"variant": variant, "export_version": EXPORT_VERSION, "passed": False, "reason": reason})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _place(tmp: Path, folder: Path, info: dict) -> None:
    """Write export.json into the temporary folder and rename it into place (a crash leaves no half export)."""
    (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    try:
        os.rename(tmp, folder)
    except OSError:
        if not (folder / INFO_FILE).is_file():  # another process finished the same export first
            raise


def _check_modules(st) -> str:
    """The pooling mode of a Transformer + Pooling (+ Normalize) model; ExportError for anything else."""
    kinds = [type(m).__name__ for m in st]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise ExportError(f"modules {kinds}: only Transformer + Pooling (+ Normalize) is exported")
    config = st[1].get_config_dict()
    mode = config.get("pooling_mode") or next(
        (m for m in ("mean", "cls") if config.get(f"pooling_mode_{m}_tokens" if m == "mean" else "pooling_mode_cls_token")),
        None)
    if mode not in ("mean", "cls") or config.get("include_prompt", True) is False:
        raise ExportError(f"pooling {config}: only mean or cls pooling over all tokens is exported")
    return mode


def _tokenize(st, text: str, prompt: str) -> dict:
    """Tokenise one text exactly as `SentenceTransformer.encode(prompt=...)` does."""
    preprocess = getattr(st, "preprocess", None)
    if preprocess is not None:  # sentence-transformers >= 6
        return preprocess([text], prompt=prompt)
    return st.tokenize([prompt + text])


def _pooled(inner, pooling: str, inputs: list[str]):
    """The transformer plus pooling, as one traceable module."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, *args):
            features = dict(zip(inputs, args))
            hidden = self.inner(**features).last_hidden_state
            if pooling == "cls":
                vector = hidden[:, 0]
            else:  # sentence-transformers' mean pooling: padding masked out
                mask = features["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                vector = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            # Normalised by the caller (OnnxQueryEncoder.encode): ReduceL2 changed form in opset 18,
            # and the int4 embedding table needs opset 21.
            return vector

    return Pooled().eval()


def _fuse(raw: Path, out: Path, config) -> bool:
    """ONNX Runtime's transformer fusion (attention, GELU, skip layer norm); the raw graph if it does not apply."""
    try:
        from onnxruntime.transformers import optimizer
        from onnxruntime.transformers.fusion_options import FusionOptions

        options = FusionOptions("bert")
        options.enable_embed_layer_norm = False  # keeps the embedding lookups as Gathers, which int8 quantises
        model = optimizer.optimize_model(str(raw), model_type="bert", num_heads=int(config.num_attention_heads),
                                         hidden_size=int(config.hidden_size), opt_level=0, optimization_options=options)
        model.save_model_to_file(str(out))
        return bool(model.get_fused_operator_statistics().get("Attention"))
    except Exception as exc:  # noqa: BLE001 - fusion is an optimisation; the unfused graph computes the same
        log.info("ONNX fusion did not apply (%s: %s); using the unfused graph", type(exc).__name__, exc)
        shutil.copyfile(raw, out)
        return False


def _quantise(src: Path, out: Path) -> None:
    """MatMul: int8 weights and activations per block of INT8_BLOCK (MatMulNBits); embedding tables: int4 per
    block of EMBEDDING_BLOCK (GatherBlockQuantized); the rest stays fp32."""
    import onnx
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

    model = onnx.load(str(src))
    for ops, bits, block in ((("Gather",), EMBEDDING_BITS, EMBEDDING_BLOCK), (("MatMul",), 8, INT8_BLOCK)):
        config = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=True, accuracy_level=INT8_ACCURACY_LEVEL,
                                              bits=bits, quant_format=QuantFormat.QOperator, op_types_to_quantize=ops)
        quantizer = MatMulNBitsQuantizer(model, algo_config=config)
        quantizer.process()
        model = quantizer.model.model
    onnx.save(model, str(out))


def _probe(st, file: Path, prompt: str, info: dict) -> np.ndarray:
    """Cosine of the exported model's vectors to the torch fp32 model's, per probe."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    got = np.stack([session.run(None, {k: v.numpy().astype(np.int64, copy=False) for k, v in _tokenize(st, p, prompt).items()
                                       if k in info["inputs"]})[0][0] for p in PROBES])
    want = st.encode(list(PROBES), prompt=prompt, normalize_embeddings=True, convert_to_numpy=True, batch_size=1)
    return np.sum(got * want, axis=1) / np.linalg.norm(got, axis=1)


def main(argv: list[str] | None = None) -> int:
    """`python -m qa.onnx_backend MODEL FOLDER VARIANT`: the export, as `export_in_child` runs it."""
    import warnings

    name, folder, variant = (argv if argv is not None else sys.argv[1:])
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("onnxruntime").setLevel(logging.ERROR)
    try:
        info = export(name, Path(folder), variant)
    except ExportError as exc:  # a property of the model: recorded, so later starts stay on torch at once
        record_failure(Path(folder), variant, str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
