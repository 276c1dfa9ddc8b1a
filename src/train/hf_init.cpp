// HF Qwen2 folders as the cascade's starting point: architecture and vocabulary checks, C3's
// tokens added to the tokenizer, embeddings grown as transformers' resize_token_embeddings does.
#include "train/hf_init.h"

#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "io/hf_config.h"
#include "io/safetensors.h"
#include "model/linear.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/hash.h"

namespace c3::train {
namespace fs = std::filesystem;

const std::vector<std::string>& c3_image_tokens() {
  static const std::vector<std::string> t = {"<img>", "</img>", "<imgpad>"};
  return t;
}

// The flags HF's add_tokens(..., special_tokens=True) gives an added token.
static nlohmann::json added_token_flags(const std::string& content) {
  return {{"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},    {"normalized", false},  {"special", true}};
}

model::Qwen2Config read_hf_config(const std::string& dir, const char* flag,
                                  const tokenizer::BpeTokenizer& tok) {
  const std::string path = (fs::path(dir) / "config.json").string();
  C3_CHECK(fs::is_directory(dir),
           "--{} '{}' is not a folder; pass an HF Qwen2 checkpoint folder "
           "(config.json + model.safetensors)",
           flag, dir);
  const io::JsonFile f = io::JsonFile::load(path);
  const std::string type = f.optional<std::string>("model_type", "qwen2");
  const nlohmann::json arch = f.has("architectures") ? f.json()["architectures"] : nlohmann::json();
  const bool arch_ok = !arch.is_array() || arch.empty() ||
                       (arch[0].is_string() && arch[0].get<std::string>() == "Qwen2ForCausalLM");
  C3_CHECK(type == "qwen2" && arch_ok,
           "{}: model_type \"{}\", architectures {}: --{} needs a Qwen2 checkpoint (model_type "
           "qwen2, Qwen2ForCausalLM), as both halves of the cascade are Qwen2",
           path, type, arch.is_null() ? "(none)" : arch.dump(), flag);
  model::Qwen2Config cfg = model::Qwen2Config::from_json(f);
  C3_CHECK(tok.vocab_size() <= cfg.vocab_size,
           "{} has {} tokens (ids up to {}) but {} has vocab_size {}: its embeddings hold ids "
           "below {} only. Pass this model's own tokenizer with --tokenizer.",
           tok.origin(), tok.vocab_size(), tok.vocab_size() - 1, path, cfg.vocab_size,
           cfg.vocab_size);
  return cfg;
}

std::string with_c3_tokens(const tokenizer::BpeTokenizer& tok, std::vector<std::string>* added) {
  added->clear();
  std::vector<std::string> missing;
  for (const std::string& t : c3_image_tokens())
    if (tok.token_id(t) < 0) missing.push_back(t);
  if (missing.empty()) return "";
  // Only a tokenizer.json can lack them: a qwen.tiktoken always brings QWenTokenizer's.
  const std::string text = read_file(tok.origin());
  C3_CHECK(hash_hex(text) == tok.file_hash(), "{} changed while c3 was reading it", tok.origin());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", tok.origin(), std::string(e.what()).substr(0, 200));
  }
  if (!j.contains("added_tokens") || j["added_tokens"].is_null())
    j["added_tokens"] = nlohmann::json::array();
  int64_t id = tok.vocab_size();  // HF's len(tokenizer): one past the last id
  for (const std::string& t : missing) {
    nlohmann::json token = {{"id", id++}};
    token.update(added_token_flags(t));
    j["added_tokens"].push_back(token);
  }
  *added = missing;
  return j.dump(2) + "\n";
}

std::string config_with_added_tokens(const std::string& config, const std::string& origin,
                                     int64_t first, const std::vector<std::string>& added) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(config);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not valid JSON: {}", origin, std::string(e.what()).substr(0, 200));
  }
  C3_CHECK(j.is_object(), "{}: expected a JSON object (HF's tokenizer_config.json)", origin);
  auto& decoder = j["added_tokens_decoder"];
  if (decoder.is_null()) decoder = nlohmann::ordered_json::object();
  C3_CHECK(decoder.is_object(), "{}: added_tokens_decoder is not an object", origin);
  int64_t id = first;
  for (const std::string& t : added) {
    decoder[std::to_string(id++)] = nlohmann::ordered_json(added_token_flags(t));
  }
  return j.dump(2) + "\n";
}

void load_hf_weights(model::Qwen2ForCausalLM& half, const std::string& dir,
                     const model::Qwen2Config& hf, const char* flag, bool log) {
  const io::Checkpoint ckpt = io::Checkpoint::open(dir);
  const int64_t v_new = half->config().vocab_size;
  // The common case (no growth, no extra keys) loads in place, without a second copy.
  if (v_new == hf.vocab_size && half->named_parameters().size() == ckpt.names().size()) {
    model::load_parameters(*half, ckpt);
    return;
  }
  model::Qwen2ForCausalLM plain{nullptr};
  {
    model::ParameterPlacement place(at::kCPU, at::kFloat);  // every weight is loaded next
    plain = model::Qwen2ForCausalLM(hf);
  }
  model::load_parameters(*plain, ckpt);
  torch::NoGradGuard ng;
  const auto src = plain->named_parameters();
  for (auto& p : half->named_parameters()) {
    if (!src.contains(p.key())) continue;  // Q, mm_projector: not in an HF folder
    const at::Tensor& s = src[p.key()];
    at::Tensor d = p.value();
    if (s.sizes() == d.sizes()) {
      d.copy_(s);
      continue;
    }
    const bool vocab_rows = p.key() == "model.embed_tokens.weight" || p.key() == "lm_head.weight";
    C3_CHECK(vocab_rows && s.dim() == 2 && s.size(1) == d.size(1) && s.size(0) < d.size(0),
             "--{} '{}': tensor {} has shape [{}] but the cascade needs [{}]", flag, dir, p.key(),
             fmt::join(s.sizes(), ", "), fmt::join(d.sizes(), ", "));
    const int64_t n_old = s.size(0), n_new = d.size(0) - n_old;
    d.narrow(0, 0, n_old).copy_(s);
    // As transformers' resize_token_embeddings(mean_resizing=True), the default since 4.46: it
    // draws the new rows from N(mean, 1e-9 * covariance) of the old rows, or sets them to the
    // mean when that covariance is not positive definite. We set the mean itself (the noise is
    // ~3e-5 of the rows' spread): the same start, deterministic.
    d.narrow(0, n_old, n_new).copy_(s.to(at::kFloat).mean(0).expand({n_new, s.size(1)}));
    if (log) {
      std::fprintf(
          stderr,
          "c3: --%s %s: %s grown from %lld to %lld rows for the added tokens "
          "(new rows: the mean of the old ones, as transformers' resize_token_embeddings)\n",
          flag, dir.c_str(), p.key().c_str(), static_cast<long long>(n_old),
          static_cast<long long>(n_old + n_new));
    }
  }
}

}  // namespace c3::train
