"""The zoo as a table: what ``mdsnn-zoo list`` prints and the README's tables show."""

from __future__ import annotations


def format_size(n: int | None) -> str:
    """A file size in bytes as ``1.23 MB`` or ``456 kB`` (decimal units); ``-`` for None."""
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def rows(pattern: str = "*", pretrained: bool = False) -> list[list[str]]:
    """Header and one row per entry matching ``pattern``: name, data, T, bits, method, top-1, file size."""
    from mdsnn_zoo.zoo.registry import ENTRIES, _manifest, list_models

    manifest = _manifest()
    out = [["name", "data", "T", "bits", "method", "top-1 %", "file"]]
    for name in list_models(pattern, pretrained):
        e, rec = ENTRIES[name], manifest.get(name, {})
        bits = "fp32" if e.method == "fp" else f"W{e.w_bits}U{e.u_bits}"
        top1 = f"{rec['top1']:.2f}" if "top1" in rec else "-"
        out.append([name, e.dataset, str(e.time_steps), bits, e.method, top1, format_size(rec.get("file_bytes"))])
    return out
