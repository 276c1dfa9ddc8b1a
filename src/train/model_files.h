// A cascade as checkpoint files, taken from memory at once and written later (checkpoint_writer):
// the layout of cascade::save_c3 (decoder weights and config.json at the top, the encoder's in
// llm1/, the tokenizer files), with the weights in safetensors shards as HF's save_pretrained makes
// them once a model passes max_shard_bytes (model-00001-of-0000N.safetensors and
// model.safetensors.index.json, which io::Checkpoint reads), so that they can be written in
// parallel.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "c3/c3_model.h"
#include "train/checkpoint_file.h"

namespace c3::train {

// HF's default max_shard_size ("5GB").
constexpr int64_t kMaxShardBytes = 5'000'000'000;

// Host copies of the cascade's weights in `dtype`, its configs and the tokenizer files (those of
// tokenizer::find_tokenizer(`tokenizer`): tokenizer.json or qwen.tiktoken, and companions). Several
// processes holding the same weights can share the work: `writer` of `writers` gets every
// writers-th weight file (round robin) and writer 0 the rest.
std::vector<CheckpointFile> model_files(cascade::C3Model& m, const std::string& tokenizer,
                                        at::ScalarType dtype, int64_t max_shard_bytes = kMaxShardBytes,
                                        int writer = 0, int writers = 1);

}  // namespace c3::train
