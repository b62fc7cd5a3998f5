"""SpikeSim's compute-in-memory model (Moitra et al., "SpikeSim: An end-to-end Compute-in-Memory
Hardware Evaluation Tool for Benchmarking Spiking Neural Networks", IEEE TCAD 2023), written for this
project from the published energy-latency-area script (``ela_spikesim.py`` in the SpikeSim repository).

The model as published, for layers given as (input channels, output channels, input size, output
size after pooling) with one kernel size k:

- a PE holds k x k crossbars of ``xbar`` x ``xbar`` RRAM cells (one 4-bit weight a cell) and
  ``xbar / 8`` ADCs with their multiplexers; a layer takes ceil(C_in / xbar) x ceil(C_out / xbar) PEs;
  ``pe_per_tile`` PEs make a tile, and the tiles are ceil(PEs / pe_per_tile);
- area: every tile (its PEs, shift-add units, buffers and H-tree), plus 0.7391 x 22 µm² for each
  element of every layer's input buffer and of the neuron memory (22 bits at 0.7391 µm² a bit);
- energy: one PE cycle per PE, output position (after pooling) and time step, at a fixed energy
  (crossbar reads, ADCs, shift-adds, buffers, H-tree, memory fetch, neurons);
- latency: the layers form a pipeline in which a layer starts when 75% of the previous one's outputs
  exist; each output neuron and time step takes one PE cycle (26 clock cycles).

Where this module departs from the script, and why:

1. **Weight bits** enter as cells per weight: ceil(w_bits / ``cell_bits``) cells of ``cell_bits`` (4,
   the published cell) side by side in the crossbar columns; float weights take ``float_weight_bits``
   (32), i.e. 8 cells. More cells mean more crossbars, PEs, tiles and PE cycles. A weight narrower than
   a cell needs a narrower ADC: ``adc_bits - (cell_bits - w_bits)``, whose energy and area scale as
   2^bits (a first-order rule for flash and SAR converters).
2. **Membrane bits** enter the neuron memory (0.7391 µm² a bit) and the neuron's energy (in proportion
   to its width); a membrane that is not quantized is stored at the published word, ``full_membrane_bits``
   = 22. Input buffers keep the published 22-bit word.
3. **Activity** ``"spikes"``: a PE cycle whose receptive field holds no spike is skipped (its control
   and ADC work is not spent), and crossbar reads cost in proportion to the rows a spike drives; the
   neurons still update (leak) every step, and a layer with real-valued input (the first) stays dense.
   Latency and area do not change: the pipeline is clocked, and the hardware is the same.
4. **Other layers.** Linear layers map as k = 1 layers of size 1 (their PEs use one of the k x k
   crossbars; the script has none). Kernels other than k x k use k_l x k_l crossbars of their own in PEs
   of ``kernel`` x ``kernel`` crossbars. Residual additions and global pooling are not part of the model:
   they are reported as unmapped, with their operation counts. A local pooling is folded into the
   layer before it, as the script's layer list does.
5. **Neuron memory of every layer.** The script sums the neuron memory of its list's first five
   layers only (``[0:5]``, for its seven-layer VGG9); this module counts every layer. For five layers or
   fewer the two agree.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from mdsnn_zoo.cost.trace import Op

BIT_AREA_UM2 = 0.7391  # SRAM buffer area a bit (the script's 0.7391 factors)


@dataclass(frozen=True)
class SpikeSimConfig:
    """The hardware: crossbars, tiles, clock and the published constants (energy pJ, area µm²)."""

    xbar: int = 64
    kernel: int = 3
    pe_per_tile: int = 8
    clock_mhz: float = 250.0
    cycles_per_pe: int = 26
    device: str = "rram"  # rram | sram
    cell_bits: int = 4
    adc_bits: int = 4
    float_weight_bits: int = 32
    full_membrane_bits: int = 22
    # energy per operation, pJ
    e_tile_buffer: float = 397.0
    e_temp_buffer: float = 0.2
    e_shift_add: float = 1.15e-6
    e_adc: float = 2.03084
    e_htree: float = 19.64 * 8
    e_mux: float = 0.094245
    e_mem_fetch: float = 4.64
    e_neuron: float = 1.274 * 4.0
    # area, µm²
    a_tile_buffer: float = BIT_AREA_UM2 * 64 * 128
    a_temp_buffer: float = 484.643999
    a_shift_add: float = 13411.41498
    a_adc: float = 693.633
    a_htree: float = 216830 * 2
    a_mux: float = 45.9
    buffer_word_bits: int = 22

    def __post_init__(self) -> None:
        from mdsnn_zoo.errors import InvalidValueError

        if self.device not in ("rram", "sram"):
            raise InvalidValueError(f"device must be 'rram' or 'sram', got {self.device!r}")
        if min(self.xbar, self.kernel, self.pe_per_tile, self.cell_bits, self.adc_bits) < 1 or self.xbar % 8:
            raise InvalidValueError("xbar (a multiple of 8), kernel, pe_per_tile, cell_bits and adc_bits must be >= 1")

    @property
    def e_xbar(self) -> float:
        """Energy of one crossbar read, pJ."""
        return 1.76423 if self.device == "rram" else 671.089

    @property
    def a_xbar(self) -> float:
        """Area of one crossbar, µm²."""
        return 26.2144 if self.device == "rram" else 671.089

    @property
    def pe_cycle_ns(self) -> float:
        return self.cycles_per_pe * 1000.0 / self.clock_mhz


@dataclass(frozen=True)
class Layer:
    """A layer as the model sees it: SpikeSim's (C_in, C_out, input size, output size after pooling),
    a kernel, weight and membrane bits (None: float), and its measured activity."""

    name: str
    cin: int
    cout: int
    in_dim: int
    out_dim: int
    kernel: int = 3
    w_bits: int | None = 4
    u_bits: int | None = None
    binary_input: bool = True
    active_patches: float = 1.0
    active_rows: float = 1.0


def layers_from_ops(ops: list[Op]) -> tuple[list[Layer], list[str]]:
    """The mappable layers of a trace, and a line for each operation that is not mapped."""
    layers, unmapped = [], []
    for op in ops:
        if op.kind in ("conv", "linear"):
            u_bits = op.u_bits
            if op.kind == "conv":
                out_dim = (op.pooled_hw or op.out_shape[1:])[0]
                layers.append(Layer(op.name, op.in_channels, op.out_channels, op.in_shape[1], out_dim,
                                    op.kernel[0], op.w_bits, u_bits, op.binary_input, op.active_patches,
                                    op.active_rows))
            else:
                layers.append(Layer(op.name, op.in_channels, op.out_channels, 1, 1, 1, op.w_bits, u_bits,
                                    op.binary_input, op.active_patches, op.active_rows))
        elif op.kind in ("add", "global_pool"):
            what = "residual addition" if op.kind == "add" else "global average pooling"
            unmapped.append(f"{op.name}: {what} of {op.elements * op.time_steps} elements per sample "
                            "(not in SpikeSim's model)")
    return layers, unmapped


def _weight_bits(w_bits: int | None, cfg: SpikeSimConfig) -> int:
    """Bits a weight takes in the crossbar: its own, or ``float_weight_bits`` (32) for a float weight (None)."""
    return cfg.float_weight_bits if w_bits is None else w_bits


def _cells(w_bits: int | None, cfg: SpikeSimConfig) -> int:
    return math.ceil(_weight_bits(w_bits, cfg) / cfg.cell_bits)


def _adc_scale(w_bits: int | None, cfg: SpikeSimConfig) -> float:
    """ADC energy and area relative to the published converter: 2^(bits - adc_bits)."""
    narrower = max(0, cfg.cell_bits - _weight_bits(w_bits, cfg))
    return 2.0 ** -min(narrower, cfg.adc_bits - 1)


def crossbars(layer: Layer, cfg: SpikeSimConfig) -> int:
    """Crossbars of ``layer``: k_l x k_l for each (input slice, output column group)."""
    return _groups(layer, cfg) * layer.kernel**2


def _groups(layer: Layer, cfg: SpikeSimConfig) -> int:
    """(input slice, output column group) pairs: ceil(C_in / xbar) x ceil(C_out x cells / xbar)."""
    return math.ceil(layer.cin / cfg.xbar) * math.ceil(layer.cout * _cells(layer.w_bits, cfg) / cfg.xbar)


def pes(layer: Layer, cfg: SpikeSimConfig) -> int:
    """PEs of ``layer``: its crossbars packed into PEs of k x k."""
    return math.ceil(crossbars(layer, cfg) / cfg.kernel**2)


def pe_area(layer: Layer, cfg: SpikeSimConfig) -> float:
    return cfg.kernel**2 * cfg.a_xbar + cfg.xbar / 8 * (cfg.a_adc * _adc_scale(layer.w_bits, cfg) + cfg.a_mux)


def _membrane_bits(layer: Layer, cfg: SpikeSimConfig) -> int:
    """The membrane word: its bits, or ``full_membrane_bits`` (22) for a float membrane (None)."""
    return cfg.full_membrane_bits if layer.u_bits is None else layer.u_bits


def layer_energy(layer: Layer, cfg: SpikeSimConfig, time_steps: int, activity: str) -> float:
    """Energy of one sample through ``layer``, pJ."""
    b = cfg.xbar / 8
    xbar = b * layer.kernel**2 * cfg.e_xbar  # crossbar reads of one PE cycle
    adc = b * b * (cfg.e_adc * _adc_scale(layer.w_bits, cfg) + cfg.e_mux)
    neuron = cfg.e_neuron * _membrane_bits(layer, cfg) / cfg.full_membrane_bits
    control = (cfg.e_htree + cfg.e_mem_fetch + b * 16 * cfg.e_shift_add + b * cfg.e_temp_buffer
               + cfg.e_tile_buffer)
    cycles = _groups(layer, cfg) * layer.out_dim**2 * time_steps
    if activity == "spikes" and layer.binary_input:
        return cycles * (layer.active_patches * (control + adc) + layer.active_rows * xbar + neuron)
    return cycles * (control + adc + xbar + neuron)


def cost(layers: list[Layer], time_steps: int, cfg: SpikeSimConfig, activity: str) -> dict:
    """Totals (``energy_pj``, ``latency_ns``, ``area_um2``, ``pes``, ``tiles``) and a row per layer."""
    n_pes = [pes(layer, cfg) for layer in layers]
    tiles = math.ceil(sum(n_pes) / cfg.pe_per_tile)
    ref = dataclasses.replace(layers[0], w_bits=cfg.cell_bits) if layers else None
    tile_overhead = (cfg.xbar / 8 * cfg.a_shift_add + cfg.a_temp_buffer + cfg.a_tile_buffer + cfg.a_htree)
    word = BIT_AREA_UM2 * cfg.buffer_word_bits
    rows, energy, area = [], 0.0, tiles * tile_overhead
    area += (tiles * cfg.pe_per_tile - sum(n_pes)) * (pe_area(ref, cfg) if ref else 0.0)  # empty PE slots
    cycle = cfg.pe_cycle_ns
    for i, (layer, n) in enumerate(zip(layers, n_pes, strict=True)):
        outputs = layer.out_dim**2 * layer.cout * time_steps
        latency = (outputs if i == len(layers) - 1 else int(0.75 * layer.out_dim**2 * layer.cout) * time_steps) * cycle
        e = layer_energy(layer, cfg, time_steps, activity)
        a = (n * pe_area(layer, cfg) + layer.cin * layer.in_dim**2 * word
             + layer.cout * layer.out_dim**2 * BIT_AREA_UM2 * _membrane_bits(layer, cfg))
        energy += e
        area += a
        rows.append({"name": layer.name, "pes": n, "crossbars": crossbars(layer, cfg), "energy_pj": e,
                     "area_um2": a, "latency_ns": latency})
    return {"energy_pj": energy, "latency_ns": sum(r["latency_ns"] for r in rows), "area_um2": area,
            "pes": sum(n_pes), "tiles": tiles, "layers": rows}
