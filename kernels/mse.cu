// Membrane MSE, fused (cupy.RawModule): one pass per layer reads the student membrane s and the
// teacher membrane t, writes g = scale (s - t), and reduces (s - t)^2 to one float per block
// (warp shuffles, then one warp over the warps); the caller sums the block partials.
// Grid-stride loop, so any n works with any grid size. No CUDA headers needed. T: the student's
// dtype; Tt: the teacher's (T or float), widened to float as the reference does.

#include "cuda_common.cuh"

template <typename T, typename Tt>
__global__ void membrane_mse(const T* __restrict__ s, const Tt* __restrict__ t, T* __restrict__ g,
                             float* __restrict__ partial, long long n, float scale, int write_grad) {
    __shared__ float warp_sums[32];
    float acc = 0.0f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float d = to_f32(s[i]) - to_f32(t[i]);
        if (write_grad) g[i] = from_f32<T>(d * scale);
        acc += d * d;
    }
    block_reduce(acc, warp_sums, partial);
}
