// AdamW with ZeRO stages 0-2 and its checkpoint files (see sharded_adamw.h).
#include "train/sharded_adamw.h"

#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "io/safetensors.h"
#include "util/error.h"
#include "util/hash.h"

namespace c3::train {
namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "c3-optimizer-state";
constexpr const char* kVersion = "1";

ShardLayout make_layout(const ParamGroups& params, int stage, DataParallel* dp) {
  const bool sharded = stage > 0 && dp && dp->world_size() > 1;
  return ShardLayout(gradient_order(params.all), sharded ? dp->world_size() : 1,
                     sharded ? dp->rank() : 0);
}

std::string meta(const io::SafetensorsFile& f, const std::string& key) {
  auto it = f.metadata().find(key);
  C3_CHECK(it != f.metadata().end(), "optimizer state '{}' lacks metadata '{}': it was not "
           "written by c3 train; resume from another checkpoint", f.path(), key);
  return it->second;
}

int64_t meta_int(const io::SafetensorsFile& f, const std::string& key) {
  const std::string v = meta(f, key);
  try {
    size_t used = 0;
    const int64_t x = std::stoll(v, &used);
    if (used == v.size()) return x;
  } catch (const std::exception&) {
  }
  fail("optimizer state '{}': metadata '{}' is '{}', not an integer", f.path(), key, v);
}

}  // namespace

ShardedAdamW::ShardedAdamW(const ParamGroups& params, double weight_decay, AdamWConfig cfg,
                           int stage, DataParallel* dp)
    : stage_(dp && dp->world_size() > 1 ? stage : 0), dp_(dp), layout_(make_layout(params, stage, dp)) {
  C3_CHECK(stage >= 0 && stage <= 2, "--zero {}: use 0 (no sharding), 1 (optimizer state) or 2 "
           "(optimizer state and gradients)", stage);
  if (stage_ == 0) {
    adamw_ = std::make_unique<AdamW>(params.decay, params.no_decay, weight_decay, cfg);
    std::map<const void*, size_t> index;
    for (size_t i = 0; i < adamw_->size(); ++i) index[adamw_->state(i).param.unsafeGetTensorImpl()] = i;
    for (const auto& piece : layout_.pieces(0, layout_.numel()))
      slots_.push_back({piece, index.at(layout_.params()[piece.param].unsafeGetTensorImpl())});
    return;
  }
  // This rank's pieces, grouped as AdamW wants them: decayed first, in flat order within each.
  std::set<const void*> decayed;
  for (const auto& p : params.decay) decayed.insert(p.unsafeGetTensorImpl());
  std::vector<ShardLayout::Piece> mine = layout_.pieces(layout_.my_begin(), layout_.my_end());
  std::vector<at::Tensor> decay, no_decay;
  std::vector<ShardLayout::Piece> order;
  for (int pass = 0; pass < 2; ++pass)
    for (const auto& piece : mine)
      if (decayed.count(layout_.params()[piece.param].unsafeGetTensorImpl()) == (pass == 0)) {
        (pass == 0 ? decay : no_decay).push_back(layout_.view(piece));
        order.push_back(piece);
      }
  adamw_ = std::make_unique<AdamW>(decay, no_decay, weight_decay, cfg);
  for (size_t i = 0; i < order.size(); ++i) slots_.push_back({order[i], i});
  std::sort(slots_.begin(), slots_.end(),
            [](const Slot& a, const Slot& b) { return a.piece.flat < b.piece.flat; });
  if (stage_ == 2) dp_->reduce_to_shards(layout_);
}

std::vector<at::Tensor> ShardedAdamW::shard_grads() const {
  std::vector<at::Tensor> grads(adamw_->size());
  std::vector<char> has;
  if (stage_ == 2) has = dp_->shard_gradient_flags();
  for (const Slot& s : slots_) {
    const ShardLayout::Piece& p = s.piece;
    if (stage_ == 2) {
      if (has[p.param])
        grads[s.index] = dp_->shard_gradient().narrow(0, p.flat - layout_.my_begin(), p.numel);
    } else {
      const at::Tensor& g = layout_.params()[p.param].grad();
      if (g.defined()) grads[s.index] = g.reshape(-1).narrow(0, p.begin, p.numel);
    }
  }
  return grads;
}

at::Tensor ShardedAdamW::step(double lr, double max_norm) {
  if (stage_ == 0) return adamw_->step(lr, max_norm);
  at::NoGradGuard ng;
  const std::vector<at::Tensor> grads = shard_grads();
  std::vector<at::Tensor> defined;
  for (const auto& g : grads)
    if (g.defined()) defined.push_back(g);
  // The global norm: every rank's sum of squares, summed.
  const at::TensorOptions f32 = layout_.params()[0].options().dtype(at::kFloat).requires_grad(false);
  at::Tensor sq = defined.empty() ? at::zeros({1}, f32)
                                  : at::stack(at::_foreach_norm(defined, 2)).to(at::kFloat).pow(2).sum().reshape({1});
  dp_->allreduce_sum(sq);
  const at::Tensor norm = sq.sqrt().reshape({});
  adamw_->step(grads, norm, lr, max_norm);
  dp_->allgather_shards(layout_);
  return norm;
}

void ShardedAdamW::zero_grad() {
  if (stage_ == 2) {
    dp_->zero_shard_gradient();
    return;
  }
  for (const auto& p : layout_.params()) p.mutable_grad() = at::Tensor();
}

// ---- checkpoint files ------------------------------------------------------------------------

std::vector<CheckpointFile> ShardedAdamW::snapshot() const {
  const int64_t begin = stage_ == 0 ? 0 : layout_.my_begin();
  const int64_t end = stage_ == 0 ? layout_.numel() : layout_.my_end();
  if ((stage_ == 0 && dp_ && dp_->rank() != 0) || begin == end) return {};
  CheckpointFile f;
  f.name = fmt::format("optimizer/state-{:012d}.safetensors", begin);
  CheckpointFile::Tensor m{"exp_avg", at::kFloat, {end - begin}, {}};
  CheckpointFile::Tensor v{"exp_avg_sq", at::kFloat, {end - begin}, {}};
  at::Tensor steps = at::full({static_cast<int64_t>(layout_.params().size())}, -1.0f);
  std::vector<at::Tensor> counts;
  for (const Slot& s : slots_) {  // in flat order: the pieces tile [begin, end)
    const AdamW::State st = adamw_->state(s.index);
    auto part = [&](const at::Tensor& t) {
      return host_copy(t.reshape(-1).narrow(0, stage_ == 0 ? s.piece.begin : 0, s.piece.numel).to(at::kFloat));
    };
    m.parts.push_back(part(st.exp_avg));
    v.parts.push_back(part(st.exp_avg_sq));
    counts.push_back(st.step.reshape({1}));
  }
  const at::Tensor host_counts = at::cat(counts).to(at::kCPU, at::kFloat);  // one device copy
  for (size_t k = 0; k < slots_.size(); ++k)
    steps[slots_[k].piece.param] = host_counts[static_cast<int64_t>(k)];
  f.tensors = {std::move(m), std::move(v), {"steps", at::kFloat, {steps.numel()}, {steps}}};
  f.metadata = {{"format", kFormat},
                {"version", kVersion},
                {"begin", std::to_string(begin)},
                {"end", std::to_string(end)},
                {"numel", std::to_string(layout_.numel())},
                {"layout", hash_hex(layout_.signature())},
                {"optimizer_steps", std::to_string(adamw_->steps_taken())}};
  return {f};
}

void ShardedAdamW::load(const std::string& checkpoint_dir) {
  const fs::path folder = fs::path(checkpoint_dir) / "optimizer";
  if (!fs::is_directory(folder)) {
    const fs::path legacy = fs::path(checkpoint_dir) / "optimizer.pt";
    C3_CHECK(fs::exists(legacy), "checkpoint '{}' has no optimizer state (optimizer/ or "
             "optimizer.pt); resume from a complete checkpoint", checkpoint_dir);
    C3_CHECK(stage_ == 0, "'{}' is the single-file optimizer state of an older checkpoint, which "
             "only --zero 0 reads; resume with --zero 0 (its next checkpoint is in the sharded "
             "format), then switch", legacy.string());
    adamw_->load_archive(legacy.string());
    return;
  }
  // Every file: its range, checked against this model's layout; together they must tile it.
  std::vector<std::shared_ptr<io::SafetensorsFile>> files;
  std::map<int64_t, std::pair<int64_t, size_t>> ranges;  // begin -> (end, file)
  int64_t steps_taken = -1;
  const std::string layout_hash = hash_hex(layout_.signature());
  for (const auto& e : fs::directory_iterator(folder)) {
    if (e.path().extension() != ".safetensors") continue;
    auto f = io::SafetensorsFile::open(e.path().string());
    C3_CHECK(meta(*f, "format") == kFormat && meta(*f, "version") == kVersion,
             "'{}' is not c3 optimizer state of version {}", f->path(), kVersion);
    C3_CHECK(meta_int(*f, "numel") == layout_.numel() && meta(*f, "layout") == layout_hash,
             "optimizer state '{}' is for {} parameter elements of another layout; this model "
             "trains {} in {} tensors. Resume with the model, --freeze and the version of c3 that "
             "wrote it", f->path(), meta(*f, "numel"), layout_.numel(), layout_.params().size());
    const int64_t b = meta_int(*f, "begin"), z = meta_int(*f, "end"), n = meta_int(*f, "optimizer_steps");
    C3_CHECK(steps_taken < 0 || steps_taken == n, "optimizer state '{}' is at step {}, another "
             "file of the checkpoint at {}: the folder mixes two checkpoints", f->path(), n, steps_taken);
    steps_taken = n;
    C3_CHECK(0 <= b && b < z && z <= layout_.numel() && ranges.count(b) == 0,
             "optimizer state '{}' covers [{}, {}), outside [0, {}) or twice", f->path(), b, z,
             layout_.numel());
    C3_CHECK(f->tensor("exp_avg").numel() == z - b && f->tensor("exp_avg_sq").numel() == z - b &&
                 f->tensor("steps").numel() == static_cast<int64_t>(layout_.params().size()),
             "optimizer state '{}': its tensors do not match its range [{}, {})", f->path(), b, z);
    ranges[b] = {z, files.size()};
    files.push_back(f);
  }
  int64_t covered = 0;
  for (const auto& [b, zf] : ranges) {
    C3_CHECK(b == covered, "optimizer state in '{}' lacks the range [{}, {}) of the parameter "
             "space: a file is missing; resume from a complete checkpoint", folder.string(), covered, b);
    covered = zf.first;
  }
  C3_CHECK(covered == layout_.numel(), "optimizer state in '{}' lacks the range [{}, {}) of the "
           "parameter space: a file is missing", folder.string(), covered, layout_.numel());

  at::NoGradGuard ng;
  adamw_->set_steps_taken(steps_taken);
  for (const Slot& s : slots_) {
    const AdamW::State st = adamw_->state(s.index);
    const int64_t lo = s.piece.flat, hi = lo + s.piece.numel;
    const int64_t dst0 = stage_ == 0 ? s.piece.begin : 0;  // stage 0: whole parameters
    auto it = ranges.upper_bound(lo);
    --it;  // the file holding lo
    bool step_read = false;
    for (; it != ranges.end() && it->first < hi; ++it) {
      const io::SafetensorsFile& f = *files[it->second.second];
      const int64_t a = std::max(lo, it->first), z = std::min(hi, it->second.first);
      for (const char* name : {"exp_avg", "exp_avg_sq"}) {
        const at::Tensor src = f.tensor(name).narrow(0, a - it->first, z - a);
        const at::Tensor& dst = std::string(name) == "exp_avg" ? st.exp_avg : st.exp_avg_sq;
        dst.view(-1).narrow(0, dst0 + a - lo, z - a).copy_(src);
      }
      if (!step_read) {
        const float n = f.tensor("steps")[s.piece.param].item<float>();
        C3_CHECK(n >= 0, "optimizer state '{}' has no step count for parameter {}", f.path(),
                 s.piece.param);
        st.step.fill_(n);
        step_read = true;
      }
    }
  }
}

// ---- memory --------------------------------------------------------------------------------

int64_t ShardedAdamW::state_bytes() const {
  int64_t n = 0;
  for (size_t i = 0; i < adamw_->size(); ++i) {
    const AdamW::State s = adamw_->state(i);
    n += s.exp_avg.nbytes() + s.exp_avg_sq.nbytes() + s.step.nbytes();
  }
  return n;
}

int64_t ShardedAdamW::gradient_bytes() const {
  if (stage_ == 2) return dp_->shard_gradient().nbytes();
  int64_t n = 0;
  for (const auto& p : layout_.params()) n += p.nbytes();
  return n;
}

}  // namespace c3::train
