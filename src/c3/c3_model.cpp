// C3Model: the cascade's forward passes (compress, decompress, teacher-forced loss) and its
// checkpoint layout.
#include "c3/c3_model.h"

#include <cmath>
#include <filesystem>
#include <random>

#include "c3/query_layout.h"
#include "io/hf_config.h"
#include "io/safetensors.h"
#include "model/chunked_cross_entropy.h"
#include "model/cpu_threads.h"
#include "model/generate.h"
#include "model/upload.h"
#include "tokenizer/tokenizer_files.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/hash.h"

namespace c3::cascade {
namespace fs = std::filesystem;

std::string decoder_prompt_text(int64_t latent_token_len) {
  std::string slots = "<img>";
  for (int64_t i = 0; i < latent_token_len; ++i) slots += "<imgpad>";
  slots += "</img>";
  return "<|im_start|>system\nYou should follow the instructions carefully and explain your "
         "answers in detail.<|im_end|><|im_start|>user\n" +
         slots + "\nRepeat the text: <|im_end|><|im_start|>assistant\n";
}

int64_t chunk_token_budget(const DecompressOptions& opt, int64_t source_tokens) {
  if (opt.length_cap <= 0 || source_tokens < 0) return opt.max_new_tokens;
  const int64_t cap = static_cast<int64_t>(std::ceil(opt.length_cap * source_tokens)) + 16;
  return std::min(opt.max_new_tokens, cap);
}

std::string encoder_input_text(const std::string& context, int64_t latent_token_len) {
  std::string s = context + "<img>";
  for (int64_t i = 0; i < latent_token_len; ++i) s += "<imgpad>";
  return s + "</img>";
}

namespace {

// A special token must exist in the tokenizer, and agree with config.json where it names one.
int64_t special_id(const tokenizer::BpeTokenizer& tok, const char* text, int64_t from_config) {
  int64_t id = tok.token_id(text);
  C3_CHECK(id >= 0, "{} has no token '{}'; C3 needs <img>, </img>, <imgpad>, <|im_start|> and "
           "<|im_end|>. Train the tokenizer with `c3 tokenizer train`.", tok.origin(), text);
  C3_CHECK(from_config < 0 || from_config == id,
           "config.json says '{}' is token {} but {} gives {}; they must agree", text,
           from_config, tok.origin(), id);
  return id;
}

at::Tensor long_tensor(const std::vector<int64_t>& v) {
  return at::tensor(at::ArrayRef<int64_t>(v), at::TensorOptions().dtype(at::kLong));
}

}  // namespace

C3ModelImpl::C3ModelImpl(const C3Config& cfg, std::shared_ptr<const tokenizer::BpeTokenizer> tok)
    : config(cfg), tok_(std::move(tok)) {
  const int64_t L = cfg.latent_token_len;
  encoder = register_module("encoder", model::Qwen2ForCausalLM(cfg.encoder));
  decoder = register_module("decoder", model::Qwen2ForCausalLM(cfg.decoder));
  // Registered inside the decoder's `model` so that their names are the official keys.
  Q = decoder->model->register_module("Q", torch::nn::Embedding(L, cfg.encoder.hidden_size));
  mm_projector = decoder->model->register_module(
      "mm_projector",
      model::Linear(cfg.encoder.hidden_size, cfg.decoder.hidden_size));

  special_id(*tok_, "<img>", cfg.im_start_token);
  special_id(*tok_, "</img>", cfg.im_end_token);
  const int64_t patch = special_id(*tok_, "<imgpad>", cfg.im_patch_token);
  im_end_id_ = special_id(*tok_, "<|im_end|>", -1);
  special_id(*tok_, "<|im_start|>", -1);
  int64_t eot = tok_->token_id("<|endoftext|>");
  pad_id_ = eot >= 0 ? eot : 0;

  for (int32_t id : tok_->encode(decoder_prompt_text(L))) prompt_ids_.push_back(id);
  for (size_t i = 0; i < prompt_ids_.size(); ++i)
    if (prompt_ids_[i] == patch) prompt_slots_.push_back(static_cast<int64_t>(i));
  C3_CHECK(static_cast<int64_t>(prompt_slots_.size()) == L,
           "the decoder prompt tokenized to {} <imgpad> tokens, expected L = {}; is <imgpad> a "
           "special token of {}?", prompt_slots_.size(), L, tok_->origin());
  for (const auto& [half, vocab] : {std::pair<const char*, int64_t>{"encoder (llm1/config.json)",
                                                                    cfg.encoder.vocab_size},
                                    {"decoder (config.json)", cfg.decoder.vocab_size}}) {
    C3_CHECK(vocab >= tok_->vocab_size(),
             "{} has {} tokens (ids up to {}) but the {} vocab_size is {}: its embeddings "
             "cannot cover them. Is this the model's tokenizer?", tok_->origin(),
             tok_->vocab_size(), tok_->vocab_size() - 1, half, vocab);
  }
}

at::Device C3ModelImpl::device() const { return Q->weight.device(); }

std::vector<int64_t> C3ModelImpl::encoder_input_ids(const std::vector<int32_t>& context) const {
  std::vector<int64_t> ids(context.begin(), context.end());
  ids.push_back(config.im_start_token);
  ids.insert(ids.end(), config.latent_token_len, config.im_patch_token);
  ids.push_back(config.im_end_token);
  return ids;
}

at::Tensor C3ModelImpl::encode_queries(const std::vector<std::vector<int32_t>>& contexts) {
  C3_CHECK(!contexts.empty(), "compress: empty batch");
  const int64_t B = static_cast<int64_t>(contexts.size()), L = config.latent_token_len;
  const int64_t C = config.encoder.hidden_size;
  std::vector<int64_t> lens(B);
  int64_t T = 0;
  for (int64_t b = 0; b < B; ++b) {
    lens[b] = static_cast<int64_t>(contexts[b].size()) + L + 2;
    T = std::max(T, lens[b]);
  }
  // Right padding: each row's query slots end its real tokens, so causal attention never sees a
  // pad and no attention mask is needed (the fast path on GPU).
  std::vector<int64_t> flat(B * T, pad_id_), slot_start(B);
  for (int64_t b = 0; b < B; ++b) {
    auto row = encoder_input_ids(contexts[b]);
    std::copy(row.begin(), row.end(), flat.begin() + b * T);
    slot_start[b] = lens[b] - 1 - L;
  }
  const at::Device dev = device();
  at::Tensor ids = model::upload(long_tensor(flat).view({B, T}), dev);            // [B, T]
  at::Tensor idx = model::upload(long_tensor(slot_start), dev).unsqueeze(1) +
                   at::arange(L, at::TensorOptions().dtype(at::kLong).device(dev));  // [B, L]
  at::Tensor idx3 = idx.unsqueeze(-1).expand({B, L, C});                          // [B, L, C]

  at::Tensor embeds = encoder->embed(ids);                                        // [B, T, C]
  at::Tensor queries = Q->weight.unsqueeze(0).expand({B, L, C}).to(embeds.scalar_type());
  embeds = embeds.scatter(1, idx3, queries);  // the <imgpad> embeddings become Q
  // c3's own layouts (query_layout.h); the official one passes nothing and stays purely causal.
  model::ForwardInputs in;
  std::vector<int64_t> n_text(B);
  for (int64_t b = 0; b < B; ++b) n_text[b] = static_cast<int64_t>(contexts[b].size());
  if (config.query_positions != QueryPositions::kAfterText)
    in.position_ids =
        model::upload(encoder_position_ids(n_text, L, T, config.query_positions), dev);
  if (config.query_mask != QueryMask::kCausal)
    in.attend = encoder_attend_mask(n_text, L, T, config.query_mask, dev);
  at::Tensor hidden = encoder->hidden(embeds, in);                                // [B, T, C]
  at::Tensor out = hidden.gather(1, idx3);                                        // [B, L, C]
  if (config.query_pooling == QueryPooling::kSegmentMean)
    out = out + at::bmm(segment_mean_weights(n_text, L, T, dev).to(hidden.scalar_type()), hidden);
  return out;
}

at::Tensor C3ModelImpl::compress(const std::vector<std::vector<int32_t>>& contexts) {
  model::SmallModelThreads threads(Q->weight, config.encoder.hidden_size);
  return mm_projector->forward(encode_queries(contexts));  // [B, L, C_dec]
}

at::Tensor C3ModelImpl::prompt_embeds(const at::Tensor& latents) {
  const int64_t B = latents.size(0), L = config.latent_token_len;
  const int64_t C = config.decoder.hidden_size, P = static_cast<int64_t>(prompt_ids_.size());
  TORCH_CHECK(latents.dim() == 3 && latents.size(1) == L && latents.size(2) == C,
              "latents must be [B, ", L, ", ", C, "], got ", latents.sizes());
  const at::Device dev = device();
  at::Tensor ids = model::upload(long_tensor(prompt_ids_), dev).unsqueeze(0).expand({B, P});
  at::Tensor embeds = decoder->embed(ids);                                         // [B, P, C]
  at::Tensor idx3 = model::upload(long_tensor(prompt_slots_), dev).view({1, L, 1}).expand({B, L, C});
  return embeds.scatter(1, idx3, latents.to(dev, embeds.scalar_type()));
}

std::vector<std::vector<int64_t>> C3ModelImpl::decompress(const at::Tensor& latents,
                                                          const DecompressOptions& opt) {
  at::Tensor pe = prompt_embeds(latents);
  std::vector<model::Prompt> prompts(pe.size(0));
  for (int64_t b = 0; b < pe.size(0); ++b) {
    prompts[b].ids = prompt_ids_;
    prompts[b].embeds = pe[b];
  }
  model::GenerationConfig g;
  g.max_new_tokens = opt.max_new_tokens;
  std::vector<int64_t> caps;  // per row, from the source lengths
  if (opt.length_cap > 0 && !opt.source_tokens.empty()) {
    C3_CHECK(static_cast<int64_t>(opt.source_tokens.size()) == pe.size(0),
             "decompress: {} source lengths for {} latent rows", opt.source_tokens.size(),
             pe.size(0));
    int64_t longest = 0;
    for (int64_t n : opt.source_tokens) {
      caps.push_back(chunk_token_budget(opt, n));
      longest = std::max(longest, caps.back());
    }
    g.max_new_tokens = longest;
  }
  g.no_repeat_ngram_size = opt.no_repeat_ngram_size;
  g.num_beams = opt.num_beams;
  if (opt.stop_at_im_end) g.stop_tokens = {im_end_id_};
  auto out = model::generate(decoder, prompts, g, opt.on_step);
  for (size_t b = 0; b < caps.size(); ++b)
    if (static_cast<int64_t>(out[b].size()) > caps[b]) out[b].resize(caps[b]);
  return out;
}

std::vector<model::DecodeRow> C3ModelImpl::decode_rows(const at::Tensor& latents,
                                                       const DecompressOptions& opt) {
  C3_CHECK(opt.num_beams == 1, "continuous batching decodes greedily; {} beams need "
           "decompress()", opt.num_beams);
  C3_CHECK(opt.max_new_tokens >= 0, "max_new_tokens must be >= 0, got {}", opt.max_new_tokens);
  const at::Tensor pe = prompt_embeds(latents);  // [B, P, C]
  const int64_t B = pe.size(0);
  C3_CHECK(opt.source_tokens.empty() || static_cast<int64_t>(opt.source_tokens.size()) == B,
           "decode_rows: {} source lengths for {} latent rows", opt.source_tokens.size(), B);
  std::vector<model::DecodeRow> rows(B);
  for (int64_t b = 0; b < B; ++b) {
    rows[b].prompt.ids = prompt_ids_;
    rows[b].prompt.embeds = pe[b];
    rows[b].max_new_tokens =
        chunk_token_budget(opt, opt.source_tokens.empty() ? -1 : opt.source_tokens[b]);
    rows[b].no_repeat_ngram_size = opt.no_repeat_ngram_size;
    if (opt.stop_at_im_end) rows[b].stop_tokens = {im_end_id_};
  }
  return rows;
}

at::Tensor C3ModelImpl::prompt_logits(const at::Tensor& latents) {
  return decoder->logits(decoder->hidden(prompt_embeds(latents), {}));
}

LossOutput C3ModelImpl::reconstruction_loss(const std::vector<std::vector<int32_t>>& contexts,
                                            const InputNoise& noise) {
  const int64_t B = static_cast<int64_t>(contexts.size());
  const int64_t P = static_cast<int64_t>(prompt_ids_.size());
  at::Tensor pe = prompt_embeds(compress(contexts));  // [B, P, C]
  // Targets: the passage then <|im_end|>, right-padded. `rows` picks each real target's hidden
  // state out of the flattened [B * S, C] decoder output (built here, so no mask -> nonzero sync).
  int64_t Tt = 0;
  for (auto& c : contexts) Tt = std::max<int64_t>(Tt, static_cast<int64_t>(c.size()) + 1);
  const int64_t S = P + Tt - 1;  // decoder input length
  std::vector<int64_t> tgt(B * Tt, pad_id_), rows, y_host;
  for (int64_t b = 0; b < B; ++b) {
    const auto& c = contexts[b];
    for (size_t t = 0; t <= c.size(); ++t) {
      const int64_t id = t < c.size() ? c[t] : im_end_id_;
      tgt[b * Tt + t] = id;
      rows.push_back(b * S + P - 1 + static_cast<int64_t>(t));  // the state that predicts t
      y_host.push_back(id);
    }
  }
  const at::Device dev = device();
  at::Tensor target = model::upload(long_tensor(tgt).view({B, Tt}), dev);  // [B, Tt]
  // Teacher forcing: the decoder sees prompt + target[:-1] and predicts target at P-1 ... .
  at::Tensor seen = target.narrow(1, 0, Tt - 1);  // [B, Tt - 1]
  if (noise.rate > 0 || noise.self_feed > 0) {
    C3_CHECK(noise.rate >= 0 && noise.self_feed >= 0 && noise.rate + noise.self_feed <= 1.0,
             "input noise {} + self-feed {} must lie in [0, 1]", noise.rate, noise.self_feed);
    std::vector<int64_t> predicted;  // per target, in `rows` order: the clean pass's argmax
    if (noise.self_feed > 0) {
      torch::NoGradGuard ng;
      const at::Tensor h0 = decoder->hidden(at::cat({pe.detach(), decoder->embed(seen)}, 1), {});
      const at::Tensor r = model::upload(long_tensor(rows), dev);
      const at::Tensor ids =
          decoder->logits(h0.reshape({B * S, h0.size(2)}).index_select(0, r)).argmax(-1).cpu();
      predicted.assign(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel());
    }
    std::vector<int64_t> in(tgt);
    std::mt19937_64 rng(noise.key);
    std::uniform_real_distribution<double> coin(0.0, 1.0);
    std::uniform_int_distribution<int64_t> any_id(0, tok().vocab_size() - 1);
    size_t n = 0;  // index into `rows` order: row b's targets follow row b-1's
    for (int64_t b = 0; b < B; ++b) {
      for (size_t t = 0; t < contexts[b].size(); ++t) {
        const double c = coin(rng);
        if (c < noise.rate) {
          in[b * Tt + t] = any_id(rng);
        } else if (c < noise.rate + noise.self_feed) {
          in[b * Tt + t] = predicted[n + t];
        }
      }
      n += contexts[b].size() + 1;
    }
    seen = model::upload(long_tensor(in).view({B, Tt}), dev).narrow(1, 0, Tt - 1);
  }
  at::Tensor inputs = at::cat({pe, decoder->embed(seen)}, 1);  // [B, S, C]
  at::Tensor hidden = decoder->hidden(inputs, {});                                     // [B, S, C]
  at::Tensor h = hidden.reshape({B * S, hidden.size(2)}).index_select(0, model::upload(long_tensor(rows), dev));
  at::Tensor y = model::upload(long_tensor(y_host), dev);  // [N]
  LossOutput out;
  out.n_tokens = at::scalar_tensor(y.size(0), at::TensorOptions().dtype(at::kLong));
  const model::CrossEntropyPath path = model::cross_entropy_path();
  if (path == model::CrossEntropyPath::kFull) {  // C3_CHUNKED_CE=0: the batch's whole logits
    const at::Tensor logits = decoder->logits(h);  // [N, V] fp32
    out.loss = at::cross_entropy_loss(logits, y);
    out.n_correct = logits.detach().argmax(-1).eq(y).sum();
    return out;
  }
  model::ChunkedCrossEntropyOptions o;
  o.recompute = path == model::CrossEntropyPath::kChunkedRecompute;
  const model::CrossEntropyOutput ce = model::chunked_cross_entropy(h, decoder->output_weight(), y, o);
  out.loss = ce.loss;
  out.n_correct = ce.n_correct;
  return out;
}

void C3ModelImpl::fuse_projections() {
  encoder->fuse_projections();
  decoder->fuse_projections();
}

// ----------------------------------------------------------------------------------------------
// Checkpoints

static void hash_checkpoint(Hasher& h, const std::string& dir) {
  io::Checkpoint ck = io::Checkpoint::open(dir);
  for (const auto& name : ck.names()) {
    auto [ptr, n] = ck.bytes(name);
    h.update(name);
    h.update(ptr, n);
  }
}

std::string fingerprint_c3(const std::string& dir) {
  Hasher h;
  h.update(read_file(fs::path(dir) / "config.json"));
  h.update(read_file(fs::path(dir) / "llm1" / "config.json"));
  hash_checkpoint(h, dir);
  hash_checkpoint(h, (fs::path(dir) / "llm1").string());
  return h.hex();
}

LoadedC3 load_c3(const std::string& dir, at::ScalarType dtype, at::Device device) {
  LoadedC3 out;
  out.dir = dir;
  C3Config cfg = C3Config::from_dir(dir);
  out.tok = std::make_shared<tokenizer::BpeTokenizer>(tokenizer::load_tokenizer(dir));
  {
    model::ParameterPlacement place(device, dtype);  // every weight is loaded: skip the random init
    out.model = C3Model(cfg, out.tok);
  }
  out.model->to(device, dtype);
  model::load_parameters(*out.model->encoder, io::Checkpoint::open((fs::path(dir) / "llm1").string()));
  model::load_parameters(*out.model->decoder, io::Checkpoint::open(dir));
  out.model->eval();
  out.model->fuse_projections();
  out.fingerprint = fingerprint_c3(dir);
  return out;
}

void save_c3(C3Model& m, const std::string& tokenizer, const std::string& dir,
             at::ScalarType dtype) {
  fs::create_directories(fs::path(dir) / "llm1");
  io::save_json((fs::path(dir) / "config.json").string(), m->config.decoder_json());
  nlohmann::json gen = {{"eos_token_id", m->im_end_id()}, {"transformers_version", "5.17.0"}};
  io::save_json((fs::path(dir) / "generation_config.json").string(), gen);
  model::save_parameters(*m->decoder, (fs::path(dir) / "model.safetensors").string(), dtype,
                         {{"format", "pt"}});
  io::save_json((fs::path(dir) / "llm1" / "config.json").string(), m->config.encoder.to_json());
  model::save_parameters(*m->encoder, (fs::path(dir) / "llm1" / "model.safetensors").string(),
                         dtype, {{"format", "pt"}});
  tokenizer::copy_tokenizer_files(tokenizer::find_tokenizer(tokenizer, /*quiet=*/true), dir);
}

}  // namespace c3::cascade
