// Multi-step LIF neuron (optionally quantized membrane): CUDA C for cupy.RawModule.
//
// The algorithm of lif_reference.py, one thread per neuron, all T steps in registers: the forward
// pass charges, quantizes (grid units, ties up, IEEE division), fires, resets; the backward pass
// runs the reverse-time recurrence, folds in the gradient on h_seq, and reduces Δ's gradient per
// block. Bytes per element and step as in lif_triton.py. No CUDA headers are needed: fp16 and bf16
// are converted with PTX cvt instructions (bf16 needs sm_80 or newer).
//
// Layout: x, grad_s and grad_h are [T, M] with a time stride and an element stride of 1 or 0;
// everything written is contiguous [T, M] or [M]. Flags are runtime arguments (uniform branches).
// Offsets are 64-bit. Tin: the input's dtype; Ttgt: the teacher membrane's (Tin or float), read and
// widened to float, as the reference does.

#include "cuda_common.cuh"

#define FRAC_OUT 2.0f   // residual q - h lies in [-1/2, 1/2]; 2 marks "below the grid"
#define FRAC_TOP -2.0f  // and <= -2 "above its top level, the threshold" (holds -2 - h): it fired

__device__ __forceinline__ float clampf(float v, float lo, float hi) { return fminf(fmaxf(v, lo), hi); }

// Surrogate derivative σ'(u): 0 atan, 1 sigmoid, 2 piecewise quadratic, 3 rectangular window.
__device__ __forceinline__ float surrogate_grad(float u, float alpha, int kind) {
    if (kind == 0) {
        const float a = alpha * 0.5f;
        const float au = 3.14159265358979f * a * u;
        return a / (1.0f + au * au);
    }
    if (kind == 1) {
        const float sg = 1.0f / (1.0f + expf(-alpha * u));
        return (1.0f - sg) * sg * alpha;
    }
    if (kind == 2) return fabsf(u) > 1.0f / alpha ? 0.0f : alpha - alpha * alpha * fabsf(u);
    return fabsf(u) < 0.5f / alpha ? alpha : 0.0f;
}

template <typename Tin, typename Ttgt>
__global__ void lif_fwd(const Tin* __restrict__ x, long long sxt, long long sxm,
                        const float* __restrict__ v0, const float* __restrict__ delta,
                        Tin* __restrict__ s_out, float* __restrict__ v_last,
                        float* __restrict__ h_state, signed char* __restrict__ q_state,
                        f16* __restrict__ frac_out, Tin* __restrict__ h_out,
                        const Ttgt* __restrict__ target, float* __restrict__ mse_partial,
                        long long M, int T, float tau, float v_th, float v_rst, float vr_rel,
                        int quant, int hard, int decay, int need_h, int save, int has_target,
                        int qmin, int qmax, int code_offset) {
    __shared__ float block_sum[32];
    float err = 0.0f;
    const float fqmin = (float)qmin, fqmax = (float)qmax;
    float d = 1.0f, theta = 0.0f, r = v_rst;
    if (quant) {
        d = delta[0];
        theta = fmaxf(floorf(__fdiv_rn(v_th, d) + 0.5f), 1.0f);
        r = clampf(floorf(__fdiv_rn(vr_rel, d) + 0.5f), fqmin, fqmax);
    }
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < M;
         i += (long long)gridDim.x * blockDim.x) {
        float v = v0[i];
        if (quant) v = floorf(__fdiv_rn(__fsub_rn(v, v_th), d) + 0.5f);  // codes relative to V_th
        for (int t = 0; t < T; ++t) {
            float xt = to_f32(x[t * sxt + i * sxm]);
            if (quant) xt = __fdiv_rn(xt, d);
            const float h = decay ? __fadd_rn(v, __fdiv_rn(__fsub_rn(xt, __fsub_rn(v, r)), tau))
                                  : __fadd_rn(__fsub_rn(v, __fdiv_rn(__fsub_rn(v, r), tau)), xt);
            const long long o = t * M + i;
            float s;
            if (quant) {
                float q = clampf(floorf(h + 0.5f), fqmin, fqmax);
                if (h != h) q = fqmin;
                const float frac = h < fqmin ? FRAC_OUT : (h > fqmax ? FRAC_TOP - h : q - h);
                s = q >= 0.0f ? 1.0f : 0.0f;
                v = hard ? (s > 0.0f ? r : q) : q - theta * s;
                const float hq = __fadd_rn(v_th, __fmul_rn(q, d));  // volts, no fused multiply-add
                if (save) {
                    q_state[o] = (signed char)(q + (float)code_offset);
                    frac_out[o] = from_f32<f16>(frac);
                }
                if (need_h) h_out[o] = from_f32<Tin>(hq);
                if (has_target) { const float e = hq - to_f32(target[o]); err += e * e; }
            } else {
                s = h >= v_th ? 1.0f : 0.0f;
                v = hard ? __fadd_rn(__fmul_rn(h, 1.0f - s), __fmul_rn(v_rst, s))
                         : __fsub_rn(h, __fmul_rn(v_th, s));
                if (save) h_state[o] = h;
                if (need_h) h_out[o] = from_f32<Tin>(h);
                if (has_target) { const float e = h - to_f32(target[o]); err += e * e; }
            }
            s_out[o] = from_f32<Tin>(s);
        }
        v_last[i] = quant ? __fadd_rn(v_th, __fmul_rn(v, d)) : v;
    }
    if (has_target) block_reduce(err, block_sum, mse_partial);
}

template <typename Tin, typename Ttgt>
__global__ void lif_bwd(const Tin* __restrict__ gs, long long sgt, long long sgm,
                        const float* __restrict__ gv_last, const Tin* __restrict__ gh,
                        long long sht, long long shm,
                        const float* __restrict__ h_state, const signed char* __restrict__ q_state,
                        const f16* __restrict__ frac_in, const float* __restrict__ delta,
                        Tin* __restrict__ gx, float* __restrict__ gv0, float* __restrict__ gdelta_partial,
                        const Ttgt* __restrict__ target, const float* __restrict__ coef_ptr,
                        long long M, int T, float tau, float v_th, float v_rst, float vr_rel, float alpha,
                        float shift, int quant, int hard, int decay, int detach, int sg_kind, int shifted,
                        int has_gv, int has_gh,
                        int has_target, int qmin, int qmax, int code_offset) {
    __shared__ float block_sum[32];
    const float fqmin = (float)qmin, fqmax = (float)qmax;
    const float inv_tau = 1.0f / tau;
    float d = 1.0f, theta = 0.0f, r = v_rst;
    if (quant) {
        d = delta[0];
        theta = fmaxf(floorf(__fdiv_rn(v_th, d) + 0.5f), 1.0f);
        r = clampf(floorf(__fdiv_rn(vr_rel, d) + 0.5f), fqmin, fqmax);
    }
    float gdelta = 0.0f;
    const float coef = has_target ? coef_ptr[0] : 0.0f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < M;
         i += (long long)gridDim.x * blockDim.x) {
        float gv = has_gv ? gv_last[i] : 0.0f;
        for (int t = T - 1; t >= 0; --t) {
            const long long o = t * M + i;
            float g_s = to_f32(gs[t * sgt + i * sgm]);
            float u, s, dv_ds, q = 0.0f, fc = 0.0f, hv = 0.0f;
            if (quant) {
                q = (float)q_state[o] - (float)code_offset;
                fc = to_f32(frac_in[o]);
                s = q >= 0.0f ? 1.0f : 0.0f;
                u = q * d;
                if (shifted) {  // σ' at the membrane before rounding (grid units), read back from the residual
                    const float h_pre = fc == FRAC_OUT ? q : (fc <= FRAC_TOP ? FRAC_TOP - fc : q - fc);
                    u = (h_pre + shift) * d;
                }
                dv_ds = hard ? (r - q) * d : -theta * d;
            } else {
                const float h = h_state[o];
                hv = h;
                u = h - v_th;
                s = u >= 0.0f ? 1.0f : 0.0f;
                dv_ds = hard ? v_rst - h : -v_th;
            }
            const float dv_dh = hard ? 1.0f - s : 1.0f;
            if (!detach) g_s += gv * dv_ds;
            const float g_u = g_s * surrogate_grad(u, alpha, sg_kind);
            float g_hq = g_u + gv * dv_dh;
            if (has_gh) g_hq += to_f32(gh[t * sht + i * shm]);
            if (has_target) g_hq += coef * ((quant ? v_th + q * d : hv) - to_f32(target[o]));
            float g_h = g_hq;
            if (quant) {
                const bool below = fc == FRAC_OUT, clipped = below || fc <= FRAC_TOP;
                const float lsq = clipped ? q : fc;
                const float dv_dd = hard ? r * s : -theta * s;
                g_h = below ? 0.0f : g_hq;
                gdelta += g_hq * lsq + gv * dv_dd + g_h * (r * inv_tau);
            }
            gx[o] = from_f32<Tin>(decay ? g_h * inv_tau : g_h);
            gv = g_h - g_h * inv_tau;
        }
        gv0[i] = gv;
    }
    if (quant) block_reduce(gdelta, block_sum, gdelta_partial);  // Δ's gradient, per block
}
