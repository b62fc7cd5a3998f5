"""A simple digital accelerator, priced with 45 nm energies (M. Horowitz, "Computing's energy problem
(and what we can do about it)", ISSCC 2014): integer add 0.03 pJ (8 bits) to 0.1 pJ (32 bits), integer
multiply 0.2 pJ (8 bits), float32 add 0.9 pJ and multiply 3.7 pJ, a 64-bit read from an 8 KB SRAM 10 pJ.

The model, per sample:

- **compute**: a layer with real-valued input (the first) multiply-accumulates densely (an integer
  multiply at max(weight bits, 8), as the 8-bit image meets the weight, and a 32-bit add; float: 3.7 +
  0.9 pJ); a layer with spike input accumulates a weight into the membrane for each synaptic operation
  (an add at the membrane's width; float 0.9 pJ), all of them (``activity="dense"``) or only those of
  the measured spikes (``"spikes"``); each neuron updates every step (leak and threshold: two adds at
  its width; float a multiply and two adds); a max pool ORs spikes (a 1-bit add an input), a global
  pool counts them (8 bits), a residual addition adds at the next neuron's width;
- **memory**: every operation reads its weight at the weight's width, and every neuron reads and writes
  its membrane each step at the membrane's width, from 8 KB SRAM banks (10 pJ / 64 bits);
- **latency**: the operations on ``lanes`` parallel units at ``clock_mhz``;
- **area**: the SRAM that holds all weights and membranes, at SpikeSim's 0.7391 µm² a bit (compute
  units are not counted).

Integer add energy is interpolated linearly in bits between Horowitz's 8- and 32-bit figures (and
scaled down linearly below 8 bits); integer multiply energy scales with the square of the bits.
Float weights and membranes are 32-bit floats.
"""

from __future__ import annotations

from dataclasses import dataclass

from mdsnn_zoo.cost.spikesim import BIT_AREA_UM2
from mdsnn_zoo.cost.trace import Op


@dataclass(frozen=True)
class DigitalConfig:
    clock_mhz: float = 500.0
    lanes: int = 64
    sram_pj_per_bit: float = 10.0 / 64
    bit_area_um2: float = BIT_AREA_UM2
    float_bits: int = 32


def add_pj(bits: int | None) -> float:
    """One add: integer of ``bits``, or float32 (None)."""
    if bits is None:
        return 0.9
    if bits <= 8:
        return 0.03 * bits / 8
    return 0.03 + (min(bits, 32) - 8) * (0.1 - 0.03) / 24


def mult_pj(bits: int | None) -> float:
    """One multiply: integer of ``bits``, or float32 (None)."""
    return 3.7 if bits is None else 0.2 * (bits / 8) ** 2


def cost(ops: list[Op], cfg: DigitalConfig, activity: str) -> dict:
    """Totals (``energy_pj``, ``latency_ns``, ``area_um2``) and a row per operation."""
    rows = []
    memory_bits = 0
    for op in ops:
        operations = 0.0
        if op.kind in ("conv", "linear"):
            u_bits = op.u_bits
            w_width = cfg.float_bits if op.w_bits is None else op.w_bits  # float weights: 32-bit reads
            if op.binary_input:
                operations = op.sops if activity == "spikes" else float(op.macs)
                compute = operations * add_pj(u_bits)
            else:
                operations = float(op.macs)
                per_mac = (mult_pj(None) + add_pj(None)) if op.w_bits is None else \
                    mult_pj(max(op.w_bits, 8)) + add_pj(32)
                compute = operations * per_mac
            energy = compute + operations * w_width * cfg.sram_pj_per_bit
            memory_bits += op.params * w_width
        elif op.kind == "neuron":
            width = cfg.float_bits if op.u_bits is None else op.u_bits  # float membranes: 32 bits
            operations = float(op.elements * op.time_steps)
            update = (mult_pj(None) + 2 * add_pj(None)) if op.u_bits is None else 2 * add_pj(op.u_bits)
            energy = operations * (update + 2 * width * cfg.sram_pj_per_bit)
            memory_bits += op.elements * width
        else:  # one op per element: a max pool ORs spikes, a global pool counts them, a residual add adds
            window = op.kernel[0] * op.kernel[1] if op.kind == "pool" else 1
            operations = float(op.elements * op.time_steps * window)
            width = {"pool": 1, "global_pool": 8}.get(op.kind, op.u_bits)
            energy = operations * add_pj(width)
        rows.append({"name": op.name, "operations": operations, "energy_pj": energy,
                     "latency_ns": operations / cfg.lanes * 1000.0 / cfg.clock_mhz})
    return {"energy_pj": sum(r["energy_pj"] for r in rows), "latency_ns": sum(r["latency_ns"] for r in rows),
            "area_um2": memory_bits * cfg.bit_area_um2, "layers": rows}
