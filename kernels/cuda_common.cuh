// Shared by lif.cu and mse.cu: fp16/bf16 storage types and float conversions, without CUDA headers
// (PTX cvt instructions; bf16 needs sm_80 or newer), and a block-wide sum.
#pragma once

struct f16 { unsigned short bits; };
struct bf16 { unsigned short bits; };

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(f16 v) {
    float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(v.bits)); return f;
}
__device__ __forceinline__ float to_f32(bf16 v) { return __uint_as_float(((unsigned int)v.bits) << 16); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ f16 from_f32<f16>(float v) {
    f16 r; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r.bits) : "f"(v)); return r;
}
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float v) {
    bf16 r; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.bits) : "f"(v)); return r;
}

// Sum ``value`` over the block (warp shuffles, then one warp over the warps) into out[blockIdx.x].
__device__ __forceinline__ void block_reduce(float value, float* block_sum, float* out) {
    for (int off = 16; off > 0; off >>= 1) value += __shfl_down_sync(0xffffffffu, value, off);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) block_sum[warp] = value;
    __syncthreads();
    if (warp == 0) {
        value = lane < ((blockDim.x + 31) >> 5) ? block_sum[lane] : 0.0f;
        for (int off = 16; off > 0; off >>= 1) value += __shfl_down_sync(0xffffffffu, value, off);
        if (lane == 0) out[blockIdx.x] = value;
    }
}
