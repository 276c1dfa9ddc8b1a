// Multi-tensor AdamW (see adamw.h). The math is torch::optim::AdamW's:
//   p -= lr * wd * p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
#include "train/adamw.h"

#include <torch/serialize.h>

#include <cmath>

#include "io/torch_compat.h"
#include "util/error.h"

namespace c3::train {

AdamW::AdamW(std::vector<at::Tensor> decay, std::vector<at::Tensor> no_decay, double weight_decay,
             AdamWConfig cfg)
    : cfg_(cfg) {
  at::NoGradGuard ng;
  for (int gi = 0; gi < 2; ++gi) {
    Group g;
    g.params = gi == 0 ? std::move(decay) : std::move(no_decay);
    g.weight_decay = gi == 0 ? weight_decay : 0.0;
    for (const auto& p : g.params) {
      g.exp_avg.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
      g.exp_avg_sq.push_back(at::zeros_like(p, at::MemoryFormat::Preserve));
      g.step_t.push_back(at::zeros({}, p.options().dtype(at::kFloat)));
    }
    groups_.push_back(std::move(g));
  }
}

void AdamW::update_group(Group& g, const std::vector<at::Tensor>& grads, double lr,
                         const at::Tensor& inv_clip, double clip_coef) {
  std::vector<at::Tensor> ps, gs, m, v, st;
  for (size_t i = 0; i < g.params.size(); ++i) {
    if (!grads[i].defined()) continue;  // no grad this step: untouched, like torch's
    ps.push_back(g.params[i]);
    gs.push_back(grads[i]);
    m.push_back(g.exp_avg[i]);
    v.push_back(g.exp_avg_sq[i]);
    st.push_back(g.step_t[i]);
  }
  if (ps.empty()) return;
  // Per-parameter step counts (a parameter may have skipped steps without a grad). The fused
  // kernel reads them already incremented, as torch.optim does before calling it.
  at::_foreach_add_(st, 1.0);
  if (compat::fused_adamw_(ps, gs, m, v, st, lr, cfg_.beta1, cfg_.beta2, g.weight_decay, cfg_.eps,
                           inv_clip))
    return;
  if (clip_coef < 1.0) at::_foreach_mul_(gs, clip_coef);
  std::vector<at::Scalar> step_size, bc2_sqrt;
  for (const auto& t : st) {
    const double n = t.item<double>();  // CPU tensors on this path: no device sync
    step_size.emplace_back(-lr / (1.0 - std::pow(cfg_.beta1, n)));
    bc2_sqrt.emplace_back(std::sqrt(1.0 - std::pow(cfg_.beta2, n)));
  }
  if (g.weight_decay != 0) at::_foreach_mul_(ps, 1.0 - lr * g.weight_decay);
  at::_foreach_mul_(m, cfg_.beta1);
  at::_foreach_add_(m, gs, 1.0 - cfg_.beta1);
  at::_foreach_mul_(v, cfg_.beta2);
  at::_foreach_addcmul_(v, gs, gs, 1.0 - cfg_.beta2);
  std::vector<at::Tensor> denom = at::_foreach_sqrt(v);
  at::_foreach_div_(denom, bc2_sqrt);
  at::_foreach_add_(denom, cfg_.eps);
  at::_foreach_addcdiv_(ps, m, denom, step_size);
}

at::Tensor AdamW::step(double lr, double max_norm) {
  at::NoGradGuard ng;
  std::vector<at::Tensor> grads, defined;
  at::TensorOptions opts;
  for (auto& g : groups_)
    for (auto& p : g.params) {
      opts = p.options().dtype(at::kFloat);
      grads.push_back(p.grad());
      if (p.grad().defined()) defined.push_back(p.grad());
    }
  if (defined.empty()) {
    ++step_;
    return at::zeros({}, opts);
  }
  at::Tensor norm = at::stack(at::_foreach_norm(defined, 2)).to(at::kFloat).norm();  // 0-dim
  step(grads, norm, lr, max_norm);
  return norm;
}

void AdamW::step(const std::vector<at::Tensor>& grads, const at::Tensor& norm, double lr,
                 double max_norm) {
  at::NoGradGuard ng;
  TORCH_CHECK(grads.size() == size(), "AdamW::step: ", grads.size(), " grads for ", size(),
              " tensors");
  ++step_;
  at::Tensor inv_clip;   // fused path: grads / max(1, norm / max_norm)
  double clip_coef = 1;  // multi-tensor path
  if (max_norm > 0) {
    if (norm.is_cuda() && compat::kTorch2) {
      inv_clip = ((norm + 1e-6) / max_norm).clamp_min(1.0);
    } else {
      clip_coef = max_norm / (norm.item<double>() + 1e-6);
    }
  }
  size_t first = 0;
  for (auto& g : groups_) {
    const std::vector<at::Tensor> gs(grads.begin() + first, grads.begin() + first + g.params.size());
    update_group(g, gs, lr, inv_clip, clip_coef);
    first += g.params.size();
  }
}

size_t AdamW::size() const {
  size_t n = 0;
  for (const auto& g : groups_) n += g.params.size();
  return n;
}

AdamW::State AdamW::state(size_t i) const {
  for (const auto& g : groups_) {
    if (i < g.params.size()) return {g.params[i], g.exp_avg[i], g.exp_avg_sq[i], g.step_t[i]};
    i -= g.params.size();
  }
  TORCH_CHECK(false, "AdamW::state: index out of range");
}

void AdamW::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params) p.mutable_grad() = at::Tensor();
}

void AdamW::load_archive(const std::string& path) {
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const c10::Error& e) {
    c3::fail("optimizer state '{}' could not be read ({}); resume from another checkpoint",
            path, std::string(e.what_without_backtrace()).substr(0, 200));
  }
  auto read = [&](const std::string& key, const at::Tensor& like) {
    at::Tensor t;
    C3_CHECK(ar.try_read(key, t), "optimizer state '{}' has no '{}': it was written for another "
             "model or by another c3 version; resume from a matching checkpoint", path, key);
    C3_CHECK(t.sizes() == like.sizes(), "optimizer state '{}': '{}' has shape {} but the model "
             "needs {}; the checkpoint belongs to another model", path, key,
             c10::str(t.sizes()), c10::str(like.sizes()));
    return t;
  };
  at::NoGradGuard ng;
  step_ = read("step", at::scalar_tensor(int64_t(0))).item<int64_t>();
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    Group& g = groups_[gi];
    const int64_t n = read(fmt::format("g{}.count", gi), at::scalar_tensor(int64_t(0))).item<int64_t>();
    C3_CHECK(n == static_cast<int64_t>(g.params.size()), "optimizer state '{}': group {} holds {} "
             "parameters but the model trains {}; were different parts frozen?", path, gi, n,
             g.params.size());
    for (size_t i = 0; i < g.params.size(); ++i) {
      const std::string k = fmt::format("g{}.p{}.", gi, i);
      g.exp_avg[i].copy_(read(k + "exp_avg", g.exp_avg[i]));
      g.exp_avg_sq[i].copy_(read(k + "exp_avg_sq", g.exp_avg_sq[i]));
      g.step_t[i].copy_(read(k + "step", g.step_t[i]));
    }
  }
}

}  // namespace c3::train
