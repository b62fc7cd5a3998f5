// Membrane MSE, fused (cupy.RawModule): one pass per layer reads the student membrane s and the
// teacher membrane t, writes g = scale (s - t), and reduces (s - t)^2 to one float per block
// (warp shuffles, then one warp over the warps); the caller sums the block partials.
// Grid-stride loop, so any n works with any grid size. No CUDA headers needed.

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

template <typename T>
__global__ void membrane_mse(const T* __restrict__ s, const T* __restrict__ t, T* __restrict__ g,
                             float* __restrict__ partial, long long n, float scale, int write_grad) {
    __shared__ float warp_sums[32];
    float acc = 0.0f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float d = to_f32(s[i]) - to_f32(t[i]);
        if (write_grad) g[i] = from_f32<T>(d * scale);
        acc += d * d;
    }
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sums[warp] = acc;
    __syncthreads();
    if (warp == 0) {
        acc = lane < ((blockDim.x + 31) >> 5) ? warp_sums[lane] : 0.0f;
        for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
        if (lane == 0) partial[blockIdx.x] = acc;
    }
}

#ifdef MDSNN_COMPILE_CHECK
template __global__ void membrane_mse<float>(const float*, const float*, float*, float*, long long, float, int);
template __global__ void membrane_mse<f16>(const f16*, const f16*, f16*, float*, long long, float, int);
template __global__ void membrane_mse<bf16>(const bf16*, const bf16*, bf16*, float*, long long, float, int);
#endif
