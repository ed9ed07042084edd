"""Output of a run: a Markdown rendering, a bar chart of the modes, and the files `--out` writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..fusion import SearchSettings
from .calibrate import QUANTILES
from .metrics import MODES


def to_markdown(result: dict) -> str:
    """A readable Markdown rendering of a run's result (reports, sweep, calibration)."""
    out: list[str] = []
    for rep in result.get("reports", []):
        out += _report_md(rep)
    if sw := result.get("sweep"):
        out += _sweep_md(sw)
    if cal := result.get("calibration"):
        out += _calibration_md(cal)
    for f in result.get("followups", []):
        out += _followups_md(f)
    for n in result.get("news", []):
        out += _news_md(n)
    return "\n".join(out)


def _news_md(n: dict) -> list[str]:
    """A news archive's questions without filters, with their period, and as typed."""
    tw = n["time_words"]
    out = [f"## {n['dataset']} (news archive)", "",
           f"{n['questions']} questions; found = an answering article (or a wire copy it names) among the citations; "
           f"time words read as the expected filter: {tw['correct']} of {tw['n']}.", "",
           "| asked | language | n | R@1 | R@5 | citations outside the period | citations with copies |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for way, per in n["results"].items():
        for lang, m in per.items():
            out.append(f"| {way} | {lang} | {m['n']} | {m['R@1']:.3f} | {m['R@5']:.3f} | {m['outside_period']:.3f} | "
                       f"{m['with_copies']:.3f} |")
    out += [f"- time words wrong: {w['question']!r}: got {w['got']}, expected {w['expected']}" for w in tw["wrong"]]
    return out + [""]


def _followups_md(f: dict) -> list[str]:
    """Later turns answered (answer phrase in a top-3 highlight) with and without the earlier turns."""
    out = [f"## {f['dataset']} (conversations)", "",
           f"{f['conversations']} conversations ({', '.join(f'{n} {k}' for k, n in f['kinds'].items())}); a turn counts "
           "when its answer phrase is in one of the first 3 highlights.", "",
           "| turns | language | n | with earlier turns | alone | gold cited (with / alone) | context used |",
           "|---|---|---:|---:|---:|---|---:|"]
    for label, per in [("first turns", f["first_turns"]), *((f"later turns, {k}", v) for k, v in f["results"].items())]:
        for lang, m in per.items():
            out.append(f"| {label} | {lang} | {m['n']} | {m['with_context']:.3f} | {m['alone']:.3f} | "
                       f"{m['found_with_context']:.3f} / {m['found_alone']:.3f} | {m['context_used']:.3f} |")
    return out + [""]


def _report_md(rep: dict) -> list[str]:
    """One evaluate() report: metrics per language and mode, answers, checks, seconds."""
    title = rep["dataset"] + (f" + distractors ({', '.join(rep['distractors'])})" if rep["distractors"] else "")
    out = [f"## {title}", "",
           (f"{rep['questions']} questions, {rep['corpus']['passages']} passages ({rep['corpus']['chunks']} chunks), "
            f"model {rep['model']}, fusion {SearchSettings(**rep['fusion']).label()}."), ""]
    names = [n for n in next(iter(next(iter(rep["metrics"].values())).values())) if n != "n"]
    out += ["| language | mode | n | " + " | ".join(names) + " |", "|---|---|---:|" + "---:|" * len(names)]
    langs = list(next(iter(rep["metrics"].values())))
    for lang in langs:
        for mode, per in rep["metrics"].items():
            m = per[lang]
            out.append(f"| {lang} | {mode} | {m['n']} | " + " | ".join(f"{m[n]:.3f}" for n in names) + " |")
    if rep.get("answers"):
        out += ["", "| language | answer_found | gold cited (top 5) | questions with answer string | answer sentence acc. | acc. when cited |",
                "|---|---:|---:|---:|---:|---:|"]
        for lang, a in rep["answers"].items():
            out.append(f"| {lang} | {a['answer_found']:.3f} | {a['gold_cited']:.3f} | {a['answer_questions']} | "
                       f"{_fmt(a['answer_sentence_accuracy'])} | {_fmt(a['answer_sentence_accuracy_when_cited'])} |")
    if rep.get("checks"):
        out += ["", "Checks: " + "; ".join(
            f"{lang}: " + ", ".join(f"{k} {v:+.3f}" for k, v in c.get("margins", {}).items())
            + "".join(f"{k} {v:.3f}" for k, v in c.items() if k.endswith("_gap"))
            + (" ok" if c["ok"] else " FAIL") for lang, c in rep["checks"].items())]
    out += ["", "Seconds: " + ", ".join(f"{k} {v:g}" for k, v in rep["seconds"].items())
            + (" (index from cache)" if rep["corpus"]["index_cached"] else ""), ""]
    return out


def _sweep_md(sw: dict) -> list[str]:
    """The legs per group and every fusion setting tried, best first."""
    out = ["## Fusion sweep", "",
           f"{sw['questions']} questions of {', '.join(sw['datasets'])}"
           + (f" with distractors ({', '.join(sw['distractors'])})" if sw["distractors"] else "")
           + f"; groups: {', '.join(sw['groups'])}. Score = mean of mean MRR@10 and mean R@5; "
           f"worst margin = lowest (hybrid - better leg) over groups and both metrics.", "",
           "| leg | " + " | ".join(f"{g} R@5 / MRR@10" for g in sw["groups"]) + " |",
           "|---|" + "---:|" * len(sw["groups"])]
    for mode, per in sw["legs"].items():
        out.append(f"| {mode} | " + " | ".join(f"{per[g]['R@5']:.3f} / {per[g]['MRR@10']:.3f}" for g in sw["groups"]) + " |")
    out += ["", "| setting | mean MRR@10 | mean R@5 | score | worst margin | ok |", "|---|---:|---:|---:|---:|---|"]
    for r in sw["rows"]:
        mark = " (best)" if r is sw["best"] or r == sw["best"] else (" (default)" if r == sw["default"] else "")
        out.append(f"| {r['label']} | {r['mean_MRR@10']:.4f} | {r['mean_R@5']:.4f} | {r['score']:.4f} | "
                   f"{r['worst_margin']:+.4f} | {'yes' if r['ok'] else 'no'}{mark} |")
    if sw.get("leave_one_out"):
        out += ["", "Leave one set out: the setting picked without a set, on that set.", "",
                "| left out | picked without it | held-out R@5 / MRR@10 | worst margin | ok |", "|---|---|---|---:|---|"]
        for name, h in sw["leave_one_out"].items():
            held = ", ".join(f"{g} {m['R@5']:.3f} / {m['MRR@10']:.3f}" for g, m in h["held_out"].items())
            out.append(f"| {name} | {h['label']} | {held} | {h['worst_margin']:+.4f} | {'yes' if h['ok'] else 'no'} |")
    out += ["", (f"Best: {sw['best']['label']} (score {sw['best']['score']:.4f}); "
             f"current default: {sw['default']['label']} (score {sw['default']['score']:.4f}). "
             f"{sw['seconds']:g} s."), ""]
    return out


def _calibration_md(cal: dict) -> list[str]:
    """Score quantiles, the chosen and the shipping thresholds (all and per language), seed checks."""
    out = ["## No-answer calibration", "",
           (f"Answerable: {cal['questions']} questions of {', '.join(cal['answerable_sets'])} against their own passages; "
            f"unanswerable: the same questions against {', '.join(cal['unanswerable_sets'])}."), "",
           "| questions | language | n | mean | " + " | ".join(f"q{int(q * 100):02d}" for q in QUANTILES) + " |",
           "|---|---|---:|---:|" + "---:|" * len(QUANTILES)]
    for label in ("answerable", "unanswerable"):
        for lang, s in cal[label].items():
            out.append(f"| {label} | {lang} | {s['n']} | {s['mean']:.4f} | "
                       + " | ".join(f"{s[f'q{int(q * 100):02d}']:.4f}" for q in QUANTILES) + " |")
    out += ["", "| threshold | answerable found | unanswerable refused | balanced accuracy |", "|---|---:|---:|---:|",
            _rates_row(f"chosen {cal['threshold']}", cal),
            _rates_row("current (shipping): " + ", ".join(f"{lang} {t}" for lang, t in cal["current"]["thresholds"].items()),
                       cal["current"])]
    for lang, s in cal["by_language"].items():
        current, best = s["current"], s["own_best"]
        out.append(_rates_row(f"{lang} questions at {cal['threshold']}", s))
        at = current["threshold"] if current["threshold"] is not None else "(as ask decides)"
        out.append(_rates_row(f"{lang} questions at current {at}", current))
        out.append(_rates_row(f"{lang} questions at their own best {best['threshold']}", best))
    if cal["seed_checks"]:
        out += ["", "| seed question | expected | score | found | ok |", "|---|---|---:|---|---|"]
        for c in cal["seed_checks"]:
            out.append(f"| {c['question']} | {c['expected']} | {c['score']:.4f} | {c['found']} | {'yes' if c['ok'] else 'NO'} |")
    out += ["", f"{cal['seconds']:g} s.", ""]
    return out


def _rates_row(label: str, r: dict) -> str:
    return f"| {label} | {_fmt(r['answerable_found'])} | {_fmt(r['unanswerable_refused'])} | {_fmt(r['balanced_accuracy'])} |"


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def plot(result: dict, path: str | Path, *, metrics: Sequence[str] = ("R@5", "MRR@10")) -> Path | None:
    """Bar chart comparing the modes per dataset and language (PNG, matplotlib Agg); None if nothing to plot."""
    reports = [r for r in result.get("reports", []) if r["metrics"]]
    if not reports:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [(r, lang) for r in reports for lang in next(iter(r["metrics"].values())) if lang != "all"]
    modes = [m for m in MODES if any(m in r["metrics"] for r in reports)]
    fig, axes = plt.subplots(len(metrics), 1, figsize=(max(6.0, 1.3 * len(groups) + 2), 3.2 * len(metrics)), squeeze=False)
    width = 0.8 / len(modes)
    for ax, metric in zip(axes[:, 0], metrics):
        for i, mode in enumerate(modes):
            values = [r["metrics"].get(mode, {}).get(lang, {}).get(metric, 0.0) for r, lang in groups]
            ax.bar(np.arange(len(groups)) + (i - (len(modes) - 1) / 2) * width, values, width, label=mode)
        ax.set_xticks(np.arange(len(groups)))
        ax.set_xticklabels([f"{r['dataset']}{' +d' if r['distractors'] else ''}\n{lang}" for r, lang in groups], fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(metric)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    axes[0, 0].set_title("Retrieval by mode per set and question language (+d: with distractors)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_outputs(result: dict, out_dir: str | Path) -> list[Path]:
    """Write report.json, report.md and (if there are reports) modes.png into out_dir."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text("# Evaluation report\n\n" + to_markdown(result), encoding="utf-8")
    written = [out / "report.json", out / "report.md"]
    if png := plot(result, out / "modes.png"):
        written.append(png)
    return written
