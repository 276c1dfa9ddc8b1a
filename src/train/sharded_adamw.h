// The trainer's optimizer: AdamW whose state may be sharded across data-parallel ranks, as in
// ZeRO (Rajbhandari et al., 2020; DeepSpeed's stages 1 and 2):
//   stage 0: every rank keeps and updates all of the state (plain data parallelism);
//   stage 1: rank r keeps and updates only the state of its shard of the flat parameter space
//            (shard_layout.h), 1/N of it; gradients are still all-reduced, and the updated
//            shards are then all-gathered into every rank's parameters;
//   stage 2: as 1, but each backward's gradients are reduced straight to the rank owning them
//            (DataParallel::reduce_to_shards), so a rank keeps only its shard's gradient.
// Gradient clipping uses the global norm over all shards. With one process every stage is 0.
//
// Checkpoints hold the state in optimizer/state-<first flat index>.safetensors: the moments of a
// flat range as fp32 vectors, and each parameter's step count. Each rank writes its own range
// (in parallel, nothing gathered to rank 0, whose memory holds no more than its shard); a
// checkpoint written with any world size and stage resumes with any other, since a rank reads
// the parts of whichever files cover its range.
#pragma once
#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "train/adamw.h"
#include "train/checkpoint_file.h"
#include "train/distributed.h"
#include "train/param_groups.h"
#include "train/shard_layout.h"

namespace c3::train {

class ShardedAdamW {
 public:
  // `dp` may be null (one process); it must outlive this.
  ShardedAdamW(const ParamGroups& params, double weight_decay, AdamWConfig cfg, int stage,
               DataParallel* dp);

  int stage() const { return stage_; }
  // After the step's gradients are synced (stage 0, 1) or reduced into the shards (stage 2):
  // clips by the global norm, updates this rank's state and parameters, and (stage 1, 2) gathers
  // the other ranks' updated parameters. Returns the norm as AdamW::step does.
  at::Tensor step(double lr, double max_norm);
  void zero_grad();

  // Host copies of the state this rank writes into a checkpoint: its range's file (stage 1, 2);
  // with stage 0 rank 0 writes all of it and the others nothing.
  std::vector<CheckpointFile> snapshot() const;
  // Reads the state from a checkpoint folder: its optimizer/ files (any world size and stage),
  // or the single optimizer.pt of older checkpoints (stage 0 only).
  void load(const std::string& checkpoint_dir);

  // Bytes this rank holds for the optimizer: moments (and step counts), and gradients between
  // backward and step (all of them at stages 0 and 1, its shard at stage 2).
  int64_t state_bytes() const;
  int64_t gradient_bytes() const;

 private:
  struct Slot {  // a piece of the flat space and its index in adamw_
    ShardLayout::Piece piece;
    size_t index;
  };
  std::vector<at::Tensor> shard_grads() const;  // stage 1, 2: one per adamw_ tensor

  int stage_;
  DataParallel* dp_;
  ShardLayout layout_;
  std::vector<Slot> slots_;  // the state this rank holds, in flat order
  std::unique_ptr<AdamW> adamw_;
};

}  // namespace c3::train
