// Model initialisation for training.
#include "train/model_init.h"

#include <filesystem>

#include "io/safetensors.h"
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

cascade::C3Model build_model(const ModelInit& init, std::string* tokenizer_path) {
  if (!init.from_c3.empty()) {
    cascade::LoadedC3 l = cascade::load_c3(init.from_c3, at::kFloat, at::kCPU);
    *tokenizer_path = (fs::path(init.from_c3) / "tokenizer.json").string();
    apply_query_layout(init, l.model->config);
    l.model->train();
    return l.model;
  }
  C3_CHECK(!init.tokenizer.empty(),
           "training from scratch needs --tokenizer FILE (make one with `c3 tokenizer train`)");
  auto tok = std::make_shared<tokenizer::BpeTokenizer>(tokenizer::BpeTokenizer::from_file(init.tokenizer));
  *tokenizer_path = init.tokenizer;
  auto qwen_cfg = [&](const std::string& cfg, const std::string& hf, const char* which) {
    if (!hf.empty()) return model::Qwen2Config::from_file((fs::path(hf) / "config.json").string());
    C3_CHECK(!cfg.empty(), "give --{0}-config FILE (Qwen2 dims) or --{0}-hf DIR", which);
    return model::Qwen2Config::from_file(cfg);
  };
  cascade::C3Config c;
  c.encoder = qwen_cfg(init.encoder_config, init.encoder_hf, "encoder");
  c.decoder = qwen_cfg(init.decoder_config, init.decoder_hf, "decoder");
  c.latent_token_len = init.latents;
  c.contexts_compression_llm_hidden_size = c.encoder.hidden_size;
  c.im_start_token = tok->token_id("<img>");
  c.im_end_token = tok->token_id("</img>");
  c.im_patch_token = tok->token_id("<imgpad>");
  c.max_passage_tokens = init.max_passage_tokens;
  apply_query_layout(init, c);
  c.decoder.eos_token_id = {tok->token_id("<|im_end|>")};
  // A vocabulary smaller than the tokenizer's would index out of range: grow it to fit.
  c.encoder.vocab_size = std::max<int64_t>(c.encoder.vocab_size, tok->vocab_size());
  c.decoder.vocab_size = std::max<int64_t>(c.decoder.vocab_size, tok->vocab_size());
  torch::manual_seed(init.seed);
  cascade::C3Model m(c, tok);
  model::init_weights(*m, 0.02);
  if (!init.encoder_hf.empty())
    model::load_parameters(*m->encoder, io::Checkpoint::open(init.encoder_hf));
  if (!init.decoder_hf.empty()) {
    // The HF decoder lacks Q and the projector: load its keys into a plain Qwen2 and copy.
    model::Qwen2ForCausalLM plain(c.decoder);
    model::load_parameters(*plain, io::Checkpoint::open(init.decoder_hf));
    torch::NoGradGuard ng;
    auto src = plain->named_parameters();
    for (auto& p : m->decoder->named_parameters())
      if (src.contains(p.key())) p.value().copy_(src[p.key()]);
  }
  m->train();
  return m;
}

}  // namespace c3::train
