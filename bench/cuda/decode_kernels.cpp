// Times the decode-step CUDA kernels against the ATen ops they replace, at the decoder shapes of
// Qwen2.5-3B (hidden 2048, MLP 11008, 16 query / 2 key-value heads of 128, vocabulary 151,936),
// bf16, and prints a markdown table with the weight-read bandwidth of each product.
// Built with the kernels (C3_WITH_CUDA_KERNELS); run on a GPU:
//   build-gpu/c3_decode_kernels_bench [--iters N]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "io/torch_compat.h"
#include "model/fused_ops.h"

namespace {

namespace fused = c3::model::fused;

// Median-free but steady: a warm-up, then the mean over `iters` back-to-back launches.
double time_us(const std::function<void()>& fn, int iters) {
  for (int i = 0; i < 5; ++i) fn();
  torch::cuda::synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) fn();
  torch::cuda::synchronize();
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / iters;
}

at::Tensor randn(at::IntArrayRef shape, double scale = 1.0) {
  return (torch::randn(shape) * scale).to(torch::kCUDA).to(at::kBFloat16);
}

void row(const char* what, int64_t rows, double bytes, double ours, double aten) {
  std::printf("| %s | %ld | %.1f | %.1f | %.0f | %.0f | %.2fx |\n", what, rows, ours, aten,
              bytes / ours / 1e3, bytes / aten / 1e3, aten / ours);
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 200;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], "--iters") == 0) iters = std::stoi(argv[i + 1]);
  if (!torch::cuda::is_available() || !fused::kernels_enabled()) {
    std::fprintf(stderr, "needs a GPU and a build with the CUDA kernels\n");
    return 1;
  }
  torch::NoGradGuard ng;
  const int64_t C = 2048, I = 11008, V = 151936, H = 16, Hkv = 2, D = 128;
  std::printf("Decode kernels vs ATen, bf16, %d iterations each (us per call; GB/s of weights "
              "read)\n\n", iters);
  std::printf("| op | rows | c3 kernel us | ATen us | kernel GB/s | ATen GB/s | speed-up |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
  struct Product { const char* name; int64_t n, k; bool bias, silu; };
  const Product products[] = {{"q/k/v + bias", (H + 2 * Hkv) * D, C, true, false},
                              {"o_proj", C, H * D, false, false},
                              {"gate/up + SiLU*mul", 2 * I, C, false, true},
                              {"down_proj", C, I, false, false},
                              {"lm_head", V, C, false, false}};
  for (int64_t rows : {1, 2, 4, 8}) {
    for (const Product& p : products) {
      const at::Tensor w = randn({p.n, p.k}, 0.02);
      const at::Tensor b = p.bias ? randn({p.n}) : at::Tensor();
      const at::Tensor x = randn({rows, p.k});
      const double bytes = static_cast<double>(p.n) * p.k * 2;
      double ours, aten;
      if (p.silu) {
        ours = time_us([&] { fused::gemv_silu_mul(x, w); }, iters);
        aten = time_us([&] { fused::silu_mul(at::linear(x, w)); }, iters);
      } else {
        ours = time_us([&] { fused::gemv(x, w, b); }, iters);
        aten = time_us([&] { at::linear(x, w, b); }, iters);
      }
      row(p.name, rows, bytes, ours, aten);
    }
  }

  // Attention of one step: 100 cached slots in a 256-slot window.
  for (int64_t B : {1, 16}) {
    const int64_t T_max = 512, S = 256, slot = 100;
    const at::Tensor qkv = randn({B, 1, (H + 2 * Hkv) * D});
    at::Tensor k_cache = randn({B, Hkv, T_max, D}), v_cache = randn({B, Hkv, T_max, D});
    const at::Tensor key_valid = at::ones({B, T_max}, torch::dtype(at::kBool).device(torch::kCUDA));
    const at::Tensor pos = at::full({B, 1}, slot, torch::dtype(at::kLong).device(torch::kCUDA));
    const at::Tensor inv = (1.0 / at::pow(10000.0, at::arange(0, D, 2, at::kFloat) / D)).to(torch::kCUDA);
    const at::Tensor emb = at::cat({pos.to(at::kFloat).unsqueeze(-1) * inv, pos.to(at::kFloat).unsqueeze(-1) * inv}, -1);
    const at::Tensor cos = emb.cos(), sin = emb.sin();
    const at::Tensor slot_t = at::full({1}, slot, pos.options());
    const at::Tensor slot_index = at::arange(T_max, pos.options());
    const double ours = time_us([&] {
      fused::decode_attention(qkv, cos, sin, k_cache, v_cache, slot_t, key_valid, S, H, D);
    }, iters);
    const double aten = time_us([&] {  // attention.cpp's path without the kernel
      const at::Tensor q = fused::rotary(qkv.narrow(-1, 0, H * D).view({B, 1, H, D}).transpose(1, 2), cos, sin);
      const at::Tensor k = fused::rotary(qkv.narrow(-1, H * D, Hkv * D).view({B, 1, Hkv, D}).transpose(1, 2), cos, sin);
      const at::Tensor v = qkv.narrow(-1, (H + Hkv) * D, Hkv * D).view({B, 1, Hkv, D}).transpose(1, 2);
      k_cache.index_copy_(2, slot_t, k);
      v_cache.index_copy_(2, slot_t, v);
      const at::Tensor allowed = (key_valid.narrow(1, 0, S) & slot_index.narrow(0, 0, S).le(slot_t)).view({B, 1, 1, S});
      c3::compat::sdpa(q.reshape({B, Hkv, H / Hkv, D}), k_cache.narrow(2, 0, S),
                       v_cache.narrow(2, 0, S), allowed.expand({B, 1, H / Hkv, S}), false);
    }, iters);
    const double bytes = 2.0 * B * Hkv * (slot + 1) * D * 2;  // keys and values read
    row("attention (101 slots)", B, bytes, ours, aten);
  }

  for (int64_t rows : {1, 16}) {
    const at::Tensor x = randn({rows, 1, C}), d = randn({rows, 1, C}), w = randn({C});
    const double ours = time_us([&] { fused::add_rms_norm(x, d, w, 1e-6); }, iters);
    const double aten = time_us([&] { fused::rms_norm(x + d, w, 1e-6); }, iters);
    row("residual add + RMSNorm", rows, 3.0 * rows * C * 2, ours, aten);
  }
  std::printf("\nThese are single launches, each timed back to back: launch gaps count, which a "
              "CUDA graph removes in the decode loop.\n");
  return 0;
}
