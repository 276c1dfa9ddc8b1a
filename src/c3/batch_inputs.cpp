// Host-built inputs of the cascade's encoder and of its training loss (see batch_inputs.h).
#include "c3/batch_inputs.h"

#include <algorithm>
#include <random>

#include "c3/c3_model.h"
#include "c3/query_layout.h"
#include "model/upload.h"
#include "util/error.h"

namespace c3::cascade {
namespace {

at::Tensor long_tensor(std::vector<int64_t> v, at::IntArrayRef shape) {
  return at::tensor(at::ArrayRef<int64_t>(v), at::TensorOptions().dtype(at::kLong)).view(shape);
}

at::Tensor upload(const at::Tensor& t, at::Device device) {
  return t.defined() ? model::upload(t, device) : t;
}

}  // namespace

EncoderInputs EncoderInputs::to(at::Device device) const {
  return {upload(ids, device), upload(slot_index, device), upload(positions, device), n_text};
}

TrainInputs TrainInputs::to(at::Device device) const {
  return {encoder.to(device), upload(target, device), upload(reads, device),
          upload(self_feed, device), upload(target_rows, device), n_targets};
}

EncoderInputs encoder_inputs(const C3ModelImpl& m, const std::vector<std::vector<int32_t>>& contexts,
                             int64_t T) {
  C3_CHECK(!contexts.empty(), "compress: empty batch");
  const int64_t B = static_cast<int64_t>(contexts.size()), L = m.latent_len();
  EncoderInputs in;
  for (const auto& c : contexts) in.n_text.push_back(static_cast<int64_t>(c.size()));
  const int64_t longest = *std::max_element(in.n_text.begin(), in.n_text.end()) + L + 2;
  if (T == 0) T = longest;
  C3_CHECK(T >= longest, "encoder inputs: {} tokens a row cannot hold a row of {}", T, longest);
  // Right padding: each row's query slots end its real tokens, so causal attention never sees a
  // pad and no attention mask is needed (the fast path on GPU).
  std::vector<int64_t> flat(B * T, m.pad_id()), slots(B * L);
  for (int64_t b = 0; b < B; ++b) {
    const std::vector<int64_t> row = m.encoder_input_ids(contexts[b]);
    std::copy(row.begin(), row.end(), flat.begin() + b * T);
    for (int64_t j = 0; j < L; ++j) slots[b * L + j] = in.n_text[b] + 1 + j;  // after <img>
  }
  in.ids = long_tensor(std::move(flat), {B, T});
  in.slot_index = long_tensor(std::move(slots), {B, L});
  if (m.config.query_positions != QueryPositions::kAfterText)
    in.positions = encoder_position_ids(in.n_text, L, T, m.config.query_positions);
  return in;
}

TrainInputs train_inputs(const C3ModelImpl& m, const std::vector<std::vector<int32_t>>& contexts,
                         const InputNoise& noise, const TrainShape& shape) {
  C3_CHECK(noise.rate >= 0 && noise.self_feed >= 0 && noise.rate + noise.self_feed <= 1.0,
           "input noise {} + self-feed {} must lie in [0, 1]", noise.rate, noise.self_feed);
  std::vector<std::vector<int32_t>> padded = contexts;
  if (shape.rows > static_cast<int64_t>(padded.size())) padded.resize(shape.rows);  // empty rows
  const int64_t B = static_cast<int64_t>(padded.size()), L = m.latent_len();
  int64_t longest = 1;  // the decoder reads at least one token
  for (const auto& c : contexts) longest = std::max<int64_t>(longest, static_cast<int64_t>(c.size()));
  if (const int64_t k = shape.passage_multiple; k > 0) longest = (longest + k - 1) / k * k;
  const int64_t Tt = longest + 1;  // targets a row: the passage, then <|im_end|>

  TrainInputs in;
  in.encoder = encoder_inputs(m, padded, Tt + L + 1);
  std::vector<int64_t> tgt(B * Tt, model::kIgnoreTarget), reads(B * (Tt - 1), m.pad_id()), rows;
  for (size_t b = 0; b < contexts.size(); ++b) {
    const auto& c = contexts[b];
    for (size_t t = 0; t <= c.size(); ++t) {
      tgt[b * Tt + t] = t < c.size() ? c[t] : m.im_end_id();
      rows.push_back(static_cast<int64_t>(b) * Tt + static_cast<int64_t>(t));
    }
    std::copy(c.begin(), c.end(), reads.begin() + b * (Tt - 1));
    in.n_targets += static_cast<int64_t>(c.size()) + 1;
  }
  // Input noise, drawn per passage token in row order: a random id, or (self-feed) a mark that
  // the decoder reads its own prediction of that token, which only the device knows.
  if (noise.rate > 0 || noise.self_feed > 0) {
    std::vector<uint8_t> own(B * (Tt - 1), 0);
    std::mt19937_64 rng(noise.key);
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    std::uniform_int_distribution<int64_t> any_id(0, m.tok().vocab_size() - 1);
    for (size_t b = 0; b < contexts.size(); ++b) {
      for (size_t t = 0; t < contexts[b].size(); ++t) {
        const double c = coin(rng);
        if (c < noise.rate) {
          reads[b * (Tt - 1) + t] = any_id(rng);
        } else if (c < noise.rate + noise.self_feed) {
          own[b * (Tt - 1) + t] = 1;
        }
      }
    }
    if (noise.self_feed > 0)
      in.self_feed = at::tensor(at::ArrayRef<uint8_t>(own)).view({B, Tt - 1}).to(at::kBool);
  }
  const bool fixed = shape.rows > 0 || shape.passage_multiple > 0;
  if (!fixed) in.target_rows = long_tensor(rows, {static_cast<int64_t>(rows.size())});
  in.target = long_tensor(std::move(tgt), {B, Tt});
  in.reads = long_tensor(std::move(reads), {B, Tt - 1});
  return in;
}

}  // namespace c3::cascade
