// The forward and backward of one training micro-batch as a CUDA graph, one graph per input shape.
// Launched kernel by kernel from the host, a medium-size step left the GPU idle a third of the
// time (2026-12-05 profile: 5,068 kernels a step); a replayed graph launches them all at once.
//
// A shape is rows x passage length (rounded up, TrainShape) and whether self-feed is on. A graph
// is kept only where it pays and fits: at medium size, batch 64, one gained 0.5%, and graphs of
// 16 length buckets ran out of memory on an 80 GB card (2026-12-05). So a shape's micro-batches go:
//   1st  eager (warms up allocator and kernels);
//   2nd  eager, timed, its memory peak taken: no graph where it would not fit (graph_fits);
//        the graph of a shape that stays eager is never captured, so its memory stays free;
//   3rd  captured (the first capture of a run warms up on the side stream first: its result
//        counts; later ones replay once after capturing, since a capture runs nothing);
//   4th  replayed, timed: the graph is released where it is not faster (graph_pays);
//   then replayed, or eager where the shape has no graph.
// Replays copy the micro-batch into the graph's input buffers. All graphs share one memory pool:
// they never run at the same time. C3_TRAIN_GRAPHS=always captures each shape at once, unmeasured.
//
// What a replay relies on: the parameters and their gradients keep their storage (so while a graph
// is alive, gradients are zeroed in place by zero_grads(), never set to none; replays check), the backward adds into
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
// (tests), anything else ("1") = graphs where the device is CUDA and the build can capture them
// and where they pay; "always" = a graph for every shape, unmeasured.
GraphMode graph_mode_from_env(at::Device device);
const char* name_of(GraphMode m);

// Whether a shape's graph fits. Counted as if each graph kept its eager step's peak for itself
// (a shared pool may reuse memory across graphs, but counting on it ran a medium run out of
// memory on 2026-12-05): the graphs alive, this one, and the largest eager step the run may
// still take must fit together in `room`, what the weights, gradients and optimizer state leave.
bool graph_fits(int64_t graph_bytes, int64_t graphs_alive_bytes, int64_t eager_bytes,
                int64_t room_bytes);
// The largest eager step a run may take, from a step's peak at `targets` a row: activations grow
// with the row length, so the peak is scaled to `max_targets` (0 = unknown: the peak itself).
int64_t largest_eager_bytes(int64_t peak_bytes, int64_t targets, int64_t max_targets);
// Whether a shape's graph pays: its replay took at most (1 - min_gain) of the eager step's time.
bool graph_pays(double eager_s, double replay_s, double min_gain = 0.03);

struct GraphedLossOptions {
  GraphMode mode = GraphMode::kOff;
  bool bf16 = false;               // the step runs under bf16 autocast
  int64_t rows = 0;                // micro-batch rows (fewer are padded to this)
  int64_t passage_multiple = 64;   // passage lengths are rounded up to a multiple of this
  int64_t max_targets = 0;         // the longest row the run builds (0 = unknown)
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
  // Zeroes the parameters' gradients: in place while a graph writes into them, else (no graph
  // captured, or every one released) set to none as the eager step does; in place when emulating.
  void zero_grads();
  int64_t captured() const;

 private:
  struct Entry {
    cascade::TrainInputs in;  // the input buffers on the device
    at::Tensor scale;         // fp32 0-dim on the device
    model::StepGraph graph;
    int64_t runs = 0;         // micro-batches of this shape so far
    double eager_s = 0;       // the timed eager micro-batch
    int64_t peak_bytes = 0;   // its memory peak
    int64_t static_bytes = 0; // in tensors before it: weights, gradients, optimizer state
    bool eager = false;       // no graph: it would not fit or did not pay
  };
  using Key = std::tuple<int64_t, int64_t, bool>;  // rows, targets a row, self-feed

  at::Tensor step(Entry& e);  // what the graph holds
  at::Tensor timed(Entry& e, double* seconds, int64_t* peak_bytes, int64_t* static_bytes);
  at::Tensor measure_eager(Entry& e, const Key& key);
  at::Tensor capture(Entry& e);
  at::Tensor measure_replay(Entry& e, const Key& key);
  void keep_eager(Entry& e, const Key& key, const std::string& why);
  void check_grads_kept() const;

  cascade::C3Model model_;
  std::vector<at::Tensor> params_;
  GraphedLossOptions opt_;
  at::Device device_;
  std::map<Key, std::unique_ptr<Entry>> entries_;
  std::unique_ptr<model::StepGraph::PoolId> pool_;  // shared by every graph; made at the first
  bool always_ = false;                             // C3_TRAIN_GRAPHS=always
  int64_t largest_eager_bytes_ = 0;  // the largest eager step the run may take (largest_eager_bytes)
  int64_t graphs_alive_bytes_ = 0;   // the peaks of the shapes whose graph is alive
  std::vector<const void*> grad_ptrs_;  // each gradient's storage when the first graph captured it
};

}  // namespace c3::train
