// The prompts of a generation batch: checked, embedded and left-padded to one length.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "model/generate.h"

namespace c3::model {

// Prompts left-padded to one length, so that every row's last prompt token sits in the last slot.
struct PaddedBatch {
  at::Tensor embeds;        // [B, P, C]
  at::Tensor mask;          // [B, P] bool, false on the left padding
  at::Tensor positions;     // [B, P] long, 0.. per row (0 on padding)
  std::vector<int64_t> next_pos;  // per row: the position of the first generated token
};

// Throws, naming the row, on an empty prompt, a shape mismatch or an id outside the vocabulary.
// need_ids: the n-gram ban needs the ids beside embeddings.
void check_prompt(const Prompt& p, size_t row, const Qwen2Config& mc, bool need_ids);

PaddedBatch pad_prompts(Qwen2ForCausalLM& model, const std::vector<Prompt>& prompts);

}  // namespace c3::model
