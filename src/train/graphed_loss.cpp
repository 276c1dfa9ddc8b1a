// GraphedLoss: capture a shape's micro-batch once, replay it for every later one (graphed_loss.h).
#include "train/graphed_loss.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "io/torch_compat.h"
#include "util/error.h"

namespace c3::train {

GraphMode graph_mode_from_env(at::Device device) {
  const char* v = std::getenv("C3_TRAIN_GRAPHS");
  if (!v || !*v || std::strcmp(v, "0") == 0) return GraphMode::kOff;
  if (std::strcmp(v, "emulate") == 0) return GraphMode::kEmulate;
  return model::StepGraph::available(device) ? GraphMode::kCuda : GraphMode::kOff;
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
    std::fprintf(stderr, "c3 train: step graph %zu: %lld rows x %lld targets%s\n", entries_.size() + 1,
                 static_cast<long long>(std::get<0>(key)), static_cast<long long>(std::get<1>(key)),
                 std::get<2>(key) ? ", self-feed" : "");
    auto e = std::make_unique<Entry>();
    e->in = host.to(device_);
    e->scale = at::full({}, scale, at::TensorOptions().dtype(at::kFloat).device(device_));
    Entry& ref = *e;
    entries_.emplace(key, std::move(e));
    if (opt_.mode == GraphMode::kEmulate) return step(ref);
    // The first graph warms up (and gives the warm-up's cached memory back for its pool); the
    // later ones are captured straight away and replayed once.
    model::StepGraph::CaptureOptions c;
    c.share_pool_with = pool_;
    c.warm_up = pool_ == nullptr;
    c.release_cache = pool_ == nullptr;
    const at::Tensor first = ref.graph.capture([&] { return step(ref); }, c);
    if (!pool_) {
      pool_ = &ref.graph;
      for (const auto& p : params_) grad_ptrs_.push_back(p.grad().defined() ? p.grad().data_ptr() : nullptr);
    }
    check_grads_kept();
    return first;
  }
  Entry& e = *it->second;
  fill(e.in.encoder.ids, host.encoder.ids);
  fill(e.in.encoder.slot_index, host.encoder.slot_index);
  fill(e.in.encoder.positions, host.encoder.positions);
  fill(e.in.target, host.target);
  fill(e.in.reads, host.reads);
  fill(e.in.self_feed, host.self_feed);
  e.in.n_targets = host.n_targets;
  e.scale.fill_(scale);
  if (opt_.mode == GraphMode::kEmulate) return step(e);
  check_grads_kept();
  return e.graph.replay();
}

void GraphedLoss::zero_grads() {
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
