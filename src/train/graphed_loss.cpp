// GraphedLoss: capture a shape's micro-batch once, replay it for every later one (graphed_loss.h).
#include "train/graphed_loss.h"

#include <fmt/format.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "io/torch_compat.h"
#include "model/device_memory.h"
#include "util/error.h"

namespace c3::train {

GraphMode graph_mode_from_env(at::Device device) {
  const char* v = std::getenv("C3_TRAIN_GRAPHS");
  if (!v || !*v || std::strcmp(v, "0") == 0) return GraphMode::kOff;
  if (std::strcmp(v, "emulate") == 0) return GraphMode::kEmulate;
  return model::StepGraph::available(device) ? GraphMode::kCuda : GraphMode::kOff;
}

bool graph_fits(int64_t graph_bytes, int64_t graphs_alive_bytes, int64_t eager_bytes,
                int64_t room_bytes) {
  // A tenth for fragmentation.
  return graph_bytes + graphs_alive_bytes + eager_bytes <= room_bytes / 10 * 9;
}

int64_t largest_eager_bytes(int64_t peak_bytes, int64_t targets, int64_t max_targets) {
  if (max_targets <= targets || targets <= 0) return peak_bytes;
  return static_cast<int64_t>(static_cast<double>(peak_bytes) * max_targets / targets);
}

bool graph_pays(double eager_s, double replay_s, double min_gain) {
  return replay_s <= (1.0 - min_gain) * eager_s;
}

const char* name_of(GraphMode m) {
  switch (m) {
    case GraphMode::kCuda: return "cuda";
    case GraphMode::kEmulate: return "emulate";
    default: return "off";
  }
}

GraphedLoss::GraphedLoss(cascade::C3Model model, std::vector<at::Tensor> params,
                         const GraphedLossOptions& o)
    : model_(std::move(model)), params_(std::move(params)), opt_(o), device_(model_->device()) {
  C3_CHECK(o.mode != GraphMode::kOff, "GraphedLoss: graphs are off");
  C3_CHECK(o.mode != GraphMode::kCuda || model::StepGraph::available(device_),
           "C3_TRAIN_GRAPHS: this build cannot capture CUDA graphs on {}; set C3_TRAIN_GRAPHS=0",
           device_.str());
  // The step must read no host data: the mask and pooling layouts build theirs from the lengths.
  C3_CHECK(model_->config.query_mask == cascade::QueryMask::kCausal &&
               model_->config.query_pooling == cascade::QueryPooling::kNone,
           "training graphs need the causal query mask and no pooling; set C3_TRAIN_GRAPHS=0");
  const char* v = std::getenv("C3_TRAIN_GRAPHS");
  always_ = v && std::strcmp(v, "always") == 0;
}

GraphedLoss::~GraphedLoss() = default;

cascade::TrainShape GraphedLoss::shape() const { return {opt_.rows, opt_.passage_multiple}; }

at::Tensor GraphedLoss::step(Entry& e) {
  at::Tensor loss;
  cascade::LossSums s;
  {
    compat::AutocastGuard ac(opt_.bf16, device_);
    s = model_->train_loss(e.in);
    loss = s.loss_sum * e.scale;
  }
  loss.backward();
  return at::stack({s.loss_sum.detach().to(at::kDouble), s.n_correct.to(at::kDouble)});
}

namespace {

// Copies src into the buffer dst of the same shape, asynchronously from pinned host memory.
void fill(at::Tensor& dst, const at::Tensor& src) {
  if (!src.defined()) return;
  C3_CHECK(dst.defined() && dst.sizes() == src.sizes(), "GraphedLoss: inputs of another shape");
  dst.copy_(dst.is_cuda() ? src.pin_memory() : src, /*non_blocking=*/dst.is_cuda());
}

}  // namespace

at::Tensor GraphedLoss::run(const cascade::TrainInputs& host, double scale) {
  const Key key{host.target.size(0), host.target.size(1), host.self_feed.defined()};
  auto it = entries_.find(key);
  if (it == entries_.end()) {  // a new shape: its buffers hold this micro-batch
    auto e = std::make_unique<Entry>();
    e->in = host.to(device_);
    e->scale = at::full({}, scale, at::TensorOptions().dtype(at::kFloat).device(device_));
    it = entries_.emplace(key, std::move(e)).first;
  } else {
    Entry& e = *it->second;
    fill(e.in.encoder.ids, host.encoder.ids);
    fill(e.in.encoder.slot_index, host.encoder.slot_index);
    fill(e.in.encoder.positions, host.encoder.positions);
    fill(e.in.target, host.target);
    fill(e.in.reads, host.reads);
    fill(e.in.self_feed, host.self_feed);
    e.in.n_targets = host.n_targets;
    e.scale.fill_(scale);
  }
  Entry& e = *it->second;
  const int64_t n = ++e.runs;
  if (opt_.mode == GraphMode::kEmulate || e.eager) return step(e);
  if (e.graph.captured()) {
    check_grads_kept();
    return n == 4 && !always_ ? measure_replay(e, key) : e.graph.replay();
  }
  if (always_ || n == 3) return capture(e);
  return n == 2 ? measure_eager(e, key) : step(e);
}

at::Tensor GraphedLoss::timed(Entry& e, double* seconds, int64_t* peak_bytes,
                              int64_t* static_bytes) {
  torch::cuda::synchronize();
  const int64_t before = model::device_memory(device_).allocated_bytes;
  *static_bytes = before;
  model::reset_device_peak(device_);
  const auto t0 = std::chrono::steady_clock::now();
  at::Tensor out = e.graph.captured() ? e.graph.replay() : step(e);
  torch::cuda::synchronize();
  *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  *peak_bytes = model::device_memory(device_).peak_allocated_bytes - before;
  return out;
}

at::Tensor GraphedLoss::measure_eager(Entry& e, const Key& key) {
  at::Tensor out = timed(e, &e.eager_s, &e.peak_bytes, &e.static_bytes);
  largest_eager_bytes_ = std::max(largest_eager_bytes_,
      largest_eager_bytes(e.peak_bytes, std::get<1>(key), opt_.max_targets));
  const int64_t room = model::device_memory(device_).total_bytes - e.static_bytes;
  if (!graph_fits(e.peak_bytes, graphs_alive_bytes_, largest_eager_bytes_, room))
    keep_eager(e, key, fmt::format("its graph would not fit: {:.2f} GB beside {:.2f} GB of graphs "
                                   "and {:.2f} GB for the largest eager step, in {:.2f} GB",
                                   e.peak_bytes / 1e9, graphs_alive_bytes_ / 1e9,
                                   largest_eager_bytes_ / 1e9, room / 1e9));
  return out;
}

at::Tensor GraphedLoss::measure_replay(Entry& e, const Key& key) {
  double replay_s = 0;
  int64_t unused_peak = 0, unused_static = 0;
  at::Tensor out = timed(e, &replay_s, &unused_peak, &unused_static);
  const std::string times = fmt::format("replay {:.1f} ms, eager {:.1f} ms", replay_s * 1e3, e.eager_s * 1e3);
  if (!graph_pays(e.eager_s, replay_s)) {
    out = out.clone();  // the graph's output storage goes with it
    e.graph.release();
    graphs_alive_bytes_ -= e.peak_bytes;
    keep_eager(e, key, "its graph is not faster: " + times);
  } else {
    std::fprintf(stderr, "c3 train: step graph kept for %lld rows x %lld targets: %s\n",
                 static_cast<long long>(std::get<0>(key)), static_cast<long long>(std::get<1>(key)),
                 times.c_str());
  }
  return out;
}

void GraphedLoss::keep_eager(Entry& e, const Key& key, const std::string& why) {
  e.eager = true;
  std::fprintf(stderr, "c3 train: no step graph for %lld rows x %lld targets%s: %s\n",
               static_cast<long long>(std::get<0>(key)), static_cast<long long>(std::get<1>(key)),
               std::get<2>(key) ? ", self-feed" : "", why.c_str());
}

// A capture while no other graph is alive warms up on the side stream first (its result counts,
// and it makes the gradients the graphs will write into) and gives the cached memory back for the
// pool; the others are captured straight away and replayed once.
at::Tensor GraphedLoss::capture(Entry& e) {
  const bool alone = captured() == 0;
  if (!pool_) pool_ = std::make_unique<model::StepGraph::PoolId>(model::StepGraph::new_pool());
  model::StepGraph::CaptureOptions c;
  c.pool = pool_.get();
  c.warm_up = alone;
  c.release_cache = alone;
  std::fprintf(stderr, "c3 train: step graph %lld: %lld rows x %lld targets%s\n",
               static_cast<long long>(captured() + 1), static_cast<long long>(e.in.target.size(0)),
               static_cast<long long>(e.in.target.size(1)), e.in.self_feed.defined() ? ", self-feed" : "");
  const at::Tensor out = e.graph.capture([&] { return step(e); }, c);
  graphs_alive_bytes_ += e.peak_bytes;  // 0 with C3_TRAIN_GRAPHS=always: unmeasured
  if (alone) {
    grad_ptrs_.clear();
    for (const auto& p : params_) grad_ptrs_.push_back(p.grad().defined() ? p.grad().data_ptr() : nullptr);
  }
  check_grads_kept();
  return out;
}

int64_t GraphedLoss::captured() const {
  int64_t n = 0;
  for (const auto& [key, e] : entries_) n += e->graph.captured() ? 1 : 0;
  return n;
}

void GraphedLoss::zero_grads() {
  // While no graph holds the gradients' addresses, drop them as the eager step does: the next
  // backward then takes its gradient as it comes instead of adding it to zeros (a kernel a
  // parameter; 4% of a medium step).
  if (opt_.mode == GraphMode::kCuda && captured() == 0) {
    for (const auto& p : params_) p.mutable_grad() = at::Tensor();
    return;
  }
  std::vector<at::Tensor> grads;
  for (const auto& p : params_)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (!grads.empty()) at::_foreach_zero_(grads);
}

// A graph writes gradients where they were when it was captured: a gradient set to none or
// replaced since (an optimizer's zero_grad(set_to_none), a hook) would be written into freed memory.
void GraphedLoss::check_grads_kept() const {
  for (size_t i = 0; i < params_.size(); ++i) {
    const void* now = params_[i].grad().defined() ? params_[i].grad().data_ptr() : nullptr;
    C3_CHECK(now == grad_ptrs_[i], "training graphs: the gradient of parameter {} moved since "
             "it was captured (zeroed to none or replaced); zero it with GraphedLoss::zero_grads",
             i);
  }
}

}  // namespace c3::train
