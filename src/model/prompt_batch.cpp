// The prompts of a generation batch: checked, embedded and left-padded to one length.
#include "model/prompt_batch.h"

#include <algorithm>

#include "util/error.h"

namespace c3::model {

void check_prompt(const Prompt& p, size_t row, const Qwen2Config& mc, bool need_ids) {
  const int64_t T = p.embeds.defined() ? p.embeds.size(0) : static_cast<int64_t>(p.ids.size());
  C3_CHECK(T > 0, "prompt {} is empty", row);
  if (p.embeds.defined()) {
    C3_CHECK(p.embeds.dim() == 2 && p.embeds.size(1) == mc.hidden_size,
             "prompt {}: embeds must be [T, {}], got {}", row, mc.hidden_size,
             c10::str(p.embeds.sizes()));
    C3_CHECK(p.ids.empty() || static_cast<int64_t>(p.ids.size()) == T,
             "prompt {}: {} ids for {} embedding rows (they must match)", row, p.ids.size(), T);
    C3_CHECK(!need_ids || !p.ids.empty(),
             "prompt {}: no_repeat_ngram_size needs the prompt ids beside its embeddings", row);
  }
  for (int64_t id : p.ids) {
    C3_CHECK(id >= 0 && id < mc.vocab_size, "prompt {}: token id {} is outside the vocabulary "
             "[0, {})", row, id, mc.vocab_size);
  }
}

PaddedBatch pad_prompts(Qwen2ForCausalLM& model, const std::vector<Prompt>& prompts) {
  const at::Tensor& table = model->model->embed_tokens->weight;
  const int64_t B = static_cast<int64_t>(prompts.size()), C = table.size(1);
  std::vector<int64_t> lens;
  for (const auto& p : prompts) {
    lens.push_back(p.embeds.defined() ? p.embeds.size(0) : static_cast<int64_t>(p.ids.size()));
  }
  const int64_t P = *std::max_element(lens.begin(), lens.end());

  PaddedBatch batch;
  batch.embeds = at::zeros({B, P, C}, table.options());
  at::Tensor mask = at::zeros({B, P}, at::kBool);
  at::Tensor positions = at::zeros({B, P}, at::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const Prompt& p = prompts[b];
    const int64_t T = lens[b], pad = P - T;
    at::Tensor e;  // [T, C]
    if (p.embeds.defined()) {
      e = p.embeds.to(table.device(), table.scalar_type());
    } else {
      const at::Tensor ids = at::tensor(p.ids, at::kLong).to(table.device());
      e = model->embed(ids);
    }
    batch.embeds[b].slice(0, pad, P).copy_(e);
    mask[b].slice(0, pad, P).fill_(true);
    positions[b].slice(0, pad, P).copy_(at::arange(T, at::kLong));
    batch.next_pos.push_back(T);
  }
  batch.mask = mask.to(table.device());
  batch.positions = positions.to(table.device());
  return batch;
}

}  // namespace c3::model
