// Choosing the next token: the n-gram ban, greedy, and temperature / top-k / top-p sampling.
#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "util/error.h"

namespace c3::model {

size_t NgramBan::Hash::operator()(const std::vector<int64_t>& v) const {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the ids, then a final mix
  for (int64_t x : v) {
    h ^= static_cast<uint64_t>(x);
    h *= 0x100000001b3ull;
  }
  return static_cast<size_t>(h ^ (h >> 29));
}

NgramBan::NgramBan(int64_t n, const std::vector<int64_t>& prompt_ids) : n_(n) {
  C3_CHECK(n >= 1, "no_repeat_ngram_size must be >= 1, got {}", n);
  ids_.reserve(prompt_ids.size() + 256);
  for (int64_t id : prompt_ids) push(id);
}

void NgramBan::push(int64_t id) {
  ids_.push_back(id);
  const int64_t L = static_cast<int64_t>(ids_.size());
  if (L < n_) return;
  // The n-gram ids_[L-n, L): its first n-1 ids are the key, `id` the follower.
  std::vector<int64_t> prefix(ids_.end() - n_, ids_.end() - 1);
  next_[std::move(prefix)].insert(id);
}

std::vector<int64_t> NgramBan::banned() const {
  // HF: nothing is banned while cur_len + 1 < n; else look up the last n-1 ids.
  const int64_t L = static_cast<int64_t>(ids_.size());
  if (L + 1 < n_) return {};
  const std::vector<int64_t> prefix(ids_.end() - (n_ - 1), ids_.end());
  auto it = next_.find(prefix);
  if (it == next_.end()) return {};
  std::vector<int64_t> out(it->second.begin(), it->second.end());
  std::sort(out.begin(), out.end());
  return out;
}

void ban_tokens(at::Tensor& logits, const std::vector<std::vector<int64_t>>& banned) {
  std::vector<int64_t> rows, cols;
  for (size_t b = 0; b < banned.size(); ++b) {
    for (int64_t t : banned[b]) {
      rows.push_back(static_cast<int64_t>(b));
      cols.push_back(t);
    }
  }
  if (rows.empty()) return;
  const auto opts = at::TensorOptions(at::kLong);
  const at::Tensor r = at::tensor(rows, opts).to(logits.device());
  const at::Tensor c = at::tensor(cols, opts).to(logits.device());
  logits.index_put_({r, c}, -std::numeric_limits<float>::infinity());
}

namespace {

// A uniform double in [0, 1) from 53 random bits: the same on every standard library.
double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

int64_t argmax_row(const float* x, int64_t V) {
  int64_t best = 0;
  for (int64_t i = 1; i < V; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

}  // namespace

int64_t sample_row(const float* logits, int64_t V, const SamplingParams& p, std::mt19937_64& rng) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  if (p.temperature <= 0.0) return argmax_row(logits, V);
  std::vector<float> x(logits, logits + V);
  for (float& v : x) v = static_cast<float>(v / p.temperature);

  if (p.top_k > 0 && p.top_k < V) {
    std::vector<float> sorted = x;
    std::nth_element(sorted.begin(), sorted.begin() + (p.top_k - 1), sorted.end(),
                     std::greater<float>());
    const float kth = sorted[p.top_k - 1];
    for (float& v : x) {
      if (v < kth) v = kNegInf;
    }
  }

  // Softmax in double.
  const float max_logit = *std::max_element(x.begin(), x.end());
  C3_CHECK(max_logit > kNegInf, "every token is banned or filtered; nothing left to sample");
  std::vector<double> prob(V);
  double total = 0.0;
  for (int64_t i = 0; i < V; ++i) {
    prob[i] = x[i] == kNegInf ? 0.0 : std::exp(static_cast<double>(x[i]) - max_logit);
    total += prob[i];
  }
  for (double& q : prob) q /= total;

  if (p.top_p < 1.0) {
    // HF: sort ascending, drop the tokens whose cumulative probability is <= 1 - top_p; the most
    // likely token always stays.
    std::vector<int64_t> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return prob[a] < prob[b]; });
    double cum = 0.0;
    for (int64_t r = 0; r + 1 < V; ++r) {
      cum += prob[order[r]];
      if (cum > 1.0 - p.top_p) break;
      prob[order[r]] = 0.0;
    }
    total = std::accumulate(prob.begin(), prob.end(), 0.0);
    for (double& q : prob) q /= total;
  }

  // Inverse CDF.
  const double u = uniform01(rng);
  double cum = 0.0;
  int64_t last = 0;
  for (int64_t i = 0; i < V; ++i) {
    if (prob[i] <= 0.0) continue;
    cum += prob[i];
    last = i;
    if (u < cum) return i;
  }
  return last;  // rounding left u just above the total
}

at::Tensor sample(const at::Tensor& logits, const SamplingParams& p, std::mt19937_64& rng) {
  TORCH_CHECK(logits.dim() == 2, "sample: expected logits [B, V], got ", logits.sizes());
  if (p.temperature <= 0.0) return logits.argmax(-1).to(at::kCPU);
  const at::Tensor cpu = logits.to(at::kCPU, at::kFloat).contiguous();
  const int64_t B = cpu.size(0), V = cpu.size(1);
  at::Tensor out = at::empty({B}, at::kLong);
  for (int64_t b = 0; b < B; ++b) {
    out[b] = sample_row(cpu.data_ptr<float>() + b * V, V, p, rng);
  }
  return out;
}

}  // namespace c3::model
