// The forward and backward of one training micro-batch as a CUDA graph, one graph per input shape.
// Launched kernel by kernel from the host, a medium-size step left the GPU idle a third of the
// time (2026-12-05 profile: 5,068 kernels a step); a replayed graph launches them all at once.
//
// A shape is rows x passage length (rounded up, TrainShape) and whether self-feed is on. Its first
// micro-batch runs eagerly on a side stream (its result counts), then the same work is captured,
// which runs nothing. Later micro-batches of the shape copy their inputs into the graph's input
// buffers and replay it. All graphs share one memory pool: they never run at the same time.
//
// What a replay relies on: the parameters and their gradients keep their storage (so gradients
// are zeroed in place by zero_grads(), never set to none; run() checks), the backward adds into
// them, and the step reads no host data (C3ModelImpl::train_loss). So no gradient hooks (the
// overlapped all-reduce) and no sharded gradients (ZeRO-2) while graphs are on.
//
// On the CPU there are no graphs; GraphMode::kEmulate runs the same buffers and copies eagerly,
// so that the CPU tests check everything but the capture.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "c3/c3_model.h"
#include "model/step_graph.h"

namespace c3::train {

enum class GraphMode { kOff, kCuda, kEmulate };

// C3_TRAIN_GRAPHS: unset or "0" = off (the default until a long GPU run has shown graphs faster
// at batch 64 and within the eager step's memory), "emulate" = the buffers without graphs
// (tests), anything else ("1") = graphs where the device is CUDA and the build can capture them.
GraphMode graph_mode_from_env(at::Device device);
const char* name_of(GraphMode m);

struct GraphedLossOptions {
  GraphMode mode = GraphMode::kOff;
  bool bf16 = false;               // the step runs under bf16 autocast
  int64_t rows = 0;                // micro-batch rows (fewer are padded to this)
  int64_t passage_multiple = 64;   // passage lengths are rounded up to a multiple of this
};

class GraphedLoss {
 public:
  GraphedLoss(cascade::C3Model model, std::vector<at::Tensor> params, const GraphedLossOptions& o);
  ~GraphedLoss();

  // The shape to build micro-batches at (cascade::train_inputs).
  cascade::TrainShape shape() const;
  // Forward and backward of `host` (built at shape()) with the loss sum times `scale` as the
  // objective; gradients add into .grad. Returns [sum of the token losses, hits] as a double
  // tensor on the device, valid until the next call.
  at::Tensor run(const cascade::TrainInputs& host, double scale);
  // Zeroes the parameters' gradients in place.
  void zero_grads();
  int64_t captured() const { return static_cast<int64_t>(entries_.size()); }

 private:
  struct Entry {
    cascade::TrainInputs in;  // the input buffers on the device
    at::Tensor scale;         // fp32 0-dim on the device
    model::StepGraph graph;
  };
  using Key = std::tuple<int64_t, int64_t, bool>;  // rows, targets a row, self-feed

  at::Tensor step(Entry& e);  // what the graph holds
  void check_grads_kept() const;

  cascade::C3Model model_;
  std::vector<at::Tensor> params_;
  GraphedLossOptions opt_;
  at::Device device_;
  std::map<Key, std::unique_ptr<Entry>> entries_;
  const model::StepGraph* pool_ = nullptr;  // the first graph: the others share its memory pool
  std::vector<const void*> grad_ptrs_;      // each gradient's storage when the first graph captured it
};

}  // namespace c3::train
