// The training loop: data -> teacher-forced reconstruction loss -> AdamW, with checkpoints,
// validation, JSON-lines logs and optional data parallelism. Read top to bottom.
#include "train/trainer.h"

#include <torch/cuda.h>
#include <torch/version.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "io/hf_config.h"
#include "io/torch_compat.h"
#include "model/kernel_trace.h"
#include "model/upload.h"
#include "train/adamw.h"
#include "train/data_loader.h"
#include "train/distributed.h"
#include "train/lr_schedule.h"
#include "train/passage_sampler.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/jsonl_log.h"
#include "util/line_reader.h"
#include "util/progress_bar.h"
#include "util/remove_tree.h"

#ifndef C3_GIT_COMMIT
#define C3_GIT_COMMIT "unknown"
#endif

namespace c3::train {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::set<std::string> split_set(const std::string& s) {
  std::set<std::string> out;
  size_t b = 0;
  while (b <= s.size()) {
    size_t e = s.find(',', b);
    if (e == std::string::npos) e = s.size();
    if (e > b) out.insert(s.substr(b, e - b));
    b = e + 1;
  }
  return out;
}

// C3_TRAIN_PROFILE=1: where a step's time goes. Each mark() waits for the device, so profiled
// steps are slower than normal ones; the shares are what matters.
class PhaseTimer {
 public:
  PhaseTimer(at::Device device, bool on) : device_(device), on_(on) {}
  void start() {
    if (!on_) return;
    sync();
    last_ = Clock::now();
    cur_.clear();
  }
  void mark(const std::string& phase) {
    if (!on_) return;
    sync();
    const auto now = Clock::now();
    cur_[phase] += std::chrono::duration<double>(now - last_).count();
    last_ = now;
  }
  void keep() {  // count the step just timed
    if (!on_) return;
    for (auto& [k, v] : cur_) total_[k] += v;
    ++steps_;
  }
  bool on() const { return on_; }
  nlohmann::json report() const {
    nlohmann::json j = {{"event", "profile"}, {"steps", steps_}};
    for (auto& [k, v] : total_) j["ms_per_step"][k] = steps_ ? 1e3 * v / steps_ : 0.0;
    return j;
  }

 private:
  void sync() {
    if (device_.is_cuda()) torch::cuda::synchronize();
  }
  at::Device device_;
  bool on_;
  Clock::time_point last_;
  std::map<std::string, double> cur_, total_;
  int64_t steps_ = 0;
};

// Which parameters train, and which get weight decay (not norms, biases, Q, embeddings).
struct ParamSplit {
  std::vector<at::Tensor> decay, no_decay, all;
};

ParamSplit split_parameters(cascade::C3Model& m, const TrainOptions& opt) {
  const std::set<std::string> frozen = split_set(opt.freeze);
  for (const auto& f : frozen)
    C3_CHECK(f == "encoder" || f == "decoder" || f == "embeddings" || f == "queries" ||
                 f == "projector",
             "--freeze: unknown part '{}'; use encoder, decoder, embeddings, queries, projector", f);
  ParamSplit s;
  for (auto& p : m->named_parameters()) {
    const std::string& name = p.key();
    at::Tensor t = p.value();
    const bool is_q = name.find("model.Q.") != std::string::npos;
    const bool is_proj = name.find("mm_projector") != std::string::npos;
    const bool is_emb = name.find("embed_tokens") != std::string::npos ||
                        name.find("lm_head") != std::string::npos;
    bool freeze = (is_q && frozen.count("queries")) || (is_proj && frozen.count("projector")) ||
                  (is_emb && frozen.count("embeddings"));
    if (!is_q && !is_proj) {
      if (name.rfind("encoder.", 0) == 0 && frozen.count("encoder")) freeze = true;
      if (name.rfind("decoder.", 0) == 0 && frozen.count("decoder")) freeze = true;
    }
    t.set_requires_grad(!freeze);
    if (freeze) continue;
    s.all.push_back(t);
    const bool decay = t.dim() >= 2 && !is_q && (!is_emb || opt.decay_embeddings);
    (decay ? s.decay : s.no_decay).push_back(t);
  }
  return s;
}

// Training FLOPs for one passage of T text tokens (forward + backward = 3x forward).
struct FlopModel {
  double enc_layer_params = 0, dec_layer_params = 0;
  int64_t enc_layers = 0, dec_layers = 0, enc_c = 0, dec_c = 0, vocab = 0, L = 0, P = 0;
  double passage(int64_t T) const {
    const double te = T + L + 2, td = P + T + 1;
    double f = 2.0 * (enc_layer_params * te + dec_layer_params * td) + 2.0 * dec_c * vocab * (T + 1);
    f += 2.0 * enc_layers * enc_c * te * te + 2.0 * dec_layers * dec_c * td * td;  // causal attn
    return 3.0 * f;
  }
};

FlopModel flop_model(cascade::C3Model& m) {
  FlopModel f;
  for (auto& p : m->encoder->model->layers->named_parameters()) f.enc_layer_params += p.value().numel();
  for (auto& p : m->decoder->model->layers->named_parameters()) f.dec_layer_params += p.value().numel();
  f.enc_layers = m->config.encoder.num_hidden_layers;
  f.dec_layers = m->config.decoder.num_hidden_layers;
  f.enc_c = m->config.encoder.hidden_size;
  f.dec_c = m->config.decoder.hidden_size;
  f.vocab = m->config.decoder.vocab_size;
  f.L = m->latent_len();
  f.P = static_cast<int64_t>(m->prompt_ids().size());
  return f;
}

// Plain next-token loss of the decoder on the passages (the auxiliary LM objective), summed over
// its targets (the caller weights it per token).
at::Tensor decoder_lm_loss_sum(cascade::C3Model& m, const std::vector<std::vector<int32_t>>& ids) {
  int64_t T = 0;
  for (auto& r : ids) T = std::max<int64_t>(T, static_cast<int64_t>(r.size()));
  if (T < 2) return at::zeros({}, m->Q->weight.options().dtype(at::kFloat));
  const int64_t B = static_cast<int64_t>(ids.size());
  std::vector<int64_t> flat(B * T, 0), rows, y;  // rows: states (of [B * (T-1)]) with a target
  for (int64_t b = 0; b < B; ++b)
    for (size_t t = 0; t < ids[b].size(); ++t) {
      flat[b * T + t] = ids[b][t];
      if (t > 0) {
        rows.push_back(b * (T - 1) + static_cast<int64_t>(t) - 1);
        y.push_back(ids[b][t]);
      }
    }
  const at::Device dev = m->device();
  auto up = [&](const std::vector<int64_t>& v) {
    return model::upload(at::tensor(at::ArrayRef<int64_t>(v), at::kLong), dev);
  };
  at::Tensor x = up(flat).view({B, T});
  at::Tensor h = m->decoder->hidden(m->decoder->embed(x.narrow(1, 0, T - 1)), {});  // [B, T-1, C]
  at::Tensor logits = m->decoder->logits(h.reshape({B * (T - 1), h.size(2)}).index_select(0, up(rows)));
  return at::cross_entropy_loss(logits, up(y), {}, at::Reduction::Sum);
}

// Held-out passages, cut deterministically from the valid files.
std::vector<Passage> valid_passages(const tokenizer::BpeTokenizer& tok, const TrainOptions& opt,
                                    const LengthDist& dist) {
  std::vector<Passage> out;
  if (opt.valid_files.empty() || opt.eval_passages <= 0) return out;
  CorpusReader reader(opt.valid_files);
  std::string text;
  int64_t i = 0;
  while (static_cast<int64_t>(out.size()) < opt.eval_passages && reader.next(text)) {
    // Targets spread evenly over the length distribution.
    const double frac = opt.eval_passages > 1 ? double(out.size()) / (opt.eval_passages - 1) : 1.0;
    const int64_t target = dist.lo + static_cast<int64_t>(frac * (dist.hi - dist.lo));
    Passage p = cut_passage(tok, text, target, 1000003ull * (i++) + opt.seed);
    if (p.n_tokens() >= std::min<int64_t>(dist.lo, target) / 2 && p.n_tokens() > 0) out.push_back(p);
  }
  return out;
}

std::vector<int32_t> truncated(const std::vector<int32_t>& ids, int64_t n) {
  return std::vector<int32_t>(ids.begin(), ids.begin() + std::min<int64_t>(n, ids.size()));
}

void prune_checkpoints(const std::string& run_dir, int64_t keep) {
  std::vector<fs::path> steps;
  for (auto& e : fs::directory_iterator(run_dir))
    if (e.is_directory() && e.path().filename().string().rfind("step-", 0) == 0)
      steps.push_back(e.path());
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + keep < steps.size(); ++i) c3::remove_tree(steps[i]);
}

}  // namespace

std::string latest_checkpoint(const std::string& run_dir) {
  if (fs::exists(fs::path(run_dir) / "trainer_state.json")) return run_dir;
  std::string best;
  if (!fs::is_directory(run_dir)) return best;
  for (auto& e : fs::directory_iterator(run_dir)) {
    const std::string name = e.path().filename().string();
    if (e.is_directory() && name.rfind("step-", 0) == 0 &&
        fs::exists(e.path() / "trainer_state.json") && e.path().string() > best)
      best = e.path().string();
  }
  return best;
}

double input_noise_scale(int64_t step, int64_t total_steps, double decay_fraction) {
  if (decay_fraction <= 0) return 1.0;
  const double end = decay_fraction * static_cast<double>(std::max<int64_t>(1, total_steps));
  return std::max(0.0, 1.0 - static_cast<double>(step) / end);
}

TrainResult train(const TrainOptions& opt) {
  // ---- 1. processes, device, seeds -------------------------------------------------------
  DistEnv env = DistEnv::from_env();
  at::Device device(opt.device);
  if (device.is_cuda() && env.is_distributed()) device = at::Device(at::kCUDA, env.local_rank);
  const bool rank0 = env.rank == 0;
  const bool use_bf16 = opt.bf16 && device.is_cuda();
  if (device.is_cuda()) compat::prefer_flash_attention();
  C3_CHECK(!opt.out_dir.empty(), "c3 train needs --out DIR for checkpoints and logs");
  C3_CHECK(!opt.train_files.empty(), "c3 train needs --train FILES (JSONL, optionally .xz)");
  C3_CHECK(opt.batch_size > 0 && opt.grad_accum > 0 && opt.max_steps > 0,
           "--batch-size, --grad-accum and --steps must be positive");
  if (rank0) fs::create_directories(opt.out_dir);

  // ---- 2. model (fresh, or from a checkpoint when resuming) ------------------------------
  std::string resume_dir = opt.resume.empty() ? "" : latest_checkpoint(opt.resume);
  C3_CHECK(opt.resume.empty() || !resume_dir.empty(),
           "--resume '{}': no checkpoint there (expected a step-* folder with trainer_state.json)",
           opt.resume);
  std::string tok_path;
  ModelInit init = opt.init;
  if (!resume_dir.empty()) {
    init = ModelInit{};
    init.from_c3 = resume_dir;
  }
  cascade::C3Model model = build_model(init, &tok_path);
  const tokenizer::BpeTokenizer& tok = model->tok();
  model->to(device);
  model->fuse_projections();  // after the last to(): validation decodes take the fused path
  model->train();
  model->encoder->model->activation_checkpointing = opt.activation_checkpointing;
  model->decoder->model->activation_checkpointing = opt.activation_checkpointing;
  std::unique_ptr<DataParallel> dp;
  if (env.is_distributed()) {
    dp = std::make_unique<DataParallel>(env, device);
    dp->broadcast_parameters(*model);
  }

  // ---- 3. optimizer ----------------------------------------------------------------------
  ParamSplit params = split_parameters(model, opt);
  AdamW optimizer(params.decay, params.no_decay, opt.weight_decay,
                  AdamWConfig{opt.beta1, opt.beta2, opt.eps});
  // DDP's overlap: each gradient bucket's all-reduce starts while backward still runs. Not with
  // activation checkpointing, whose recomputation can deliver a parameter's grad twice.
  const bool overlap = dp && opt.overlap_allreduce && !opt.activation_checkpointing;
  if (overlap) dp->register_overlap(params.all);
  LrSchedule schedule{opt.lr, opt.min_lr_ratio, opt.warmup_steps, opt.max_steps};

  // ---- 4. data ---------------------------------------------------------------------------
  const LengthDist dist = LengthDist::parse(opt.lengths);
  DataOptions dopt;
  dopt.files = opt.train_files;
  dopt.lengths = dist;
  dopt.batch_size = opt.batch_size * env.world_size;  // the loader counts the global batch
  dopt.seed = opt.seed;
  dopt.n_threads = opt.data_threads;
  dopt.rank = env.rank;
  dopt.world_size = env.world_size;
  dopt.bucket_docs = opt.bucket_docs;
  DataLoader loader(tok, dopt);
  std::vector<Passage> valid = rank0 ? valid_passages(tok, opt, dist) : std::vector<Passage>{};

  // ---- 5. resume state -------------------------------------------------------------------
  int64_t step = 0, tokens_seen = 0;
  int64_t cur_len = opt.curriculum_start > 0 ? opt.curriculum_start : dist.hi;
  double smooth_loss = -1;
  if (!resume_dir.empty()) {
    io::JsonFile st = io::JsonFile::load((fs::path(resume_dir) / "trainer_state.json").string());
    step = st.required<int64_t>("step");
    tokens_seen = st.required<int64_t>("tokens_seen");
    cur_len = st.required<int64_t>("curriculum_len");
    smooth_loss = st.required<double>("smooth_loss");
    loader.restore(st.json().at("data"));
    optimizer.load((fs::path(resume_dir) / "optimizer.pt").string());
  }

  // ---- 6. logging ------------------------------------------------------------------------
  std::unique_ptr<JsonlLog> log;
  const std::string log_path = (fs::path(opt.out_dir) / "train_log.jsonl").string();
  const FlopModel flops = flop_model(model);
  if (rank0) {
    log = std::make_unique<JsonlLog>(log_path, /*append=*/!resume_dir.empty());
    nlohmann::json start = {
        {"event", "start"}, {"git_commit", C3_GIT_COMMIT}, {"libtorch", TORCH_VERSION},
        {"device", device.str()}, {"world_size", env.world_size}, {"bf16", use_bf16},
        {"params", count_parameters(*model)}, {"resume", resume_dir},
        {"encoder", model->config.encoder.to_json()}, {"decoder", model->config.decoder.to_json()},
        {"latents", model->latent_len()},
        {"query_positions", cascade::name_of(model->config.query_positions)},
        {"query_mask", cascade::name_of(model->config.query_mask)},
        {"query_pooling", cascade::name_of(model->config.query_pooling)},
        {"lengths", opt.lengths}, {"batch_size", opt.batch_size},
        {"grad_accum", opt.grad_accum}, {"lr", opt.lr}, {"steps", opt.max_steps},
        {"aux_lm_weight", opt.aux_lm_weight}, {"input_noise", opt.input_noise},
        {"self_feed", opt.self_feed}, {"input_noise_decay", opt.input_noise_decay},
        {"curriculum_start", opt.curriculum_start},
        {"seed", opt.seed}};
    log->write(start);
    std::fprintf(stderr, "c3 train: %s, %lld params, device %s x%d, %s\n", TORCH_VERSION,
                 static_cast<long long>(count_parameters(*model)), device.str().c_str(),
                 env.world_size, use_bf16 ? "bf16 autocast" : "fp32");
  }

  // ---- 7. validation: loss on held-out passages and char precision of greedy decoding -----
  auto validate = [&](int64_t at_step) {
    if (!rank0 || valid.empty()) return;
    torch::NoGradGuard ng;
    model->eval();
    compat::AutocastGuard ac(use_bf16, device);
    double loss = 0, prec = 0;
    int64_t n_prec = 0, correct = 0, total = 0;
    for (const Passage& p : valid) {
      std::vector<std::vector<int32_t>> one = {truncated(p.ids, cur_len)};
      auto out = model->reconstruction_loss(one);
      loss += out.loss.item<double>();
      correct += out.n_correct.item<int64_t>();
      total += out.n_tokens.item<int64_t>();
    }
    if (opt.char_precision) {
      for (size_t i = 0; i < valid.size() && i < 4; ++i) {
        auto ids = truncated(valid[i].ids, cur_len);
        std::string ref = tok.decode(ids);
        cascade::DecompressOptions d;
        d.max_new_tokens = static_cast<int64_t>(ids.size()) + 16;
        auto gen = model->decompress(model->compress({ids}), d);
        prec += opt.char_precision(tok.decode(std::vector<int32_t>(gen[0].begin(), gen[0].end())), ref);
        ++n_prec;
      }
    }
    nlohmann::json rec = {{"event", "valid"}, {"step", at_step},
                          {"valid_loss", loss / valid.size()},
                          {"valid_token_accuracy", total ? double(correct) / total : 0.0},
                          {"curriculum_len", cur_len}};
    if (n_prec) rec["valid_char_precision"] = prec / n_prec;
    log->write(rec);
    std::fprintf(stderr, "\n[valid] step %lld loss %.4f token acc %.4f%s\n",
                 static_cast<long long>(at_step), loss / valid.size(),
                 total ? double(correct) / total : 0.0,
                 n_prec ? fmt::format(" char precision {:.4f}", prec / n_prec).c_str() : "");
    model->train();
  };

  // ---- 8. checkpoints: written to a temp folder, then renamed (atomic) --------------------
  // The tokenizer is copied into the run folder once: a resumed run's source checkpoint (where
  // tok_path pointed) is pruned after keep_last newer saves, and every save copies it.
  if (rank0) {
    const fs::path run_tok = fs::path(opt.out_dir) / "tokenizer.json";
    std::error_code ec;
    if (!fs::equivalent(tok_path, run_tok, ec)) write_file_atomic(run_tok, read_file(tok_path));
    tok_path = run_tok.string();
  }
  auto step_dir = [&](int64_t at_step) {
    return fs::path(opt.out_dir) / fmt::format("step-{:07d}", at_step);
  };
  // The step whose checkpoint in out_dir is already this state (resumed from it, or just saved):
  // saving it again would only rewrite it, and a kill in the middle used to leave a broken newest.
  int64_t saved_step = -1;
  {
    std::error_code ec;
    if (!resume_dir.empty() && fs::equivalent(resume_dir, step_dir(step), ec)) saved_step = step;
  }
  std::string last_ckpt = saved_step >= 0 ? step_dir(step).string() : "";
  auto save = [&](int64_t at_step) {
    if (!rank0 || at_step == saved_step) return;
    const fs::path final_dir = step_dir(at_step);
    const std::string name = final_dir.filename().string();
    const fs::path tmp = fs::path(opt.out_dir) / (".tmp-" + name);
    c3::remove_tree(tmp);
    cascade::save_c3(model, tok_path, tmp.string(), at::kFloat);
    optimizer.save((tmp / "optimizer.pt").string());
    nlohmann::json st = {{"step", at_step}, {"tokens_seen", tokens_seen},
                         {"curriculum_len", cur_len}, {"smooth_loss", smooth_loss},
                         {"data", loader.state()}, {"seed", opt.seed}};
    io::save_json((tmp / "trainer_state.json").string(), st);
    fsync_dir(tmp);
    // An older folder of the same name is moved aside, not deleted, before the new one takes its
    // place: at every moment the newest step-* folder is complete (a kill between the renames
    // leaves the previous step as the newest).
    const fs::path old = fs::path(opt.out_dir) / (".old-" + name);
    c3::remove_tree(old);
    if (fs::exists(final_dir)) fs::rename(final_dir, old);
    fs::rename(tmp, final_dir);
    fsync_dir(opt.out_dir);
    c3::remove_tree(old);
    prune_checkpoints(opt.out_dir, std::max<int64_t>(1, opt.keep_last));
    last_ckpt = final_dir.string();
    saved_step = at_step;
  };

  // ---- 9. the loop -----------------------------------------------------------------------
  TrainResult res;
  ProgressBar bar("train", opt.max_steps, "step");
  bar.set(step);
  const auto t_start = Clock::now();
  double timed_seconds = 0, timed_flops = 0;
  int64_t timed_tokens = 0;
  const char* prof_env = std::getenv("C3_TRAIN_PROFILE");
  PhaseTimer phases(device, prof_env && std::string(prof_env) == "1");
  const int64_t warm_steps = step + 3;
  const char* trace_path = std::getenv("C3_TRAIN_TRACE");
  model::KernelTrace trace;  // steps warm_steps+1 .. warm_steps+3 when C3_TRAIN_TRACE is set (rank 0)
  // --fit-steps-to-time: the step count is fitted at fit_step from the rate since warm_steps,
  // then again every kRefit steps from the rate since the last fit (steps slow down as the
  // curriculum lengthens passages). The ranks agree on it (and on running out of time) through
  // the step's count all-reduce, so no rank stops alone and leaves the others in a collective.
  int64_t last_step = opt.max_steps;
  const bool fit_to_time = opt.fit_steps_to_time && opt.max_minutes > 0;
  const int64_t fit_step = warm_steps + 30, kRefit = 100;
  auto t_fit = Clock::now();
  int64_t fit_from = warm_steps;
  while (step < last_step) {
    const bool out_of_time = opt.max_minutes > 0 && seconds_since(t_start) > opt.max_minutes * 60;
    if (out_of_time && !dp) break;
    if (opt.stop_at_step > 0 && step >= opt.stop_at_step) break;
    if (step == warm_steps) t_fit = Clock::now();
    const bool fit_now = fit_to_time && step >= fit_step && (step - fit_step) % kRefit == 0;
    double fitted_steps = 0;  // this rank's estimate, at fit steps only
    if (fit_now) {
      const double rate = (step - fit_from) / std::max(1e-3, seconds_since(t_fit));
      const double left = opt.max_minutes * 60 - seconds_since(t_start);
      fitted_steps = step + rate * left * 0.97;  // 3%: the last validation and save
      t_fit = Clock::now();
      fit_from = step;
    }
    const auto t_step = Clock::now();
    if (trace_path && rank0 && step == warm_steps) trace.start();
    if (trace.running() && step == warm_steps + 3) trace.stop(trace_path);
    const double lr = schedule.at(step);
    const double noise_scale = input_noise_scale(step, schedule.total_steps, opt.input_noise_decay);
    phases.start();

    // Gather the step's micro-batches first: the loss is weighted per token over all of them
    // and over all ranks, so the global token counts must be known before the first backward.
    double step_flops = 0;
    std::vector<std::vector<std::vector<int32_t>>> micro_ids;
    int64_t counts[3] = {0, 0, 0};  // text tokens, target tokens (+<|im_end|>), aux LM targets
    for (int64_t micro = 0; micro < opt.grad_accum; ++micro) {
      Batch batch = loader.next();
      std::vector<std::vector<int32_t>> ids;
      for (size_t i = 0; i < batch.passages.size(); ++i) {
        // The row's index in the global batch (the loader gives rank r rows r, r+W, ...): keying
        // the cap on it gives every row the same cap under any world size.
        const uint64_t row = i * env.world_size + env.rank;
        // The curriculum caps length; an easy share of rows stays short throughout.
        const bool easy = opt.easy_share > 0 && opt.curriculum_start > 0 &&
                          (row + step) % 100 < static_cast<size_t>(opt.easy_share * 100);
        int64_t cap = easy ? opt.curriculum_start : cur_len;
        if (opt.curriculum_start > 0) {
          // Below the cap, lengths vary: a fixed length teaches the queries fixed positions,
          // which break as soon as lengths change (C3-SPEC.md, training probes).
          Rng rng = Rng::keyed({opt.seed, static_cast<uint64_t>(step), row});
          cap = rng.uniform_int(std::max<int64_t>(8, cap / 4), cap);
        }
        auto r = truncated(batch.passages[i].ids, cap);
        if (r.empty()) continue;
        const int64_t n = static_cast<int64_t>(r.size());
        step_flops += flops.passage(n);
        counts[0] += n;
        counts[1] += n + 1;
        counts[2] += n - 1;
        ids.push_back(std::move(r));
      }
      micro_ids.push_back(std::move(ids));
    }
    // Beside the token counts: how many ranks ran out of time, and the sum of the fitted step
    // counts (one collective for all of them).
    int64_t shared[5] = {counts[0], counts[1], counts[2], out_of_time ? 1 : 0,
                         static_cast<int64_t>(fitted_steps)};
    int64_t world_counts[5] = {shared[0], shared[1], shared[2], shared[3], shared[4]};
    if (dp) {
      at::Tensor t = at::tensor(at::ArrayRef<int64_t>(shared, 5)).to(device);
      dp->allreduce_sum(t);
      t = t.cpu();
      for (int k = 0; k < 5; ++k) world_counts[k] = t[k].item<int64_t>();
    }
    if (world_counts[3] > 0) break;  // some rank is out of time: all stop before this step
    if (fit_now) {
      const int64_t fitted = std::max<int64_t>(step + 1, world_counts[4] / env.world_size);
      last_step = std::min(opt.max_steps, fitted);
      schedule.total_steps = last_step;
      bar.set_total(last_step);
      if (rank0) log->write({{"event", "fit_steps_to_time"}, {"step", step}, {"steps", last_step}});
    }
    const int64_t world_text = world_counts[0], world_targets = world_counts[1];
    const int64_t world_lm = world_counts[2];
    C3_CHECK(world_targets > 0, "step {}: every passage of the batch is empty", step);
    phases.mark("data");

    // Each micro-batch adds sum(token losses) * W / (all target tokens of the step, all ranks):
    // after the ranks' gradients are averaged, that is the mean over every target token of the
    // step. A mean per micro-batch (or per rank) would weight a token by 1 / its batch's token
    // count, so results would change with grad_accum and world size whenever lengths differ.
    // Loss and accuracy stay on the device until the step's end: no host sync per micro-batch.
    const double W = env.world_size;
    at::Tensor loss_sum, correct_sum;  // this rank's share of the step's mean loss; its hits
    int64_t last_nonempty = -1;
    for (size_t k = 0; k < micro_ids.size(); ++k)
      if (!micro_ids[k].empty()) last_nonempty = static_cast<int64_t>(k);
    if (overlap && last_nonempty < 0) dp->arm_overlap();  // no grads here: zeros to the others
    for (size_t k = 0; k < micro_ids.size(); ++k) {
      const auto& ids = micro_ids[k];
      if (ids.empty()) continue;  // an undefined grad counts as zeros in the all-reduce
      at::Tensor loss, tokens_loss;
      {
        compat::AutocastGuard ac(use_bf16, device);
        cascade::InputNoise noise;
        noise.rate = opt.input_noise * noise_scale;
        noise.self_feed = opt.self_feed * noise_scale;
        noise.key = Rng::keyed({opt.seed, static_cast<uint64_t>(step), static_cast<uint64_t>(env.rank),
                                static_cast<uint64_t>(k), 0x6e6f697365ull}).next();
        cascade::LossOutput out = model->reconstruction_loss(ids, noise);
        const double n = static_cast<double>(out.n_tokens.item<int64_t>());  // a CPU tensor
        tokens_loss = out.loss.detach() * (n / world_targets);
        loss = out.loss * (n * W / world_targets);
        if (opt.aux_lm_weight > 0 && world_lm > 0)
          loss = loss + decoder_lm_loss_sum(model, ids) * (opt.aux_lm_weight * W / world_lm);
        loss_sum = loss_sum.defined() ? loss_sum + tokens_loss : tokens_loss;
        correct_sum = correct_sum.defined() ? correct_sum + out.n_correct : out.n_correct;
      }
      phases.mark("forward");
      if (overlap && static_cast<int64_t>(k) == last_nonempty) dp->arm_overlap();
      loss.backward();
      phases.mark("backward");
    }
    const int64_t step_targets = counts[1];  // this rank's, for its token accuracy
    // Gradients are synchronised once per optimizer step, after the last micro-batch: syncing
    // every micro-batch would multiply communication by grad_accum for the same result.
    if (overlap) {
      dp->finish_gradients();
    } else if (dp) {
      dp->allreduce_gradients(params.all);
    }
    phases.mark("allreduce");
    at::Tensor grad_norm_t = optimizer.step(lr, opt.grad_clip);
    optimizer.zero_grad();
    phases.mark("optimizer");
    // The step's one host sync: its loss, needed for the curriculum and the log.
    double step_loss = loss_sum.defined() ? loss_sum.item<double>() : 0.0;
    const int64_t step_correct = correct_sum.defined() ? correct_sum.item<int64_t>() : 0;
    if (dp) step_loss = dp->allreduce_mean(step_loss * W);  // the sum over ranks: the global mean
    phases.mark("sync");
    ++step;
    const int64_t world_tokens = world_text;
    tokens_seen += world_tokens;
    const double dt = seconds_since(t_step);
    if (step > warm_steps) {
      timed_seconds += dt;
      timed_tokens += world_tokens;
      timed_flops += step_flops * env.world_size;
      phases.keep();
    }
    smooth_loss = smooth_loss < 0 ? step_loss : 0.9 * smooth_loss + 0.1 * step_loss;
    // Curriculum: grow the length cap once the (smoothed) loss says the current one is learnt.
    if (opt.curriculum_start > 0 && cur_len < dist.hi && smooth_loss < opt.curriculum_gate) {
      cur_len = std::min<int64_t>(dist.hi, static_cast<int64_t>(std::ceil(cur_len * opt.curriculum_grow)));
      smooth_loss = -1;
      if (rank0) log->write({{"event", "curriculum"}, {"step", step}, {"curriculum_len", cur_len}});
    }
    if (rank0) {
      const double tps = timed_seconds > 0 ? timed_tokens / timed_seconds : world_tokens / dt;
      const double mfu = timed_seconds > 0 ? timed_flops / timed_seconds / (opt.peak_tflops * 1e12) : 0;
      if (step % opt.log_every == 0 || step == last_step) {
        const double grad_norm = grad_norm_t.item<double>();
        log->write({{"event", "step"}, {"step", step}, {"loss", step_loss}, {"lr", lr},
                   {"grad_norm", grad_norm}, {"tokens_per_sec", tps}, {"mfu", mfu},
                   {"token_accuracy", step_targets ? double(step_correct) / step_targets : 0.0},
                   {"tokens_seen", tokens_seen}, {"curriculum_len", cur_len},
                   {"input_noise", opt.input_noise * noise_scale},
                   {"self_feed", opt.self_feed * noise_scale},
                   {"elapsed_s", seconds_since(t_start)}});
      }
      bar.set_postfix(fmt::format("loss {:.3f} len {} {:.0f} tok/s", step_loss, cur_len, tps));
      if (opt.progress) bar.set(step);
      res.tokens_per_sec = tps;
      res.mfu = mfu;
    }
    res.final_loss = step_loss;
    if (opt.eval_every > 0 && step % opt.eval_every == 0 && step < last_step) validate(step);
    if (opt.save_every > 0 && step % opt.save_every == 0 && step < last_step) save(step);
  }
  bar.finish();
  validate(step);
  save(step);
  if (dp) dp->barrier();
  res.steps = step;
  res.last_checkpoint = last_ckpt;
  res.model = model;
  if (rank0) {
    if (phases.on()) {
      log->write(phases.report());
      std::fprintf(stderr, "c3 train: profile %s\n", phases.report().dump().c_str());
    }
    log->write({{"event", "end"}, {"step", step}, {"loss", res.final_loss},
               {"tokens_per_sec", res.tokens_per_sec}, {"mfu", res.mfu},
               {"wall_s", seconds_since(t_start)}, {"checkpoint", last_ckpt}});
    if (opt.plot_losses) {
      try {
        opt.plot_losses(log_path, (fs::path(opt.out_dir) / "loss.png").string());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "c3 train: loss plot skipped: %s\n", e.what());
      }
    }
  }
  return res;
}

}  // namespace c3::train
