// C3Model: the cascade's forward passes (compress, decompress, teacher-forced loss) and its
// checkpoint layout.
#include "c3/c3_model.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "c3/batch_inputs.h"
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
  return encode_queries(encoder_inputs(*this, contexts).to(device()));
}

at::Tensor C3ModelImpl::encode_queries(const EncoderInputs& in) {
  const int64_t B = in.ids.size(0), T = in.ids.size(1), L = config.latent_token_len;
  const int64_t C = config.encoder.hidden_size;
  const at::Tensor idx3 = in.slot_index.unsqueeze(-1).expand({B, L, C});           // [B, L, C]
  at::Tensor embeds = encoder->embed(in.ids);                                       // [B, T, C]
  at::Tensor queries = Q->weight.unsqueeze(0).expand({B, L, C}).to(embeds.scalar_type());
  embeds = embeds.scatter(1, idx3, queries);  // the <imgpad> embeddings become Q
  // c3's own layouts (query_layout.h); the official one passes nothing and stays purely causal.
  model::ForwardInputs fwd;
  fwd.position_ids = in.positions;
  const at::Device dev = in.ids.device();
  if (config.query_mask != QueryMask::kCausal)
    fwd.attend = encoder_attend_mask(in.n_text, L, T, config.query_mask, dev);
  at::Tensor hidden = encoder->hidden(embeds, fwd);                                 // [B, T, C]
  at::Tensor out = hidden.gather(1, idx3);                                          // [B, L, C]
  if (config.query_pooling == QueryPooling::kSegmentMean)
    out = out + at::bmm(segment_mean_weights(in.n_text, L, T, dev).to(hidden.scalar_type()), hidden);
  return out;
}

at::Tensor C3ModelImpl::compress(const std::vector<std::vector<int32_t>>& contexts) {
  return compress(encoder_inputs(*this, contexts).to(device()));
}

at::Tensor C3ModelImpl::compress(const EncoderInputs& in) {
  model::SmallModelThreads threads(Q->weight, config.encoder.hidden_size);
  return mm_projector->forward(encode_queries(in));  // [B, L, C_dec]
}

at::Tensor C3ModelImpl::prompt_embeds(const at::Tensor& latents) {
  const int64_t B = latents.size(0), L = config.latent_token_len;
  const int64_t C = config.decoder.hidden_size, P = static_cast<int64_t>(prompt_ids_.size());
  TORCH_CHECK(latents.dim() == 3 && latents.size(1) == L && latents.size(2) == C,
              "latents must be [B, ", L, ", ", C, "], got ", latents.sizes());
  const at::Device dev = device();
  if (!prompt_dev_.defined() || prompt_dev_.device() != dev) {  // kept: no upload per step
    prompt_dev_ = model::upload(long_tensor(prompt_ids_), dev);
    slots_dev_ = model::upload(long_tensor(prompt_slots_), dev);
  }
  at::Tensor ids = prompt_dev_.unsqueeze(0).expand({B, P});
  at::Tensor embeds = decoder->embed(ids);                                         // [B, P, C]
  at::Tensor idx3 = slots_dev_.view({1, L, 1}).expand({B, L, C});
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
  if (opt.exact_length) return decompress_exact(prompts, g, opt);
  auto out = model::generate(decoder, prompts, g, opt.on_step);
  for (size_t b = 0; b < caps.size(); ++b)
    if (static_cast<int64_t>(out[b].size()) > caps[b]) out[b].resize(caps[b]);
  return out;
}

// DecompressOptions::exact_length. Greedy rows decode together to the longest length and are cut
// to their own (a greedy prefix does not depend on what follows); beam search decodes rows of one
// length together, so that each keeps the best beam at its own length.
std::vector<std::vector<int64_t>> C3ModelImpl::decompress_exact(
    const std::vector<model::Prompt>& prompts, model::GenerationConfig g,
    const DecompressOptions& opt) {
  const auto& n = opt.source_tokens;
  C3_CHECK(n.size() == prompts.size(),
           "decompress: exact_length needs the source length of each of the {} rows, got {}",
           prompts.size(), n.size());
  g.stop_tokens.clear();
  g.banned_tokens = {im_end_id_};
  std::map<int64_t, std::vector<size_t>> groups;  // length -> rows
  for (size_t b = 0; b < n.size(); ++b) {
    C3_CHECK(n[b] >= 0, "decompress: row {} has no source length ({})", b, n[b]);
    groups[g.num_beams > 1 ? n[b] : 0].push_back(b);
  }
  std::vector<std::vector<int64_t>> out(prompts.size());
  for (const auto& [len, rows] : groups) {
    std::vector<model::Prompt> ps;
    int64_t longest = 0;
    for (size_t b : rows) {
      ps.push_back(prompts[b]);
      longest = std::max(longest, n[b]);
    }
    g.max_new_tokens = longest;
    auto got = model::generate(decoder, ps, g, opt.on_step);
    for (size_t k = 0; k < rows.size(); ++k) {
      got[k].resize(std::min<size_t>(got[k].size(), n[rows[k]]));
      out[rows[k]] = std::move(got[k]);
    }
  }
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
  const TrainInputs in = train_inputs(*this, contexts, noise).to(device());
  const LossSums s = train_loss(in);
  LossOutput out;
  out.loss = s.loss_sum / static_cast<double>(in.n_targets);
  out.n_tokens = at::scalar_tensor(in.n_targets, at::TensorOptions().dtype(at::kLong));
  out.n_correct = s.n_correct;
  return out;
}

// Reads no host data and makes no host sync: a CUDA graph can capture it (train/graphed_loss.h).
LossSums C3ModelImpl::train_loss(const TrainInputs& in) {
  const int64_t B = in.target.size(0), Tt = in.target.size(1);
  const int64_t P = static_cast<int64_t>(prompt_ids_.size());
  // Position P - 1 + t predicts target t: each row's predicting states, flattened to [B * Tt, C],
  // and of those the real targets' (all of them at a fixed shape).
  const auto predictors = [&](const at::Tensor& hidden) {
    const at::Tensor h = hidden.narrow(1, P - 1, Tt).reshape({B * Tt, hidden.size(2)});
    return in.target_rows.defined() ? h.index_select(0, in.target_rows) : h;
  };
  const at::Tensor pe = prompt_embeds(compress(in.encoder));  // [B, P, C]
  at::Tensor reads = in.reads;                                // [B, Tt - 1]
  if (in.self_feed.defined()) {  // the clean teacher-forced pass's argmax where marked
    torch::NoGradGuard ng;
    const at::Tensor prefix = in.target.narrow(1, 0, Tt - 1);
    const at::Tensor clean =
        at::where(prefix.eq(model::kIgnoreTarget), at::scalar_tensor(pad_id_, prefix.options()), prefix);
    const at::Tensor h0 = decoder->hidden(at::cat({pe.detach(), decoder->embed(clean)}, 1), {});
    at::Tensor predicted = decoder->logits(predictors(h0)).argmax(-1);  // [N] or [B * Tt]
    if (in.target_rows.defined())
      predicted = at::full({B * Tt}, pad_id_, predicted.options()).index_copy_(0, in.target_rows, predicted);
    reads = at::where(in.self_feed, predicted.view({B, Tt}).narrow(1, 0, Tt - 1), reads);
  }
  const at::Tensor hidden = decoder->hidden(at::cat({pe, decoder->embed(reads)}, 1), {});  // [B, S, C]
  const at::Tensor h = predictors(hidden);
  const at::Tensor y = in.target_rows.defined() ? in.target.reshape({B * Tt}).index_select(0, in.target_rows)
                                                : in.target.reshape({B * Tt});
  model::CrossEntropyOutput ce;
  const model::CrossEntropyPath path = model::cross_entropy_path();
  if (path == model::CrossEntropyPath::kFull) {  // C3_CHUNKED_CE=0: the batch's whole logits
    ce = model::full_cross_entropy(h, decoder->output_weight(), y, /*sum=*/true);
  } else {
    model::ChunkedCrossEntropyOptions o;
    o.sum = true;
    o.recompute = path == model::CrossEntropyPath::kChunkedRecompute;
    ce = model::chunked_cross_entropy(h, decoder->output_weight(), y, o);
  }
  return {ce.loss, ce.n_correct};
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
