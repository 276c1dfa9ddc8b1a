// Data-parallel training over c10d: the torchrun env contract, bucketed gradient all-reduce
// (Gloo on CPU, NCCL on CUDA), and a one-host launcher behind `c3 train --nproc N`.
//
// One optimizer step, N processes (nanoGPT's recipe; see docs/distributed.md):
//   DataParallel dp(DistEnv::from_env(), device);
//   dp.broadcast_parameters(*model);              // once: every rank starts from rank 0's weights
//   for each micro-batch: loss.backward();        // local grads only
//   dp.allreduce_gradients(params);               // once per optimizer step: averages .grad()
//   optimizer.step();
// Or overlap the all-reduce with backward: register_overlap(params) once, then arm_overlap()
// before the last micro-batch's backward and finish_gradients() after it.
//
// Sharded optimizer state (ZeRO; sharded_adamw.h) adds two collectives: reduce_to_shards()
// turns the gradient sync into a reduction to each bucket's owner ranks (stage 2), and
// allgather_shards() gives every rank the parameters the others updated.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "train/shard_layout.h"

namespace c3::train {

// Where this process sits in the job, read from the variables torchrun sets.
struct DistEnv {
  int rank = 0;                           // RANK: global index, 0..world_size-1
  int world_size = 1;                     // WORLD_SIZE: processes in the job, all hosts
  int local_rank = 0;                     // LOCAL_RANK: index on this host; picks cuda:LOCAL_RANK
  std::string master_addr = "127.0.0.1";  // MASTER_ADDR: host running rank 0's TCPStore
  int master_port = 29500;                // MASTER_PORT: that store's TCP port

  // Unset variables keep the defaults above (one process). Throws c3::Error naming the variable
  // on a malformed or inconsistent value, e.g. RANK=2 with WORLD_SIZE=2.
  static DistEnv from_env();
  bool is_distributed() const { return world_size > 1; }
};

struct DataParallelOptions {
  // Gradients travel in flat buckets of about this size: one collective per bucket instead of one
  // per tensor. 25 MB is PyTorch DDP's default bucket_cap_mb.
  int64_t bucket_bytes = 25ll << 20;
  // Rendezvous and per-collective timeout; a rank that dies makes the others fail after this.
  std::chrono::milliseconds timeout = std::chrono::minutes(30);
};

// One process's handle on the job's process group. With world_size 1 it creates no store and no
// backend, and every call is a no-op, so single-process training needs no special case.
// Every rank must make the same calls in the same order (they are collectives).
class DataParallel {
 public:
  // Gloo when `device` is CPU, NCCL when it is CUDA (also sets it as the current device).
  // Rendezvous: rank 0 serves a TCPStore on MASTER_ADDR:MASTER_PORT; the others connect to it.
  DataParallel(const DistEnv& env, at::Device device, DataParallelOptions options = {});
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // Whether this build can sync across processes on that device type (Gloo for kCPU, NCCL for
  // kCUDA); one process always works.
  static bool available(at::DeviceType type);

  int rank() const;
  int world_size() const;
  at::Device device() const;
  std::string backend_name() const;  // "gloo", "nccl", or "none" for one process

  // Copies rank 0's parameters and buffers into every rank's module, in place.
  void broadcast_parameters(torch::nn::Module& module);
  // Same for any tensors (dense; same shapes, dtypes and devices on every rank).
  void broadcast_tensors(const std::vector<at::Tensor>& tensors);

  // Replaces each param's .grad() with its mean over ranks. Params that don't require grad are
  // skipped; an undefined grad counts as zeros, so every rank issues the same collectives, and
  // it stays undefined only if it is undefined on every rank (as a 1-process run would leave it).
  void allreduce_gradients(const std::vector<at::Tensor>& params);
  // Mean of a scalar over ranks (e.g. the step loss for logging).
  double allreduce_mean(double v);
  // Sums `t` over ranks, in place.
  void allreduce_sum(const at::Tensor& t);
  void barrier();

  // Overlapped variant of allreduce_gradients (DDP's trick): a hook on each param copies its
  // grad into its bucket as backward produces it, and a full bucket's all-reduce starts while
  // backward continues. Buckets launch in a fixed order on every rank.
  void register_overlap(const std::vector<at::Tensor>& params);
  // Arms the hooks for the next backward only (the last micro-batch's); unarmed backwards just
  // accumulate locally.
  void arm_overlap();
  // After the armed backward: launches buckets that never filled (unused params), waits for all,
  // and writes the means into .grad() with allreduce_gradients' semantics.
  void finish_gradients();

  // ZeRO-2. From now on allreduce_gradients() and finish_gradients() reduce each bucket only to
  // the ranks owning its part of `layout` (whose parameters must be those synced, in
  // gradient_order()): each rank adds its part of the mean gradient to shard_gradient(), and
  // frees every .grad() once it has been copied into a bucket (in a hooked backward, as soon as
  // autograd has stored it). Bucket buffers are allocated on first use and freed once reduced,
  // at most a few at a time, so no full-size gradient buffer exists.
  void reduce_to_shards(const ShardLayout& layout);
  // This rank's shard of the summed mean gradients since zero_shard_gradient(): [my_end -
  // my_begin] of the layout, flat.
  const at::Tensor& shard_gradient() const;
  void zero_shard_gradient();
  // Per parameter of the layout: whether any rank had a gradient for it since
  // zero_shard_gradient() (a collective).
  std::vector<char> shard_gradient_flags();

  // Flags between ranks for threads beside the training loop (a background checkpoint writer):
  // set_flag(key) marks `key` in the job's store, wait_flags(keys) blocks until every key is
  // marked (a c3::Error after the timeout). They use a store connection of their own, so they
  // never wait behind the training loop's collectives. No-ops with one process.
  void set_flag(const std::string& key);
  void wait_flags(const std::vector<std::string>& keys);

  // Copies each rank's shard of `layout`'s parameters into every other rank's parameters, in
  // rounds of bucket_bytes per rank (ZeRO's parameter all-gather after the sharded update).
  void allgather_shards(const ShardLayout& layout);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The parameters whose gradients DataParallel syncs (those requiring grad), in the order it
// buckets them: reverse registration order, the order backward produces their gradients.
std::vector<at::Tensor> gradient_order(const std::vector<at::Tensor>& params);

// A TCP port that was free a moment ago on this host (bind to port 0, read it back, close).
int find_free_port();

// Runs argv (argv[0] included, --nproc already removed) as `nproc` copies of this binary
// (/proc/self/exe) with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1 and
// a free MASTER_PORT set; OMP_NUM_THREADS=1 and NCCL_NVLS_ENABLE=0 unless already set. Children
// share this process's stdout/stderr. Waits for all; when one fails, stops the others. Returns 0,
// or the first failure's exit code (128 + signal when killed).
int launch_local(int nproc, int argc, char** argv);
int launch_local(int nproc, const std::vector<std::string>& argv);

}  // namespace c3::train
