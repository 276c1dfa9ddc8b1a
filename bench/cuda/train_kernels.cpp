// Times the element-wise steps of a training step, forward and backward, each as c3 trains it (its
// autograd node with CUDA kernels) and as the unfused ATen ops do, at a layer of the medium config
// with 64 passages of 512 tokens (hidden 1024, MLP 2816, 16 query / 4 key-value heads of 64) under
// bf16 autocast's dtypes. Prints a markdown table with each one's memory traffic over its time
// against the card's bandwidth: these steps are memory-bound, so that share is how near the
// hardware's limit they run. Built with the kernels (C3_WITH_CUDA_KERNELS); run on a GPU:
//   build-gpu/c3_train_kernels_bench [--iters N] [--rows N]
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "eval/device_limits.h"
#include "model/add_rms_norm_autograd.h"
#include "model/fused_ops.h"
#include "model/rms_norm_autograd.h"
#include "model/rotary_autograd.h"
#include "model/silu_mul_autograd.h"

namespace {

namespace fused = c3::model::fused;
using Tensors = std::vector<at::Tensor>;

// A warm-up, then the mean over `iters` back-to-back calls.
double time_us(const std::function<void()>& fn, int iters) {
  for (int i = 0; i < 3; ++i) fn();
  torch::cuda::synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) fn();
  torch::cuda::synchronize();
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
         iters;
}

at::Tensor randn(at::IntArrayRef shape, at::ScalarType t, double scale = 1.0) {
  return (torch::randn(shape, torch::kCUDA) * scale).to(t);
}

// One step both ways: `fwd` maps leaves to outputs; backward takes one gradient per output.
struct Step {
  std::function<Tensors(const Tensors&)> fwd;
};

// Forward alone (no autograd) and forward + backward, in microseconds.
std::pair<double, double> time_step(const Step& s, const Tensors& inputs, int iters) {
  Tensors leaves;
  for (const auto& x : inputs) leaves.push_back(x.detach().requires_grad_(x.is_floating_point()));
  Tensors grads;
  for (const auto& y : s.fwd(leaves)) grads.push_back(torch::randn_like(y));
  const double fwd = time_us(
      [&] {
        torch::NoGradGuard ng;
        s.fwd(inputs);
      },
      iters);
  const double both = time_us(
      [&] {
        for (auto& l : leaves) l.mutable_grad().reset();
        torch::autograd::backward(s.fwd(leaves), grads);
      },
      iters);
  return {fwd, both};
}

void row(const char* what, double bytes, std::pair<double, double> ours,
         std::pair<double, double> aten, double bandwidth) {
  const double gbs = bytes / ours.second / 1e3;
  std::printf("| %s | %.1f | %.1f | %.1f | %.1f | %.0f | %.0f%% | %.2fx |\n", what, ours.first,
              ours.second, aten.first, aten.second, gbs, 100 * gbs * 1e9 / bandwidth,
              aten.second / ours.second);
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 50;
  int64_t N = 64 * 512;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--iters") == 0) iters = std::stoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--rows") == 0) N = std::stoll(argv[i + 1]);
  }
  if (!torch::cuda::is_available() || !fused::kernels_enabled()) {
    std::fprintf(stderr, "needs a GPU and a build with the CUDA kernels\n");
    return 1;
  }
  const int64_t C = 1024, I = 2816, H = 16, Hkv = 4, D = 64, T = 512, B = N / T;
  const auto limits = c3::eval::limits_for_device(c3::eval::cuda_device_name(torch::kCUDA));
  std::printf(
      "Training's element-wise steps, %ld tokens (hidden %ld, MLP %ld, %ld/%ld heads of "
      "%ld), %d iterations each; %s\n\n",
      N, C, I, H, Hkv, D, iters, limits.describe().c_str());
  std::printf(
      "| step | c3 fwd us | c3 fwd+bwd us | ATen fwd us | ATen fwd+bwd us | c3 GB/s | "
      "of bandwidth | ATen / c3 |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");

  // Residual add + RMSNorm: fp32 stream, bf16 branch, bf16 into the next GEMM. Least traffic:
  // forward x 4 + delta 2 + h 4 + y 2 bytes an element, backward gy 2 + gh 4 + h 4 + gx 4 +
  // gdelta 2.
  {
    const Tensors in = {randn({N, C}, at::kFloat, 3.0), randn({N, C}, at::kBFloat16),
                        randn({C}, at::kFloat).abs() + 0.5};
    const Step ours{[](const Tensors& v) {
      const auto [h, y] = fused::add_rms_norm_autograd(v[0], v[1], v[2], 1e-6, at::kBFloat16);
      return Tensors{h, y};
    }};
    const Step aten{[](const Tensors& v) {
      const at::Tensor h = v[0] + v[1];
      return Tensors{h, fused::reference::rms_norm(h, v[2], 1e-6).to(at::kBFloat16)};
    }};
    row("residual add + RMSNorm", 28.0 * N * C, time_step(ours, in, iters),
        time_step(aten, in, iters), limits.bandwidth);
  }
  // RMSNorm alone on the fp32 stream (each stack's first norm): forward 4 + 4, backward 4 + 4 + 4.
  {
    const Tensors in = {randn({N, C}, at::kFloat, 3.0), randn({C}, at::kFloat).abs() + 0.5};
    const Step ours{
        [](const Tensors& v) { return Tensors{fused::rms_norm_autograd(v[0], v[1], 1e-6)}; }};
    const Step aten{
        [](const Tensors& v) { return Tensors{fused::reference::rms_norm(v[0], v[1], 1e-6)}; }};
    row("RMSNorm (fp32)", 20.0 * N * C, time_step(ours, in, iters), time_step(aten, in, iters),
        limits.bandwidth);
  }
  // SiLU·mul on bf16 gate/up [N, 2I]: forward 4I + 2I bytes a row, backward 4I + 2I + 4I.
  {
    const Tensors in = {randn({N, 2 * I}, at::kBFloat16, 2.0)};
    const Step ours{[](const Tensors& v) { return Tensors{fused::silu_mul_autograd(v[0])}; }};
    const Step aten{[](const Tensors& v) { return Tensors{fused::reference::silu_mul(v[0])}; }};
    row("SiLU * mul", 16.0 * N * I, time_step(ours, in, iters), time_step(aten, in, iters),
        limits.bandwidth);
  }
  // RoPE on q and k as attention makes them (views of the projection): 2 + 2 bytes an element
  // each way.
  {
    const at::Tensor pos = at::arange(T, torch::dtype(at::kFloat).device(torch::kCUDA));
    const at::Tensor inv =
        (1.0 / at::pow(10000.0, at::arange(0, D, 2, at::kFloat) / D)).to(torch::kCUDA);
    const at::Tensor f = pos.unsqueeze(-1) * inv;
    const at::Tensor emb = at::cat({f, f}, -1).unsqueeze(0).expand({B, T, D}).contiguous();
    const at::Tensor cos = emb.cos(), sin = emb.sin();
    const Tensors in = {randn({B, T, H, D}, at::kBFloat16), randn({B, T, Hkv, D}, at::kBFloat16)};
    const Step ours{[&](const Tensors& v) {
      return Tensors{fused::rotary_autograd(v[0].transpose(1, 2), cos, sin),
                     fused::rotary_autograd(v[1].transpose(1, 2), cos, sin)};
    }};
    const Step aten{[&](const Tensors& v) {
      return Tensors{fused::reference::rotary(v[0].transpose(1, 2), cos, sin),
                     fused::reference::rotary(v[1].transpose(1, 2), cos, sin)};
    }};
    row("RoPE on q and k", 8.0 * N * (H + Hkv) * D, time_step(ours, in, iters),
        time_step(aten, in, iters), limits.bandwidth);
  }
  std::printf(
      "\nGB/s: the least traffic of forward + backward over c3's time for both. Each step "
      "is timed alone, back to back, launch gaps included.\n");
  return 0;
}
