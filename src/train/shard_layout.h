// The flat index space of the trained parameters, for sharding optimizer state (ZeRO): the
// parameters laid end to end in the order backward produces their gradients (the order of
// DataParallel's buckets, so that a bucket is one flat range), cut into world_size equal shards.
// Rank r owns [r * shard_numel, (r + 1) * shard_numel), the last shard shortened at the end.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace c3::train {

class ShardLayout {
 public:
  // `params`: contiguous tensors of one dtype on one device, in flat order.
  ShardLayout(std::vector<at::Tensor> params, int world_size, int rank);

  // A parameter's part inside a flat range.
  struct Piece {
    int param = 0;       // index into params()
    int64_t begin = 0;   // first element of the parameter (flattened) in the piece
    int64_t numel = 0;
    int64_t flat = 0;    // the piece's first flat index
  };
  // The pieces covering [begin, end), in flat order.
  std::vector<Piece> pieces(int64_t begin, int64_t end) const;
  // The piece's elements of its parameter: a 1-D view sharing its storage, outside autograd.
  at::Tensor view(const Piece& p) const;

  const std::vector<at::Tensor>& params() const { return params_; }
  int64_t offset(int param) const { return offsets_[param]; }
  int64_t numel() const { return numel_; }
  int world_size() const { return world_size_; }
  int rank() const { return rank_; }
  int64_t shard_numel() const { return shard_numel_; }
  int64_t begin(int r) const { return std::min(numel_, r * shard_numel_); }
  int64_t end(int r) const { return std::min(numel_, (r + 1) * shard_numel_); }
  int64_t my_begin() const { return begin(rank_); }
  int64_t my_end() const { return end(rank_); }

  // The parameters' sizes in order, as text ("4096,64,..."): a checkpoint's optimizer state is
  // only read into a model whose layout says the same.
  std::string signature() const;

 private:
  std::vector<at::Tensor> params_;
  std::vector<int64_t> offsets_;
  int64_t numel_ = 0, shard_numel_ = 0;
  int world_size_ = 1, rank_ = 0;
};

}  // namespace c3::train
