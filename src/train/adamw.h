// AdamW over whole parameter lists at once: one fused kernel per step on CUDA with LibTorch 2.x
// (at::_fused_adamw_), multi-tensor `_foreach_` ops elsewhere. torch::optim::AdamW loops over
// parameters in C++ (about ten kernels each), which made the optimizer step a large share of a
// training step at realistic sizes. Gradient clipping is folded in without a host sync on CUDA.
#pragma once
#include <ATen/ATen.h>

#include <string>
#include <vector>

namespace c3::train {

struct AdamWConfig {
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
};

class AdamW {
 public:
  // Two groups: with and without weight decay (norms, biases, Q, embeddings). The tensors may be
  // parameters or views of parts of them (ZeRO's shards; see sharded_adamw.h).
  AdamW(std::vector<at::Tensor> decay, std::vector<at::Tensor> no_decay, double weight_decay,
        AdamWConfig cfg);

  // Clips the global gradient L2 norm to `max_norm` (0 = no clipping), then updates every
  // parameter that has a gradient. Returns the norm before clipping as a 0-dim fp32 tensor on the
  // parameters' device: reading it (.item()) is the caller's choice, and the only host sync.
  at::Tensor step(double lr, double max_norm);
  // The same with gradients from the caller, one per tensor in constructor order (decay group,
  // then no-decay; undefined: none this step), clipped by `norm`, the global norm of all of them.
  void step(const std::vector<at::Tensor>& grads, const at::Tensor& norm, double lr, double max_norm);
  void zero_grad();  // sets grads to undefined (frees them, like set_to_none)

  int64_t steps_taken() const { return step_; }
  void set_steps_taken(int64_t n) { step_ = n; }

  // Tensor i's state, in constructor order: first and second moments, and its step count (a
  // 0-dim fp32 tensor: a tensor skips the steps where it has no gradient).
  struct State {
    at::Tensor param, exp_avg, exp_avg_sq, step;
  };
  size_t size() const;
  State state(size_t i) const;

  // The checkpoint format before sharded state (optimizer.pt, a LibTorch archive): read so that
  // older checkpoints resume. load() checks every shape and names the file.
  void load_archive(const std::string& path);

 private:
  struct Group {
    std::vector<at::Tensor> params, exp_avg, exp_avg_sq, step_t;  // step_t: fused kernel's counters
    double weight_decay = 0;
  };
  void update_group(Group& g, const std::vector<at::Tensor>& grads, double lr,
                    const at::Tensor& inv_clip, double clip_coef);
  std::vector<Group> groups_;
  AdamWConfig cfg_;
  int64_t step_ = 0;
};

}  // namespace c3::train
