"""The GPU kernels compiled ahead of time, as a CUDA machine would build them, on a machine with no GPU.

``mdsnn-zoo bench aot`` drives the public API with every Triton launch recorded, specialises each
launch with Triton's binder for sm_80 and sm_90, compiles it, compiles the CUDA C sources with NVRTC,
and reads every cubin's registers and spills. The interpreter the other tests use cannot see a
kernel that fails to compile (a non-constexpr global did, for every quantized configuration).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mdsnn_zoo import backends
from mdsnn_zoo.bench import aot

triton = pytest.importorskip("triton")
import triton.language as tl  # noqa: E402

from mdsnn_zoo.kernels import lif_triton  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _env(cache: Path | None = None) -> dict:
    """Without the interpreter; compiles are reused from Triton's own cache unless ``cache`` is given."""
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TRITON_ALLOW_NON_CONSTEXPR_GLOBALS")}
    if cache is not None:
        env["TRITON_CACHE_DIR"] = str(cache)
    return env


@pytest.fixture(scope="module")
def gate(tmp_path_factory) -> tuple[subprocess.CompletedProcess, list[dict]]:
    out = tmp_path_factory.mktemp("aot") / "results.json"
    done = subprocess.run([sys.executable, "-m", "mdsnn_zoo", "bench", "aot", "--json", str(out)],
                          capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=900)
    return done, (json.loads(out.read_text()) if out.exists() else [])


def test_every_launch_compiles_for_sm80_and_sm90_without_spills_in_128_registers(gate):
    done, results = gate
    assert done.returncode == 0, done.stderr[-4000:]
    assert results and not [r for r in results if r["error"]]
    assert all(r["spill_bytes"] == 0 for r in results)
    assert max(r["registers"] for r in results if r["arch"] == 90) <= aot.MAX_REGISTERS
    assert all(r["narrow_offsets"] == 0 for r in results)  # every vector address in 64 bits


def test_the_gate_covers_every_kernel_target_and_option(gate):
    _, results = gate
    triton_names = {name.split(":")[1] for name in aot.TRITON_KERNELS}
    compiled = {(r["kernel"].split(":")[-1], r["arch"]) for r in results}
    for arch in aot.ARCHS:
        assert {(k, arch) for k in triton_names} <= compiled
        for names in aot.cuda_c_names().values():  # every instantiation cupy.RawModule asks for
            assert {(n, arch) for n in names} <= compiled
    origins = " ".join(o + " " for r in results for o in r["origins"])
    for level in ("float32", "float16", "bfloat16", "T=1 ", "T=16", "float ", "soft", "hard", "nodecay", "detach",
                  "shift=", "grad=sum", "grad=random", "grad=none", " grad_v ", "grad_h", "target=", "unaligned",
                  *[f"U{b} " for b in range(2, 9)], *aot.SURROGATE_CLASSES):
        assert level in origins, level
    # 128-bit loads and stores on the hot training configurations
    def hot(origin: str) -> bool:
        words = set(origin.split())
        return origin.startswith(("float32 T=4 ", "bfloat16 T=10 ")) and {"grad=random", "M=4096"} <= words

    served = [r for r in results if r["arch"] == 90 and "_lif_" in r["kernel"] and any(map(hot, r["origins"]))]
    assert {o for r in served for o in r["origins"] if hot(o)} == {s.label() for s in aot.scenarios() if hot(s.label())}
    assert served and all("128" in r["loads"].split(",") and "128" in r["stores"].split(",") for r in served)


def test_the_gate_fails_on_a_kernel_that_does_not_compile(tmp_path):
    """The defect the interpreter hid: a kernel reading a plain-float module global."""
    code = ("from mdsnn_zoo.kernels import lif_triton\n"
            "lif_triton.FRAC_OUT = 2.0  # no longer a tl.constexpr\n"
            "from mdsnn_zoo.bench import aot\n"
            "with aot.record() as launches:\n"
            "    aot.drive(aot.Scenario(T=2, shape=(4, 16)), launches)\n"
            "jobs = [j for j in aot.jobs_for(launches, (90,)) if 'fwd' in j.kernel]\n"
            "print('\\n'.join(aot.problems([aot.compile_job(j) for j in jobs])))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(tmp_path / "cache"),
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "_lif_fwd_kernel sm_90" in done.stdout and "FRAC_OUT" in done.stdout


def test_problems_flags_spills_registers_narrow_offsets_and_errors():
    ok = aot.Resources("k", 90, ["cfg"], registers=128, spill_bytes=0, shared_bytes=0, num_warps=4)
    assert aot.problems([ok]) == [] and ok.warps_per_sm() == 16
    bad = [aot.Resources("k", 90, ["a"], registers=130, spill_bytes=0, shared_bytes=0),
           aot.Resources("k", 80, ["b"], registers=40, spill_bytes=8, shared_bytes=0),
           aot.Resources("k", 90, ["c"], registers=40, spill_bytes=0, shared_bytes=0, narrow_offsets=2),
           aot.Resources("k", 80, ["d"], error="NameError: x")]
    found = aot.problems(bad)
    assert len(found) == 4 and "130 registers" in found[0] and "spills 8" in found[1]
    assert "32 bits" in found[2] and "NameError" in found[3]


def test_narrow_offsets_reads_the_integer_width_of_vector_addresses():
    wide = ("%5 = tt.addptr %4, %3 : tensor<512x!tt.ptr<f32>>, tensor<512xi64> loc(#loc1)\n"
            "%6 = tt.addptr %arg0, %c : !tt.ptr<f32>, i32 loc(#loc2)\n")  # a scalar pointer: one address
    narrow = "%7 = tt.addptr %4, %2 : tensor<1024x!tt.ptr<bf16>>, tensor<1024xi32> loc(#loc3)\n"
    # the old kernels: t * M in 32 bits (M an i32 argument), widened only afterwards
    wrapped = ("%c3_i32 = arith.constant 3 : i32 loc(#loc4)\n%8 = arith.muli %arg12, %c3_i32 : i32 loc(#loc4)\n"
               "%9 = arith.extsi %8 : i32 to i64 loc(#loc4)\n")
    assert aot._narrow_offsets(wide) == 0 and aot._narrow_offsets(wide + narrow) == 1
    assert aot._narrow_offsets(wrapped) == 1
    assert aot._narrow_offsets("%10 = arith.muli %9, %c512_i64 : i64 loc(#loc5)\n") == 0


@triton.jit
def _offset_probe(out_ptr, t, stride, T):
    tl.store(out_ptr, lif_triton._step_offset(t, stride))
    for i in tl.range(T):  # a loop index, as in the kernels
        tl.store(out_ptr + 1 + i, lif_triton._step_offset(i, stride))


def test_time_offsets_do_not_wrap_past_2_31():
    """The offset of step t is computed in 64 bits even when t and the stride are 32-bit values."""
    if "triton" not in backends.available_backends("lif"):
        pytest.skip("triton needs a GPU or TRITON_INTERPRET=1")
    out = torch.zeros(5, dtype=torch.int64, device="cuda" if torch.cuda.is_available() else "cpu")
    stride = 2**30 + 7  # fits in int32; 2 x stride does not
    _offset_probe[(1,)](out, 3, stride, 4)
    assert out.tolist() == [3 * stride, 0, stride, 2 * stride, 3 * stride]
