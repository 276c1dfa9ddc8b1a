// Starting the cascade from HF Qwen2 folders (--encoder-hf / --decoder-hf): checks that a folder
// and the tokenizer fit, adds C3's tokens to a tokenizer that lacks them, and loads the weights
// into embeddings grown to cover them.
#pragma once
#include <string>
#include <vector>

#include "model/qwen2_model.h"
#include "tokenizer/bpe_tokenizer.h"

namespace c3::train {

// The tokens C3 adds to a chat tokenizer: <img>, </img>, <imgpad>.
const std::vector<std::string>& c3_image_tokens();

// config.json of the folder given as --`flag`. Refuses another architecture (model_type must be
// qwen2, architectures Qwen2ForCausalLM) and a tokenizer whose ids the embeddings cannot hold,
// naming the file and the numbers.
model::Qwen2Config read_hf_config(const std::string& dir, const char* flag,
                                  const tokenizer::BpeTokenizer& tok);

// The tokenizer.json text of `tok` (read from its file) with those of c3_image_tokens() it lacks
// added as special tokens after the last id, as HF's add_tokens(..., special_tokens=True) does;
// `added` gets them. Empty (and nothing added) when it has them all.
std::string with_c3_tokens(const tokenizer::BpeTokenizer& tok, std::vector<std::string>* added);

// The tokenizer_config.json text `config` (read from `origin`) with `added` (ids from `first`
// on) in its added_tokens_decoder, as HF's save_pretrained writes it after that add_tokens; the
// other keys are kept.
std::string config_with_added_tokens(const std::string& config, const std::string& origin,
                                     int64_t first, const std::vector<std::string>& added);

// Loads the folder's weights (config `hf`) into `half`, whose vocabulary may be larger (the
// tokenizer's grew): the old rows are copied, and the new rows of embed_tokens (and of an
// untied lm_head) are the mean of the old rows. Keys of `half` the folder lacks (the decoder's Q
// and mm_projector) are left as they are. Says on stderr what grew when `log`.
void load_hf_weights(model::Qwen2ForCausalLM& half, const std::string& dir,
                     const model::Qwen2Config& hf, const char* flag, bool log);

}  // namespace c3::train
