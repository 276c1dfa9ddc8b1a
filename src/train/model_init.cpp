// Model initialisation for training.
#include "train/model_init.h"

#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "io/safetensors.h"
#include "tokenizer/tokenizer_files.h"
#include "train/distributed.h"
#include "train/hf_init.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace c3::train {
namespace fs = std::filesystem;

int64_t count_parameters(torch::nn::Module& m) {
  int64_t n = 0;
  for (auto& p : m.parameters()) n += p.numel();
  return n;
}

// The query layout flags, where given, over the config's (c3/query_layout.h).
static void apply_query_layout(const ModelInit& init, cascade::C3Config& c) {
  if (!init.query_positions.empty())
    c.query_positions = cascade::parse_query_positions(init.query_positions, "--query-positions");
  if (!init.query_mask.empty())
    c.query_mask = cascade::parse_query_mask(init.query_mask, "--query-mask");
  if (!init.query_pooling.empty())
    c.query_pooling = cascade::parse_query_pooling(init.query_pooling, "--query-pooling");
}

cascade::C3Model build_model(const ModelInit& init, TokenizerSource* tokenizer) {
  *tokenizer = TokenizerSource{};
  if (!init.from_c3.empty()) {
    cascade::LoadedC3 l = cascade::load_c3(init.from_c3, at::kFloat, at::kCPU);
    tokenizer->path = init.from_c3;
    apply_query_layout(init, l.model->config);
    if (init.max_passage_tokens > 0) l.model->config.max_passage_tokens = init.max_passage_tokens;
    l.model->train();
    return l.model;
  }
  C3_CHECK(!init.tokenizer.empty(),
           "training from scratch needs --tokenizer FILE (make one with `c3 tokenizer train`)");
  const bool log = DistEnv::from_env().rank == 0;
  auto tok = std::make_shared<tokenizer::BpeTokenizer>(tokenizer::load_tokenizer(init.tokenizer));
  tokenizer->path = init.tokenizer;
  auto qwen_cfg = [&](const std::string& cfg, const std::string& hf, const char* which) {
    C3_CHECK(cfg.empty() || hf.empty(), "give --{0}-config FILE or --{0}-hf DIR, not both", which);
    if (!hf.empty()) return read_hf_config(hf, fmt::format("{}-hf", which).c_str(), *tok);
    C3_CHECK(!cfg.empty(), "give --{0}-config FILE (Qwen2 dims) or --{0}-hf DIR", which);
    return model::Qwen2Config::from_file(cfg);
  };
  cascade::C3Config c;
  c.encoder = qwen_cfg(init.encoder_config, init.encoder_hf, "encoder");
  c.decoder = qwen_cfg(init.decoder_config, init.decoder_hf, "decoder");
  const model::Qwen2Config hf_encoder = c.encoder, hf_decoder = c.decoder;

  std::vector<std::string> added;
  tokenizer->grown_json = with_c3_tokens(*tok, &added);
  if (!added.empty()) {
    const int64_t first = tok->vocab_size();
    tok = std::make_shared<tokenizer::BpeTokenizer>(
        tokenizer::BpeTokenizer::from_json(tokenizer->grown_json, tok->origin()));
    for (const std::string& f : tokenizer::find_tokenizer(init.tokenizer, /*quiet=*/true).files)
      if (fs::path(f).filename() == "tokenizer_config.json")
        tokenizer->grown_config = config_with_added_tokens(read_file(f), f, first, added);
    if (log) {
      std::fprintf(stderr, "%s\n",
                   fmt::format("c3: {} lacks {}: added as special tokens {}..{} (as HF's "
                               "add_tokens(..., special_tokens=True)); checkpoints get the grown "
                               "tokenizer.json",
                               init.tokenizer, fmt::join(added, " "), first, tok->vocab_size() - 1)
                       .c_str());
    }
  }
  c.latent_token_len = init.latents;
  c.contexts_compression_llm_hidden_size = c.encoder.hidden_size;
  c.im_start_token = tok->token_id("<img>");
  c.im_end_token = tok->token_id("</img>");
  c.im_patch_token = tok->token_id("<imgpad>");
  c.max_passage_tokens = init.max_passage_tokens > 0 ? init.max_passage_tokens : 1280;
  apply_query_layout(init, c);
  c.decoder.eos_token_id = {tok->token_id("<|im_end|>")};
  // A vocabulary smaller than the tokenizer's would index out of range: grow it to fit.
  c.encoder.vocab_size = std::max<int64_t>(c.encoder.vocab_size, tok->vocab_size());
  c.decoder.vocab_size = std::max<int64_t>(c.decoder.vocab_size, tok->vocab_size());
  torch::manual_seed(init.seed);
  cascade::C3Model m(c, tok);
  model::init_weights(*m, 0.02);
  if (!init.encoder_hf.empty())
    load_hf_weights(m->encoder, init.encoder_hf, hf_encoder, "encoder-hf", log);
  if (!init.decoder_hf.empty())
    load_hf_weights(m->decoder, init.decoder_hf, hf_decoder, "decoder-hf", log);
  m->train();
  return m;
}

std::string write_run_tokenizer(const TokenizerSource& src, const std::string& out_dir) {
  if (!src.grown_json.empty()) {
    const fs::path p = fs::path(out_dir) / "tokenizer.json";
    write_file_atomic(p, src.grown_json);
    if (!src.grown_config.empty())
      write_file_atomic(fs::path(out_dir) / "tokenizer_config.json", src.grown_config);
    return p.string();
  }
  const tokenizer::TokenizerFiles f = tokenizer::find_tokenizer(src.path, /*quiet=*/true);
  tokenizer::copy_tokenizer_files(f, out_dir);
  return (fs::path(out_dir) / (f.tiktoken() ? "qwen.tiktoken" : "tokenizer.json")).string();
}

}  // namespace c3::train
