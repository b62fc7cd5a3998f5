"""Where bfloat16 autocast pays: the hardware decides the default, a flag can force it.

On a CUDA GPU with bfloat16 support, and on a CPU where oneDNN has a native bfloat16 path (AVX-512
BF16 or AMX: ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``), autocast halves the bytes a
convolution moves and runs it on bfloat16 instructions. Elsewhere (an AVX2-only CPU) oneDNN
emulates it and a bfloat16 convolution is many times slower than float32 (a Zen 3 EPYC trained
vgg9 at 6 images/s with it against about 90 without), so there float32 is the default.
"""

from __future__ import annotations

import contextlib

import torch


def native_bf16(device: torch.device) -> bool:
    """True where bfloat16 arithmetic runs natively on ``device`` (not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        try:
            return bool(probe()) if probe is not None else False
        except RuntimeError:  # a torch built without oneDNN
            return False
    return False


def resolve_amp(amp: bool | None, device: torch.device) -> tuple[bool, str]:
    """(autocast on?, why) for a requested ``amp``: True/False force it, None asks the hardware."""
    if amp is not None:
        return bool(amp), "bfloat16 autocast " + ("forced on (--amp)" if amp else "off (--no-amp)") + \
            f"; native bfloat16 here: {'yes' if native_bf16(device) else 'no'}"
    if native_bf16(device):
        return True, f"bfloat16 autocast (native bfloat16 on this {_where(device)})"
    return False, f"float32 (no native bfloat16 on this {_where(device)}: autocast would be emulated)"


def _where(device: torch.device) -> str:
    if device.type == "cpu":
        return f"CPU, capability {torch.backends.cpu.get_cpu_capability()}"
    return device.type.upper()


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on ``device`` when ``enabled``, else nothing."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
