// Choosing the next token: the n-gram ban, greedy, and temperature / top-k / top-p sampling.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace c3::model {

// HF's no_repeat_ngram_size for one row, kept incrementally: a table from each (n-1)-gram seen so
// far to the tokens that followed it. A token is banned when the last n-1 ids plus that token form
// an n-gram already present in the sequence (prompt included). Each push costs O(n).
class NgramBan {
 public:
  NgramBan(int64_t n, const std::vector<int64_t>& prompt_ids);
  void push(int64_t id);                 // appends one id and records the n-gram it completes
  std::vector<int64_t> banned() const;   // tokens banned as the next id (sorted)
  const std::vector<int64_t>& ids() const { return ids_; }

 private:
  struct Hash {
    size_t operator()(const std::vector<int64_t>& v) const;
  };
  int64_t n_;
  std::vector<int64_t> ids_;
  std::unordered_map<std::vector<int64_t>, std::unordered_set<int64_t>, Hash> next_;
};

struct SamplingParams {
  double temperature = 0.0;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
};

// Sets logits[b, t] = -inf for every t in banned[b]. logits [B, V] fp32 on any device.
void ban_tokens(at::Tensor& logits, const std::vector<std::vector<int64_t>>& banned);

// One row, on the CPU: greedy (first maximum) when temperature == 0; else as HF's warpers in
// order: logits / temperature, keep the top_k (ties at the k-th value kept), keep the smallest set
// of most likely tokens whose probability reaches top_p, then draw from the renormalised rest.
int64_t sample_row(const float* logits, int64_t V, const SamplingParams& p, std::mt19937_64& rng);

// logits [B, V] fp32 -> next ids [B] (CPU long). Greedy runs on the logits' device; sampling copies
// them to the CPU and draws rows in order from `rng`, so a seed gives the same ids on any device
// given the same logits.
at::Tensor sample(const at::Tensor& logits, const SamplingParams& p, std::mt19937_64& rng);

}  // namespace c3::model
