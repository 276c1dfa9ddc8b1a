// Flat layout and shards of the trained parameters (see shard_layout.h).
#include "train/shard_layout.h"

#include <algorithm>

#include "util/error.h"

namespace c3::train {

ShardLayout::ShardLayout(std::vector<at::Tensor> params, int world_size, int rank)
    : params_(std::move(params)), world_size_(world_size), rank_(rank) {
  C3_CHECK(world_size >= 1 && rank >= 0 && rank < world_size,
           "ShardLayout: rank {} of world size {}", rank, world_size);
  for (size_t i = 0; i < params_.size(); ++i) {
    const at::Tensor& p = params_[i];
    TORCH_CHECK(p.is_contiguous(), "ShardLayout: parameter #", i, " is not contiguous");
    TORCH_CHECK(p.scalar_type() == params_[0].scalar_type() && p.device() == params_[0].device(),
                "ShardLayout: parameter #", i, " is ", p.scalar_type(), " on ", p.device(),
                ", the first is ", params_[0].scalar_type(), " on ", params_[0].device(),
                "; sharded optimizer state needs one dtype and device");
    offsets_.push_back(numel_);
    numel_ += p.numel();
  }
  shard_numel_ = (numel_ + world_size - 1) / world_size;
}

std::vector<ShardLayout::Piece> ShardLayout::pieces(int64_t begin, int64_t end) const {
  std::vector<Piece> out;
  // The first parameter ending after `begin`.
  auto it = std::upper_bound(offsets_.begin(), offsets_.end(), begin);
  size_t i = it == offsets_.begin() ? 0 : static_cast<size_t>(it - offsets_.begin()) - 1;
  for (; i < params_.size() && offsets_[i] < end; ++i) {
    const int64_t lo = std::max(begin, offsets_[i]);
    const int64_t hi = std::min(end, offsets_[i] + params_[i].numel());
    if (hi > lo) out.push_back({static_cast<int>(i), lo - offsets_[i], hi - lo, lo});
  }
  return out;
}

at::Tensor ShardLayout::view(const Piece& p) const {
  return params_[p.param].detach().view(-1).narrow(0, p.begin, p.numel);
}

std::string ShardLayout::signature() const {
  std::string s;
  for (const auto& p : params_) s += (s.empty() ? "" : ",") + std::to_string(p.numel());
  return s;
}

}  // namespace c3::train
