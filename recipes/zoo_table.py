"""Write the zoo, MD-gain and cost tables, and the accuracy-against-EDAP figure, from the zoo's metadata
(never typed by hand). Each table goes between its markers, in whichever of FILES holds them: the zoo table
in README.md, the gain table in docs/training.md, the cost table in docs/hardware_cost.md, the integer table
in docs/integer.md.

    python recipes/zoo_table.py          # rewrite the tables between their markers
    python recipes/zoo_table.py --check  # exit 1 if a file's tables are out of date
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from mdsnn_zoo.zoo.listing import format_size
from mdsnn_zoo.zoo.registry import get_weights, list_models

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
FILES = (README, ROOT / "docs" / "training.md", ROOT / "docs" / "hardware_cost.md",  # where the markers are
         ROOT / "docs" / "integer.md")
FIGURE = ROOT / "docs" / "accuracy_vs_edap.png"
BEGIN, END = "<!-- zoo-table:begin -->", "<!-- zoo-table:end -->"
COST_BEGIN, COST_END = "<!-- cost-table:begin -->", "<!-- cost-table:end -->"
GAIN_BEGIN, GAIN_END = "<!-- gain-table:begin -->", "<!-- gain-table:end -->"
INT_BEGIN, INT_END = "<!-- integer-table:begin -->", "<!-- integer-table:end -->"
VARIANTS = ("fp", "w4u4_md", "w2u2_md", "w2u2_qat")
PAPER = {"edap": 14.85, "tops_per_w": 2.64, "tops_per_mm2": 6.19}  # MD-SNN (arXiv 2512.04443), SpikeSim, vs FP


def table() -> str:
    lines = ["| model | data | T | bits | method | top-1 % (test) | membrane MSE to teacher | params | file |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in list_models(pretrained=True):
        m = get_weights(name)
        bits = "fp32" if m["method"] == "fp" else f"W{m['w_bits']}U{m['u_bits']}"
        mse = f"{m['membrane_mse']:.3f}" if m.get("membrane_mse") is not None else "-"
        lines.append(f"| `{name}` | {m['dataset']} | {m['time_steps']} | {bits} | {m['method']} | "
                     f"{m['top1']:.2f} | {mse} | {m['num_params'] / 1e6:.2f} M | {format_size(m['file_bytes'])} |")
    return "\n".join(lines)


def families() -> dict[str, dict[str, dict]]:
    """``arch.tag`` -> variant -> metadata, for the families whose float teacher ships."""
    out: dict[str, dict[str, dict]] = {}
    for name in list_models(pretrained=True):
        base, variant = re.fullmatch(r"(.+_t\d+)_(.+)", name).groups()  # arch.<data>_t<T> and fp | w<b>u<b>_<method>
        out.setdefault(base, {})[variant] = get_weights(name)
    return {k: v for k, v in out.items() if "fp" in v}


def cost_table() -> str:
    lines = ["| family | variant | top-1 % | SpikeSim EDAP (pJ·ns·µm²) | EDAP FP / it | TOPS/W | x FP | TOPS/mm² "
             "| x FP | digital energy, spikes (µJ) | FP / it |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for base, variants in sorted(families().items()):
        fp = variants["fp"].cost
        for v in VARIANTS:
            if v not in variants or variants[v].cost is None:
                continue
            m, c = variants[v], variants[v].cost
            sim, ref = c["spikesim"]["dense"], fp["spikesim"]["dense"]
            dig, dig_ref = c["digital"]["spikes"], fp["digital"]["spikes"]
            lines.append(f"| `{base}` | {v} | {m.top1:.2f} | {sim['edap']:.3g} | {ref['edap'] / sim['edap']:.2f} | "
                         f"{sim['tops_per_w']:.1f} | {sim['tops_per_w'] / ref['tops_per_w']:.2f} | "
                         f"{sim['tops_per_mm2']:.2g} | "
                         f"{sim['tops_per_mm2'] / ref['tops_per_mm2']:.2f} | "
                         f"{dig['energy_pj'] / 1e6:.2f} | {dig_ref['energy_pj'] / dig['energy_pj']:.2f} |")
    lines.append(f"| MD-SNN (paper, SpikeSim) | low-bit vs FP | - | - | {PAPER['edap']} | - | "
                 f"{PAPER['tops_per_w']} | - | {PAPER['tops_per_mm2']} | - | - |")
    return "\n".join(lines)


def _by_seed(m) -> dict[int, float]:
    """Test top-1 per seed of the student as its recipe trained it (seed 0, and its recorded repeats'):
    the entry's, or, for an entry fine-tuned onto the integer grid whose own recipe has no repeats yet,
    the one it was fine-tuned from."""
    own = {"top1": m.top1, "repeats": m.repeats}
    trained = own if m.repeats or not m.fine_tuned_from else m.fine_tuned_from
    return {0: trained["top1"], **{int(seed): r["top1"] for seed, r in (trained.get("repeats") or {}).items()}}


def _exact_pair(qat, md) -> str:
    """The hardware-exact entries' test top-1, QAT / MD (MD - QAT), or - until both are exact."""
    if not (qat.integer_exact and md.integer_exact):
        return "-"
    return f"{qat.top1:.2f} / {md.top1:.2f} ({md.top1 - qat.top1:+.2f})"


def gain_table() -> str:
    """Per family, W2U2 MD against W2U2 QAT (same epochs, schedule and start) as their recipes trained them,
    for every seed both ran, the share of naive QAT's loss under the float teacher that MD puts back (mean
    over the seeds), and the shipped pair after both were fine-tuned onto the integer grid."""
    lines = ["| family | FP teacher top-1 % | seeds | W2U2 QAT top-1 % | W2U2 MD top-1 % | MD - QAT (points) "
             "| share of QAT's loss MD recovers | integer-exact QAT / MD (MD - QAT) |",
             "|---|---|---|---|---|---|---|---|"]
    for base, variants in sorted(families().items()):
        if "w2u2_md" not in variants or "w2u2_qat" not in variants:
            continue
        md, qat = _by_seed(variants["w2u2_md"]), _by_seed(variants["w2u2_qat"])
        seeds = sorted(set(md) & set(qat))
        gains = [md[s] - qat[s] for s in seeds]
        mean = sum(gains) / len(gains)
        gain = f"{mean:+.2f}" if len(gains) == 1 else f"{mean:+.2f} (mean; {', '.join(f'{g:+.2f}' for g in gains)})"
        teacher = variants["fp"].top1
        qat_loss = teacher - sum(qat[s] for s in seeds) / len(seeds)
        share = f"{100 * mean / qat_loss:.0f}% of {qat_loss:.2f}" if qat_loss > 0 else "- (QAT loses nothing)"
        lines.append(f"| `{base}` | {teacher:.2f} | {', '.join(map(str, seeds))} | "
                     f"{', '.join(f'{qat[s]:.2f}' for s in seeds)} | {', '.join(f'{md[s]:.2f}' for s in seeds)} | "
                     f"{gain} | {share} | {_exact_pair(variants['w2u2_qat'], variants['w2u2_md'])} |")
    return "\n".join(lines)


def integer_table() -> str:
    """Per shipped student: hardware-exact or not, its test top-1, and for one fine-tuned onto the grid
    the student it started from and the change."""
    lines = ["| student | hardware-exact | top-1 % (test) | float-scale student it started from | change (points) |",
             "|---|---|---|---|---|"]
    for name in list_models(pretrained=True):
        m = get_weights(name)
        if m.method == "fp":
            continue
        start = m.fine_tuned_from
        before, change = (f"{start['top1']:.2f}", f"{m.top1 - start['top1']:+.2f}") if start else ("-", "-")
        lines.append(f"| `{name}` | {'yes' if m.integer_exact else 'no'} | {m.top1:.2f} | {before} | {change} |")
    return "\n".join(lines)


def figure(path: Path = FIGURE) -> Path:
    from mdsnn_zoo.plot import plot_accuracy_cost

    lines = {base: [(v, variants[v].cost["spikesim"]["dense"]["edap"], variants[v].top1)
                    for v in VARIANTS if v in variants and variants[v].cost]
             for base, variants in sorted(families().items())}
    return plot_accuracy_cost(lines, path)


def _replace(text: str, begin: str, end: str, body: str) -> str:
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    return f"{head}{begin}\n{body}\n{end}{tail}"


TABLES = ((BEGIN, END, table), (GAIN_BEGIN, GAIN_END, gain_table), (COST_BEGIN, COST_END, cost_table),
          (INT_BEGIN, INT_END, integer_table))


def render(text: str) -> str:
    """The text with every table whose markers it holds rewritten."""
    for begin, end, body in TABLES:
        if begin in text:
            text = _replace(text, begin, end, body())
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    texts = {path: path.read_text() for path in FILES}
    for begin, end, _ in TABLES:
        if not any(begin in text and end in text for text in texts.values()):
            sys.exit(f"none of {', '.join(p.name for p in FILES)} holds the markers {begin} and {end}")
    rendered = {path: render(text) for path, text in texts.items()}
    stale = [path for path in FILES if rendered[path] != texts[path]]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)}'s tables are out of date: run python recipes/zoo_table.py")
        return 1 if stale else 0
    for path in stale:
        path.write_text(rendered[path])
    print(figure())
    return 0


if __name__ == "__main__":
    sys.exit(main())
