"""The model zoo: named entries ``arch.tag`` (in the manner of timm), each an architecture, a data set,
T, bits and a training method, with the metadata of its weights where they ship (torchvision-style).

    list_models("vgg9.*", pretrained=True)   # names
    create_model("small_cnn.fmnist_t4_w2u2_md", pretrained=True)
    get_weights("small_cnn.fmnist_t4_w2u2_md").top1       # a ZooWeights record

Tags read ``<data>_t<T>_<fp | w<b>u<b>_<md | qat>>``. Entries are declared here; what their trained
weights measured (top-1 on the test split by ``mdsnn-zoo eval NAME``, sha256, size, the exact
command) is in ``manifest.json`` beside this file, written by ``recipes/export_zoo.py``.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import json
import os
import shlex
from collections.abc import KeysView
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from mdsnn_zoo.errors import DownloadError, InvalidValueError, UnknownNameError, WeightsNotFoundError
from mdsnn_zoo.paths import cache_dir

HERE = Path(__file__).parent
MANIFEST = HERE / "manifest.json"
DATASET_TAGS = {"fmnist": "fashion-mnist", "cifar10": "cifar10", "cifar100": "cifar100",
                "tinyimagenet": "tiny-imagenet", "ncaltech101": "n-caltech101", "nfmnist": "n-fashion-mnist"}
# (architecture, data tag, T, architecture arguments, teacher epochs, student epochs)
_FAMILIES: list[tuple[str, str, int, dict, int, int]] = [
    ("small_cnn", "fmnist", 4, {}, 5, 3),
    ("vgg9", "fmnist", 4, {"width": 0.5}, 8, 2),
    ("ms_resnet18", "fmnist", 4, {"width": 0.25}, 40, 10),
    ("vgg9", "nfmnist", 10, {"width": 0.25}, 20, 10),
    *[(a, d, 4, {}, 200, 60) for d in ("cifar10", "cifar100")
      for a in ("vgg9", "vgg11", "vgg16", "resnet19", "resnet20", "ms_resnet18")],
    *[(a, "tinyimagenet", 4, {}, 100, 30) for a in ("vgg16", "resnet19", "ms_resnet18")],
    *[(a, "ncaltech101", 10, {}, 100, 30) for a in ("vgg11", "resnet19")],
]
_VARIANTS = [("fp", None, None), ("md", 4, 4), ("md", 2, 2), ("qat", 2, 2)]


@dataclass(frozen=True)
class ZooEntry:
    """One named model: how to build it and how it was (or is to be) trained."""

    name: str
    arch: str
    dataset: str
    time_steps: int
    method: str  # fp | qat | md
    w_bits: int | None
    u_bits: int | None
    arch_kwargs: dict = field(default_factory=dict)
    teacher: str | None = None  # zoo name of the float teacher (students)
    first_last_bits: int | None = 8
    epochs: int = 0

    @property
    def data_options(self) -> dict:
        """How its data set is read as it was trained: event recordings binned into its T frames."""
        from mdsnn_zoo.train.data import read_options

        return read_options(self.dataset, self.time_steps)

    @property
    def recipe(self) -> str:
        """The command that trains this entry from scratch (after its teacher, for a student)."""
        args = ["--dataset", self.dataset, "--arch", self.arch, "--time-steps", str(self.time_steps),
                "--epochs", str(self.epochs), "--out-dir", f"runs/{self.name}"]
        if self.arch_kwargs:
            args += ["--arch-kwargs", json.dumps(self.arch_kwargs, separators=(",", ":"))]
        if self.method == "fp":
            return shlex.join(["mdsnn-zoo", "train", *args])
        bits = ["--w-bits", str(self.w_bits), "--u-bits", str(self.u_bits)]
        teacher = f"runs/{self.teacher}/best.safetensors"
        if self.method == "md":
            return shlex.join(["mdsnn-zoo", "distill", "--teacher", teacher, *bits, *args])
        return shlex.join(["mdsnn-zoo", "train", "--init", teacher, *bits, "--lr", "0.02", "--warmup-epochs", "0",
                           *args])


def _declare() -> dict[str, ZooEntry]:
    entries = {}
    for arch, tag, T, kwargs, fp_epochs, student_epochs in _FAMILIES:
        base = f"{arch}.{tag}_t{T}"
        for method, w, u in _VARIANTS:
            name = f"{base}_fp" if method == "fp" else f"{base}_w{w}u{u}_{method}"
            entries[name] = ZooEntry(name, arch, DATASET_TAGS[tag], T, method, w, u, kwargs,
                                     None if method == "fp" else f"{base}_fp",
                                     epochs=fp_epochs if method == "fp" else student_epochs)
    return entries


ENTRIES: dict[str, ZooEntry] = _declare()


@functools.cache
def _manifest() -> dict[str, dict]:
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}


def get_entry(name: str) -> ZooEntry:
    """The entry called ``name``; an unknown name raises an error listing the closest ones."""
    if name in ENTRIES:
        return ENTRIES[name]
    close = difflib.get_close_matches(name, list(ENTRIES), n=5, cutoff=0.5)
    hint = f"closest: {', '.join(close)}" if close else "see `mdsnn-zoo list`"
    raise UnknownNameError(f"unknown model {name!r}; {hint}")


def _local_file(name: str, record: dict) -> Path | None:
    for folder in (HERE / "weights", cache_dir() / "weights"):
        path = folder / record["file"]
        if path.exists():
            return path
    return None


@dataclass(frozen=True)
class ZooWeights:
    """The metadata of one zoo entry: what it is, how it was trained and, where weights exist, what they
    score and cost. Read as attributes or, like a dict, by key (``meta["top1"]``, ``meta.keys()``);
    ``as_dict()`` gives a plain dict (JSON)."""

    name: str
    arch: str
    arch_kwargs: dict
    dataset: str
    time_steps: int
    w_bits: int | None
    u_bits: int | None
    first_last_bits: int | None  # None for a float model
    bias_frac_bits: int | None  # a student's bias grid (None for a float model)
    method: str  # fp | qat | md
    teacher: str | None
    recipe: str  # the exact command that trained it (or, without weights, the one that would)
    pretrained: bool
    top1: float | None  # % on the test split, as `mdsnn-zoo eval NAME` prints it; None without weights
    num_params: int
    file_bytes: int | None
    sha256: str | None
    url: str | None
    file: str | None  # the local path of the weights, None until present
    val_top1: float | None = None  # % on the held-out validation images that chose the checkpoint
    membrane_mse: float | None = None  # a student's membrane MSE to its teacher on the test split
    spike_rate: float | None = None
    trained_on: str | None = None  # the machine and precision of the run
    cost: dict | None = None  # hardware -> activity -> energy_pj, latency_ns, area_um2, edap, tops_per_w, ...
    repeats: dict | None = None  # seed -> top1, val_top1, recipe, sha256: the recipe rerun with another seed
    # (not shipped; recorded for the spread of the result)
    scale_bits: int | None = None  # a student's weight scales: multipliers of scale_bits + 1 bits (None: float)
    integer_exact: bool = False  # a student an integer machine runs exactly (mdsnn-zoo export --format int)
    fine_tuned_from: dict | None = None  # the entry this one was fine-tuned from and replaced: its sha256, top1,
    # val_top1, recipe and repeats

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise UnknownNameError(f"zoo metadata has no field {key!r}; fields: {', '.join(self.keys())}")
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.keys() else default

    def keys(self) -> KeysView[str]:
        return dict.fromkeys(f.name for f in dataclasses.fields(self)).keys()

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.keys()}


def get_weights(name: str) -> ZooWeights:
    """Metadata of ``name`` (a :class:`ZooWeights`): the entry's declaration, completed from
    ``manifest.json`` where its weights ship."""
    e = get_entry(name)
    record = _manifest().get(name, {})
    path = _local_file(name, record) if record else None
    return ZooWeights(
        name=e.name, arch=e.arch, arch_kwargs=dict(e.arch_kwargs), dataset=e.dataset, time_steps=e.time_steps,
        w_bits=e.w_bits, u_bits=e.u_bits, first_last_bits=None if e.method == "fp" else e.first_last_bits,
        bias_frac_bits=None if e.method == "fp" else _bias_frac_bits(e), method=e.method, teacher=e.teacher,
        recipe=record.get("recipe", e.recipe), pretrained=bool(record), top1=record.get("top1"),
        num_params=record.get("num_params") or _num_params(name), file_bytes=record.get("file_bytes"),
        sha256=record.get("sha256"), url=record.get("url"), file=str(path) if path else None,
        val_top1=record.get("val_top1"), membrane_mse=record.get("membrane_mse"),
        spike_rate=record.get("spike_rate"), trained_on=record.get("trained_on"), cost=record.get("cost"),
        repeats=record.get("repeats"), scale_bits=_scale_bits(e),
        integer_exact=e.method != "fp" and _scale_bits(e) is not None, fine_tuned_from=record.get("fine_tuned_from"),
    )


@functools.cache
def _num_params(name: str) -> int:
    import torch

    with torch.device("meta"):  # shapes only: no memory, no initialisation
        return sum(p.numel() for p in build_entry_model(ENTRIES[name]).parameters())


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Sorted entry names matching the shell-style ``pattern``; only those with weights if ``pretrained``."""
    names = [n for n in ENTRIES if fnmatch.fnmatchcase(n, pattern)]
    if pretrained:
        names = [n for n in names if n in _manifest()]
    return sorted(names)


def _weights_path(name: str) -> Path:
    """The local weights of ``name``, fetched into the cache if the entry has a URL."""
    record = _manifest().get(name)
    e = ENTRIES[name]
    if record is None:
        teacher = f" (after its teacher: {ENTRIES[e.teacher].recipe})" if e.teacher else ""
        raise WeightsNotFoundError(f"no pretrained weights ship for {name}; train them where the {e.dataset} data is "
                                   f"with: {e.recipe}{teacher}")
    path = _local_file(name, record)
    if path is not None:
        return path
    if not record.get("url"):
        raise WeightsNotFoundError(f"the weights of {name} ({record['file']}) are missing from the package and from "
                                   f"{cache_dir() / 'weights'}; reinstall mdsnn-zoo")
    return _download(record["url"], cache_dir() / "weights" / record["file"], name)


def _download(url: str, dest: Path, name: str) -> Path:
    import urllib.request

    from mdsnn_zoo.checkpoint import atomic_writer

    try:
        with urllib.request.urlopen(url, timeout=60) as r, atomic_writer(dest) as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
    except OSError as exc:
        raise DownloadError(f"could not download the weights of {name} from {url} ({exc}); offline, put the file "
                            f"at {dest}") from None
    return dest


def entry_config(e: ZooEntry, bias_frac_bits: int | None = None, scale_bits: int | str | None = "shipped",
                 **kwargs: Any):
    """The :class:`~mdsnn_zoo.train.TrainConfig` of entry ``e``'s network (``bias_frac_bits`` None and
    ``scale_bits`` "shipped": as its weights were trained; ``kwargs`` on top of its architecture arguments)."""
    from mdsnn_zoo.train.config import TrainConfig

    student = e.method != "fp"
    return TrainConfig(method=e.method, arch=e.arch, arch_kwargs={**e.arch_kwargs, **kwargs}, dataset=e.dataset,
                       time_steps=e.time_steps, w_bits=e.w_bits if student else None, u_bits=e.u_bits,
                       first_last_bits=e.first_last_bits,
                       bias_frac_bits=(_bias_frac_bits(e) if bias_frac_bits is None else bias_frac_bits) if student
                       else 0, scale_bits=_scale_bits(e) if scale_bits == "shipped" else scale_bits)


def build_entry_model(e: ZooEntry, bias_frac_bits: int | None = None, scale_bits: int | str | None = "shipped",
                      **kwargs) -> nn.Module:
    """The untrained network of entry ``e`` (quantized for a student; ``bias_frac_bits`` None and
    ``scale_bits`` "shipped": as its weights were trained); ``kwargs`` go to the architecture. Built by
    :func:`mdsnn_zoo.train.build.build_network`, as the trainer builds its networks."""
    from mdsnn_zoo.train.build import build_network

    return build_network(entry_config(e, bias_frac_bits, scale_bits, **kwargs))


def _bias_frac_bits(e: ZooEntry) -> int:
    """How finely a student's biases are quantized: as its shipped weights were trained (the first
    students had theirs on the membrane grid, 0), else the current default."""
    from mdsnn_zoo.quant import DEFAULT_BIAS_FRAC_BITS

    return _manifest().get(e.name, {}).get("bias_frac_bits", DEFAULT_BIAS_FRAC_BITS)


def _scale_bits(e: ZooEntry) -> int | None:
    """A student's weight-scale grid as its shipped weights were trained (None: float scales)."""
    return _manifest().get(e.name, {}).get("scale_bits") if e.method != "fp" else None


def replace_head(model: nn.Module, num_classes: int) -> None:
    """Give ``model`` a freshly initialised last linear layer with ``num_classes`` outputs (same bits)."""
    from spikingjelly.activation_based import layer

    from mdsnn_zoo.quant import QuantLinear

    head = model.head
    idx, last = next((i, m) for i, m in reversed(list(enumerate(head))) if isinstance(m, nn.Linear))
    new = layer.Linear(last.in_features, num_classes, bias=last.bias is not None, step_mode="m")
    if isinstance(last, QuantLinear):
        new = QuantLinear.from_float(new, last.weight_quant.bits, last.weight_quant.scale_bits)
        new.step_mode = "m"
    head[idx] = new.to(last.weight.device)


def create_model(name: str, pretrained: bool | str | os.PathLike = False, num_classes: int | None = None,
                 **kwargs) -> nn.Module:
    """The network of entry ``name``: ``pretrained=True`` loads its weights (sha256 checked),
    ``pretrained=PATH`` a local file checked against the entry's sha256; ``num_classes`` other than
    the data set's gives a fresh head (for fine-tuning); ``kwargs`` go to the architecture (e.g.
    ``backend='torch'``). Returns the model in eval mode when pretrained."""
    from mdsnn_zoo.zoo.packing import load_packed

    e = get_entry(name)
    if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, int)
                                    or num_classes < 1):
        raise InvalidValueError(f"num_classes must be a positive int, got {num_classes!r}")
    model = build_entry_model(e, **kwargs)
    if pretrained is not False and pretrained is not None:
        if pretrained is True:
            path = _weights_path(name)
        else:
            path = Path(pretrained)
            if not path.exists():
                raise WeightsNotFoundError(f"pretrained={str(path)!r}: no such file")
        sha = _manifest().get(name, {}).get("sha256")
        if sha is None:
            raise InvalidValueError(f"{name} has no published sha256 to check {path} against; load it with "
                                    "mdsnn_zoo.zoo.packing.load_packed(model, path, sha256=None) if you trust it")
        load_packed(model, path, sha)
        model.eval()
    if num_classes is not None and num_classes != model.head[-1].out_features:
        replace_head(model, num_classes)
    model.zoo_name = name
    return model
