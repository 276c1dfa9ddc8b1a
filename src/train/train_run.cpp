// The named steps of a training run (see train_run.h), in the order a run takes them.
#include "train/train_run.h"

#include <torch/torch.h>
#include <sys/resource.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <thread>

#include "io/hf_config.h"
#include "io/torch_compat.h"
#include "train/aux_lm_loss.h"
#include "train/model_files.h"
#include "train/model_init.h"
#include "train/run_folder.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/remove_tree.h"

#ifndef C3_GIT_COMMIT
#define C3_GIT_COMMIT "unknown"
#endif

namespace c3::train {
namespace fs = std::filesystem;

namespace {

// The run's clock: opt.clock when set (a test's fake), else steady_clock's seconds.
std::function<double(int64_t)> run_clock(const TrainOptions& opt) {
  if (opt.clock) return opt.clock;
  return [](int64_t) {
    const auto t = std::chrono::steady_clock::now().time_since_epoch();
    return std::chrono::duration<double>(t).count();
  };
}

}  // namespace

// ---- set-up --------------------------------------------------------------------------------

TrainRun::TrainRun(const TrainOptions& opt)
    : opt_(opt), env_(DistEnv::from_env()), device_(opt.device) {
  if (device_.is_cuda() && env_.is_distributed()) device_ = at::Device(at::kCUDA, env_.local_rank);
  rank0_ = env_.rank == 0;
  bf16_ = opt.bf16 && device_.is_cuda();
  if (device_.is_cuda()) compat::prefer_flash_attention();
  C3_CHECK(!opt.out_dir.empty(), "c3 train needs --out DIR for checkpoints and logs");
  C3_CHECK(!opt.train_files.empty(), "c3 train needs --train FILES (JSONL, optionally .xz)");
  C3_CHECK(opt.batch_size > 0 && opt.grad_accum > 0 && opt.max_steps > 0,
           "--batch-size, --grad-accum and --steps must be positive");
  if (lm_objective()) {
    C3_CHECK(opt.input_noise == 0 && opt.self_feed == 0 && opt.aux_lm_weight == 0,
             "--objective lm trains plain language models: --input-noise, --self-feed and "
             "--aux-lm-weight belong to the cascade objective (got {}, {}, {})",
             opt.input_noise, opt.self_feed, opt.aux_lm_weight);
  }
  if (rank0_) fs::create_directories(opt.out_dir);
  resume_dir_ = opt.resume.empty() ? "" : latest_checkpoint(opt.resume);
  C3_CHECK(opt.resume.empty() || !resume_dir_.empty(),
           "--resume '{}': no checkpoint there (expected a step-* folder with trainer_state.json)",
           opt.resume);

  set_up_model(opt);
  set_up_data();
  resume();
  write_start_record();

  // The tokenizer is copied into the run folder once: a resumed run's source checkpoint is
  // pruned after keep_last newer saves, and every save copies it from there.
  if (rank0_) tok_path_ = write_run_tokenizer(tok_src_, opt.out_dir);
  // Resumed from this run's own checkpoint of this step: saving it again would only rewrite
  // it, and a kill in the middle used to leave a broken newest.
  std::error_code ec;
  if (!resume_dir_.empty() && fs::equivalent(resume_dir_, step_dir(opt.out_dir, step_), ec)) {
    saved_step_ = step_;
    last_ckpt_ = step_dir(opt.out_dir, step_).string();
  }

  CheckpointWriterOptions w;
  w.run_dir = opt.out_dir;
  w.keep_last = opt.keep_last;
  w.threads = opt.checkpoint_threads;
  w.background = opt.background_checkpoints;
  writer_ = std::make_unique<CheckpointWriter>(w, env_.rank, dp_.get());
  reserve_snapshot_memory();

  bar_ = std::make_unique<ProgressBar>("train", opt.max_steps, "step");
  bar_->set(step_);
  clock_ = run_clock(opt);
  t_start_ = clock_(step_);
  const char* prof = std::getenv("C3_TRAIN_PROFILE");
  phases_ = std::make_unique<PhaseTimer>(device_, prof && std::string(prof) == "1");
  // Throughput and the time fit leave out the first steps (allocator and kernel warm-up).
  warm_steps_ = step_ + 3;
  trace_path_ = std::getenv("C3_TRAIN_TRACE");  // steps warm+1 .. warm+3, rank 0
  // --fit-steps-to-time: the step count is fitted at fit_step_ from the rate since warm_steps_,
  // then again every kRefit steps from the rate since the last fit (steps slow down as the
  // curriculum lengthens passages).
  last_step_ = opt.max_steps;
  fit_step_ = warm_steps_ + 30;
  t_fit_ = t_start_;
  fit_from_ = warm_steps_;
}

void TrainRun::set_up_model(const TrainOptions& opt) {
  ModelInit init = opt.init;
  if (!resume_dir_.empty()) {
    init = ModelInit{};
    init.from_c3 = resume_dir_;
  }
  model_ = build_model(init, &tok_src_);
  model_->to(device_);
  model_->fuse_projections();  // after the last to(): validation decodes take the fused path
  model_->train();
  model_->encoder->model->activation_checkpointing = opt.activation_checkpointing;
  model_->decoder->model->activation_checkpointing = opt.activation_checkpointing;
  if (env_.is_distributed()) {
    DataParallelOptions o;
    o.bucket_bytes = std::max<int64_t>(1, static_cast<int64_t>(opt.bucket_mb * (1 << 20)));
    dp_ = std::make_unique<DataParallel>(env_, device_, o);
    dp_->broadcast_parameters(*model_);
  }

  params_ = param_groups(model_, opt.freeze, opt.decay_embeddings);
  optimizer_ = std::make_unique<ShardedAdamW>(params_, opt.weight_decay,
                                              AdamWConfig{opt.beta1, opt.beta2, opt.eps}, opt.zero,
                                              dp_.get());
  zero_ = optimizer_->stage();
  // DDP's overlap: each gradient bucket's all-reduce starts while backward still runs. Not with
  // activation checkpointing, whose recomputation can deliver a parameter's grad twice.
  overlap_ = dp_ && opt.overlap_allreduce && !opt.activation_checkpointing;
  if (overlap_) dp_->register_overlap(params_.all);
  schedule_ = LrSchedule{opt.lr, opt.min_lr_ratio, opt.warmup_steps, opt.max_steps};
  set_up_graphs();
}

// Training graphs (graphed_loss.h) where every part of the step allows them; otherwise the
// eager step, with the reason in the start record.
void TrainRun::set_up_graphs() {
  const GraphMode mode = graph_mode_from_env(device_);
  const cascade::C3Config& c = model_->config;
  std::string why_not;
  if (mode == GraphMode::kOff) {
    why_not = model::StepGraph::available(device_) ? "C3_TRAIN_GRAPHS=1 turns them on" : "no CUDA device";
  } else if (overlap_) {
    why_not = "the overlapped all-reduce hooks the backward (--no-overlap allows graphs)";
  } else if (zero_ == 2) {
    why_not = "ZeRO-2 moves gradients into shards during the step";
  } else if (opt_.aux_lm_weight > 0) {
    why_not = "--aux-lm-weight runs a second forward per micro-batch";
  } else if (lm_objective()) {
    why_not = "--objective lm runs the halves as language models";
  } else if (opt_.batch_tokens > 0) {
    why_not = "--batch-tokens varies the rows of a micro-batch";
  } else if (c.query_mask != cascade::QueryMask::kCausal ||
             c.query_pooling != cascade::QueryPooling::kNone) {
    why_not = "the query mask and pooling layouts build their inputs on the host";
  }
  if (!why_not.empty()) {
    graphs_state_ = "off (" + why_not + ")";
    return;
  }
  GraphedLossOptions g;
  g.mode = mode;
  g.bf16 = bf16_;
  g.rows = opt_.batch_size;
  g.max_targets = LengthDist::parse(opt_.lengths).hi + 1;  // + <|im_end|>
  graphs_ = std::make_unique<GraphedLoss>(model_, params_.all, g);
  graphs_state_ = name_of(mode);
}

void TrainRun::set_up_data() {
  dist_ = LengthDist::parse(opt_.lengths);
  DataOptions d;
  d.files = opt_.train_files;
  d.lengths = dist_;
  d.batch_size = opt_.batch_size * env_.world_size;  // the loader counts the global batch
  d.seed = opt_.seed;
  d.n_threads = opt_.data_threads;
  d.rank = env_.rank;
  d.world_size = env_.world_size;
  d.bucket_docs = opt_.bucket_docs;
  if (token_batches()) {  // the loader counts the global batch's tokens too
    d.max_batch_tokens = opt_.batch_tokens * env_.world_size;
    d.batch_size = 0;
  }
  loader_ = std::make_unique<DataLoader>(model_->tok(), d);
  if (rank0_) valid_ = std::make_unique<Validation>(model_->tok(), opt_, dist_);
}

// ---- resume --------------------------------------------------------------------------------

void TrainRun::resume() {
  cur_len_ = opt_.curriculum_start > 0 ? opt_.curriculum_start : dist_.hi;
  if (resume_dir_.empty()) return;
  io::JsonFile st = io::JsonFile::load((fs::path(resume_dir_) / "trainer_state.json").string());
  step_ = st.required<int64_t>("step");
  tokens_seen_ = st.required<int64_t>("tokens_seen");
  cur_len_ = st.required<int64_t>("curriculum_len");
  smooth_loss_ = st.required<double>("smooth_loss");
  gate_steps_ = st.json().value("curriculum_gate_steps", int64_t{0});  // absent before 2026-12-05
  loader_->restore(st.json().at("data"));
  optimizer_->load(resume_dir_);
}

void TrainRun::write_start_record() {
  log_path_ = (fs::path(opt_.out_dir) / "train_log.jsonl").string();
  flops_ = FlopModel::of(model_);
  if (!rank0_) return;
  log_ = std::make_unique<JsonlLog>(log_path_, /*append=*/!resume_dir_.empty());
  const TrainOptions& o = opt_;
  log_->write({{"event", "start"}, {"git_commit", C3_GIT_COMMIT}, {"libtorch", TORCH_VERSION},
               {"device", device_.str()}, {"world_size", env_.world_size}, {"bf16", bf16_},
               {"params", count_parameters(*model_)}, {"resume", resume_dir_},
               {"encoder", model_->config.encoder.to_json()},
               {"decoder", model_->config.decoder.to_json()}, {"latents", model_->latent_len()},
               {"query_positions", cascade::name_of(model_->config.query_positions)},
               {"query_mask", cascade::name_of(model_->config.query_mask)},
               {"query_pooling", cascade::name_of(model_->config.query_pooling)},
               {"lengths", o.lengths}, {"batch_size", o.batch_size}, {"batch_tokens", o.batch_tokens},
               {"grad_accum", o.grad_accum},
               {"objective", lm_objective() ? "lm" : "cascade"},
               {"lr", o.lr}, {"steps", o.max_steps}, {"aux_lm_weight", o.aux_lm_weight},
               {"input_noise", o.input_noise}, {"self_feed", o.self_feed},
               {"input_noise_decay", o.input_noise_decay},
               {"curriculum_start", o.curriculum_start}, {"seed", o.seed}, {"zero", zero_},
               {"train_graphs", graphs_state_},
               {"optimizer_state_bytes", optimizer_->state_bytes()}});
  std::fprintf(stderr, "c3 train: %s, %lld params, device %s x%d, %s, step graphs %s\n",
               TORCH_VERSION, static_cast<long long>(count_parameters(*model_)),
               device_.str().c_str(), env_.world_size, bf16_ ? "bf16 autocast" : "fp32",
               graphs_state_.c_str());
}

// ---- the next batch ------------------------------------------------------------------------

std::optional<StepBatch> TrainRun::next_batch() {
  StepBatch b;
  b.t_start = clock_(step_);  // also the time the steps so far took
  const bool late = out_of_time(b.t_start);
  if (late && !dp_) return std::nullopt;
  if (opt_.stop_at_step > 0 && step_ >= opt_.stop_at_step) return std::nullopt;
  if (step_ == warm_steps_) t_fit_ = b.t_start;
  constexpr int64_t kRefit = 100;
  std::optional<double> fitted;  // this rank's estimate, at fit steps only
  if (opt_.fit_steps_to_time && opt_.max_minutes > 0 && step_ >= fit_step_ &&
      (step_ - fit_step_) % kRefit == 0)
    fitted = fitted_steps(b.t_start);
  if (trace_path_ && rank0_ && step_ == warm_steps_) trace_.start();
  if (trace_.running() && step_ == warm_steps_ + 3) trace_.stop(trace_path_);
  b.lr = schedule_.at(step_);
  b.noise_scale = input_noise_scale(step_, schedule_.total_steps, opt_.input_noise_decay);
  phases_->start();
  gather_micro_batches(b);
  if (!agree_across_ranks(b, late, fitted)) return std::nullopt;
  phases_->mark("data");
  return b;
}

bool TrainRun::out_of_time(double now) {
  return opt_.max_minutes > 0 && now - t_start_ > opt_.max_minutes * 60;
}

double TrainRun::fitted_steps(double now) {
  const double rate = (step_ - fit_from_) / std::max(1e-3, now - t_fit_);
  const double left = opt_.max_minutes * 60 - (now - t_start_);
  t_fit_ = now;
  fit_from_ = step_;
  return step_ + rate * left * 0.97;  // 3%: the last validation and save
}

// The step's micro-batches come first: the loss is weighted per token over all of them and over
// all ranks, so the global token counts must be known before the first backward.
void TrainRun::gather_micro_batches(StepBatch& b) {
  // With --batch-tokens, short caps take several loader batches a micro-batch. cur_len_ is the
  // same on every rank and restored on resume, so the loader's position stays in step.
  // Without a curriculum the loader sizes each batch in tokens itself (token_batches).
  const int64_t loads = token_batches() ? 1
                                        : rows_per_micro_batch(opt_.batch_size, opt_.batch_tokens,
                                                               cur_len_) / opt_.batch_size;
  b.world_rows = 0;
  for (int64_t micro = 0; micro < opt_.grad_accum; ++micro) {
    Batch batch = loader_->next();
    b.world_rows += batch.n_global * loads;  // the later loads are as large (fixed-size batches)
    for (int64_t more = 1; more < loads; ++more) {
      Batch next = loader_->next();
      for (auto& p : next.passages) batch.passages.push_back(std::move(p));
    }
    std::vector<std::vector<int32_t>> ids;
    for (size_t i = 0; i < batch.passages.size(); ++i) {
      // The row's index in the global batch (the loader gives rank r rows r, r+W, ...): keying
      // the cap on it gives every row the same cap under any world size.
      const uint64_t row = i * env_.world_size + env_.rank;
      // The curriculum caps length; an easy share of rows stays short throughout.
      const bool easy = opt_.easy_share > 0 && opt_.curriculum_start > 0 &&
                        (row + step_) % 100 < static_cast<size_t>(opt_.easy_share * 100);
      int64_t cap = easy ? opt_.curriculum_start : cur_len_;
      if (opt_.curriculum_start > 0) {
        // Below the cap, lengths vary: a fixed length teaches the queries fixed positions,
        // which break as soon as lengths change (C3-SPEC.md, training probes).
        Rng rng = Rng::keyed({opt_.seed, static_cast<uint64_t>(step_), row});
        cap = rng.uniform_int(std::max<int64_t>(8, cap / 4), cap);
      }
      auto r = truncated(batch.passages[i].ids, cap);
      if (r.empty()) continue;
      const int64_t n = static_cast<int64_t>(r.size());
      b.flops += lm_objective() ? flops_.lm_passage(n) : flops_.passage(n);
      b.text += n;
      // Reconstruction's targets: the passage + <|im_end|>; a language model's: all tokens but
      // the first.
      b.targets += lm_objective() ? n - 1 : n + 1;
      b.lm_targets += n - 1;
      ids.push_back(std::move(r));
    }
    b.micro_ids.push_back(std::move(ids));
  }
}

// One collective for the token counts, whether some rank is out of time, and the sum of the
// fitted step counts: the ranks agree on all three, so no rank stops alone and leaves the others
// in a collective. False: time is up somewhere, and every rank stops before this step.
bool TrainRun::agree_across_ranks(StepBatch& b, bool late, std::optional<double> fitted) {
  int64_t world[5] = {b.text, b.targets, b.lm_targets, late ? 1 : 0,
                      fitted ? static_cast<int64_t>(*fitted) : 0};
  if (dp_) {
    at::Tensor t = at::tensor(at::ArrayRef<int64_t>(world, 5)).to(device_);
    dp_->allreduce_sum(t);
    t = t.cpu();
    for (int k = 0; k < 5; ++k) world[k] = t[k].item<int64_t>();
  }
  if (world[3] > 0) return false;
  if (fitted) {
    const int64_t steps = std::max<int64_t>(step_ + 1, world[4] / env_.world_size);
    last_step_ = std::min(opt_.max_steps, steps);
    schedule_.total_steps = last_step_;
    bar_->set_total(last_step_);
    if (rank0_) log_->write({{"event", "fit_steps_to_time"}, {"step", step_}, {"steps", last_step_}});
  }
  b.world_text = world[0];
  b.world_targets = world[1];
  b.world_lm_targets = world[2];
  C3_CHECK(b.world_targets > 0, "step {}: every passage of the batch is empty", step_);
  return true;
}

// ---- one step ------------------------------------------------------------------------------

StepStats TrainRun::train_step(const StepBatch& b) {
  at::Tensor loss_sum, correct_sum;  // this rank's share of the step's mean loss; its hits
  forward_backward(b, loss_sum, correct_sum);  // and the gradient sync
  StepStats s;
  s.grad_norm = optimizer_->step(b.lr, opt_.grad_clip);
  if (graphs_) {
    graphs_->zero_grads();  // in place: the graphs write into these gradients
  } else {
    optimizer_->zero_grad();
  }
  phases_->mark("optimizer");
  // The step's one host sync: its loss, needed for the curriculum and the log.
  s.loss = loss_sum.defined() ? loss_sum.item<double>() : 0.0;
  s.correct = correct_sum.defined() ? correct_sum.item<int64_t>() : 0;
  if (dp_) s.loss = dp_->allreduce_mean(s.loss * env_.world_size);  // the sum: the global mean
  phases_->mark("sync");
  s.targets = b.targets;
  s.world_rows = b.world_rows;
  s.lr = b.lr;
  s.noise_scale = b.noise_scale;
  advance(b, s);
  return s;
}

// Each micro-batch adds sum(token losses) * W / (all target tokens of the step, all ranks):
// after the ranks' gradients are averaged, that is the mean over every target token of the
// step. A mean per micro-batch (or per rank) would weight a token by 1 / its batch's token
// count, so results would change with grad_accum and world size whenever lengths differ.
// Loss and accuracy stay on the device until the step's end: no host sync per micro-batch.
void TrainRun::forward_backward(const StepBatch& b, at::Tensor& loss_sum, at::Tensor& correct_sum) {
  // Gradients sync once per step, after the last micro-batch (syncing each would multiply the
  // communication by grad_accum for the same result) ... or, with ZeRO-2, after every one: each
  // backward's gradients go straight into their shards, so no full gradient outlives it. Every
  // rank syncs at the same micro-batches, with zeros where it has no passages.
  const bool sync_each = zero_ == 2;
  int64_t last_nonempty = -1;
  for (size_t k = 0; k < b.micro_ids.size(); ++k)
    if (!b.micro_ids[k].empty()) last_nonempty = static_cast<int64_t>(k);
  for (size_t k = 0; k < b.micro_ids.size(); ++k) {
    const auto& ids = b.micro_ids[k];
    if (ids.empty()) {  // an undefined grad counts as zeros in the sync
      if (sync_each) sync_gradients(/*armed=*/false);
      continue;
    }
    const bool sync_here = sync_each || static_cast<int64_t>(k) == last_nonempty;
    const auto [tokens_loss, correct] = micro_batch(b, k, /*arm_overlap=*/overlap_ && sync_here);
    loss_sum = loss_sum.defined() ? loss_sum + tokens_loss : tokens_loss;
    correct_sum = correct_sum.defined() ? correct_sum + correct : correct;
    if (sync_each) sync_gradients(/*armed=*/true);
  }
  if (!sync_each) sync_gradients(/*armed=*/last_nonempty >= 0);
}

// Micro-batch k's forward and backward (one graph replay where graphs are on): returns its share
// of the step's mean loss and its hits, both on the device.
std::pair<at::Tensor, at::Tensor> TrainRun::micro_batch(const StepBatch& b, size_t k, bool arm_overlap) {
  const auto& ids = b.micro_ids[k];
  const double W = env_.world_size, scale = W / b.world_targets;  // per token: see forward_backward
  at::Tensor loss, tokens_loss, correct;
  if (lm_objective()) {
    // Both halves' next-token losses, each per target token and the two averaged; the hits are
    // the decoder's (its token accuracy).
    compat::AutocastGuard ac(bf16_, device_);
    const LmSums enc = lm_loss_sums(model_->encoder, ids), dec = lm_loss_sums(model_->decoder, ids);
    const at::Tensor sum = enc.loss_sum + dec.loss_sum;
    tokens_loss = sum.detach() / (2.0 * b.world_targets);
    correct = dec.n_correct;
    loss = sum * (scale / 2);
  } else {
    cascade::InputNoise noise;
    noise.rate = opt_.input_noise * b.noise_scale;
    noise.self_feed = opt_.self_feed * b.noise_scale;
    noise.key = Rng::keyed({opt_.seed, static_cast<uint64_t>(step_), static_cast<uint64_t>(env_.rank),
                            static_cast<uint64_t>(k), 0x6e6f697365ull}).next();
    const cascade::TrainInputs in = cascade::train_inputs(
        *model_, ids, noise, graphs_ ? graphs_->shape() : cascade::TrainShape{});
    if (graphs_) {
      const at::Tensor sums = graphs_->run(in, scale);
      phases_->mark("graph");
      return {sums[0].to(at::kFloat) / static_cast<double>(b.world_targets), sums[1].to(at::kLong)};
    }
    compat::AutocastGuard ac(bf16_, device_);
    const cascade::LossSums out = model_->train_loss(in.to(device_));
    tokens_loss = out.loss_sum.detach() / static_cast<double>(b.world_targets);
    correct = out.n_correct;
    loss = out.loss_sum * scale;
    if (opt_.aux_lm_weight > 0 && b.world_lm_targets > 0)
      loss = loss + decoder_lm_loss_sum(model_, ids) * (opt_.aux_lm_weight * W / b.world_lm_targets);
  }
  phases_->mark("forward");
  if (arm_overlap) dp_->arm_overlap();
  loss.backward();
  phases_->mark("backward");
  return {tokens_loss, correct};
}

// Overlapped: the armed backward has sent most buckets already; finish_gradients() sends the
// rest and waits (arming first when no backward ran, so that zeros go to the others).
void TrainRun::sync_gradients(bool armed) {
  if (overlap_) {
    if (!armed) dp_->arm_overlap();
    dp_->finish_gradients();
  } else if (dp_) {
    dp_->allreduce_gradients(params_.all);
  }
  phases_->mark("allreduce");
}

void TrainRun::advance(const StepBatch& b, StepStats& s) {
  ++step_;
  s.world_tokens = b.world_text;
  tokens_seen_ += s.world_tokens;
  const double t_done = clock_(step_);
  s.seconds = t_done - b.t_start;
  s.elapsed = t_done - t_start_;
  if (step_ > warm_steps_) {
    timed_seconds_ += s.seconds;
    timed_tokens_ += s.world_tokens;
    timed_flops_ += b.flops * env_.world_size;
    phases_->keep();
  }
  // Curriculum: grow the length cap once the smoothed loss of the steps at the cap says it is
  // learnt. The rows counted are every rank's nominal rows, so all ranks agree.
  if (opt_.curriculum_start <= 0 || at_cap(b.world_text, b.world_rows, cur_len_)) {
    smooth_loss_ = smooth_loss_ < 0 ? s.loss : 0.9 * smooth_loss_ + 0.1 * s.loss;
    ++gate_steps_;
  }
  if (opt_.curriculum_start > 0 && cur_len_ < dist_.hi &&
      gate_steps_ >= std::max<int64_t>(1, opt_.curriculum_patience) &&
      smooth_loss_ < opt_.curriculum_gate) {
    cur_len_ = std::min<int64_t>(dist_.hi, static_cast<int64_t>(std::ceil(cur_len_ * opt_.curriculum_grow)));
    smooth_loss_ = -1;
    gate_steps_ = 0;
    if (rank0_) log_->write({{"event", "curriculum"}, {"step", step_}, {"curriculum_len", cur_len_}});
  }
}

// ---- log -----------------------------------------------------------------------------------

void TrainRun::log_step(const StepStats& s) {
  res_.final_loss = s.loss;
  if (!rank0_) return;
  const double tps = timed_seconds_ > 0 ? timed_tokens_ / timed_seconds_ : s.world_tokens / s.seconds;
  const double mfu = timed_seconds_ > 0 ? timed_flops_ / timed_seconds_ / (opt_.peak_tflops * 1e12) : 0;
  if (step_ % opt_.log_every == 0 || step_ == last_step_) {
    log_->write({{"event", "step"}, {"step", step_}, {"loss", s.loss}, {"lr", s.lr},
                 {"grad_norm", s.grad_norm.item<double>()}, {"tokens_per_sec", tps}, {"mfu", mfu},
                 {"token_accuracy", s.targets ? double(s.correct) / s.targets : 0.0},
                 {"tokens_seen", tokens_seen_}, {"curriculum_len", cur_len_}, {"rows", s.world_rows},
                 {"input_noise", opt_.input_noise * s.noise_scale},
                 {"self_feed", opt_.self_feed * s.noise_scale}, {"elapsed_s", s.elapsed}});
  }
  bar_->set_postfix(fmt::format("loss {:.3f} len {} {:.0f} tok/s", s.loss, cur_len_, tps));
  if (opt_.progress) bar_->set(step_);
  res_.tokens_per_sec = tps;
  res_.mfu = mfu;
}

// ---- validate ------------------------------------------------------------------------------

void TrainRun::validate() {
  if (!valid_ || valid_->empty()) return;
  const nlohmann::json rec = valid_->run(model_, step_, cur_len_, bf16_);
  log_->write(rec);
  const std::string prec =
      rec.contains("valid_char_precision")
          ? fmt::format(" char precision {:.4f}", rec["valid_char_precision"].get<double>())
          : "";
  std::fprintf(stderr, "\n[valid] step %lld loss %.4f token acc %.4f%s\n",
               static_cast<long long>(step_), rec["valid_loss"].get<double>(),
               rec["valid_token_accuracy"].get<double>(), prec.c_str());
}

// ---- checkpoint ----------------------------------------------------------------------------

// Host memory for this rank's snapshots, reserved in the background while training starts
// (host_staging.h): its optimizer state and its share of the fp32 weights, plus room for
// alignment. A snapshot that outgrows it takes the rest from LibTorch's pinned allocator.
void TrainRun::reserve_snapshot_memory() {
  const int writers = zero_ > 0 ? env_.world_size : 1;
  if ((!rank0_ && writers == 1) || !host_staging_wanted(device_.is_cuda())) return;
  int64_t weights = 0, largest = 0, tensors = 0;
  for (const auto& p : model_->parameters()) {
    const int64_t n = p.numel() * static_cast<int64_t>(sizeof(float));
    weights += n;
    largest = std::max(largest, n);
    ++tensors;
  }
  // With several writers each copies about 1/writers of the weight files (whole shards).
  const int64_t share =
      writers == 1 ? weights : std::min(weights, weights / writers + std::max(largest, kMaxShardBytes));
  const int64_t bytes = optimizer_->state_bytes() + share + 3 * tensors * 256;
  staging_ = std::make_unique<HostStaging>(device_.is_cuda());
  const int threads = std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 16);
  staging_->reserve_async(bytes, threads, device_.is_cuda() ? device_.index() : -1);
}

// Host copies of the weights, the optimizer state and the trainer state, handed to the writer
// (checkpoint_writer.h), which writes them while training goes on. With sharded optimizer state
// every rank writes a part into the same folder (so with several hosts --out must be on a shared
// filesystem): its shard of the state and a share of the weight files, the same on every rank.
// Otherwise rank 0 writes it all.
void TrainRun::save() {
  const int writers = zero_ > 0 ? env_.world_size : 1;
  if ((!rank0_ && writers == 1) || step_ == saved_step_) return;
  wait_for_checkpoint();
  const auto t0 = std::chrono::steady_clock::now();
  if (staging_) staging_->begin();  // the last write from it is done: it is free again
  const HostStagingScope staging_scope(staging_.get());
  if (rank0_) c3::remove_tree(writer_->temp_dir(step_));  // a killed run's leftovers
  if (writers > 1) dp_->barrier();  // no rank writes into the folder before it is clear
  std::vector<CheckpointFile> files = optimizer_->snapshot();
  for (auto& f : model_files(model_, tok_path_, at::kFloat, kMaxShardBytes, writers > 1 ? env_.rank : 0, writers))
    files.push_back(std::move(f));
  if (rank0_) {
    const nlohmann::json st = {{"step", step_}, {"tokens_seen", tokens_seen_},
                               {"curriculum_len", cur_len_}, {"smooth_loss", smooth_loss_},
                               {"curriculum_gate_steps", gate_steps_},
                               {"data", loader_->state()}, {"seed", opt_.seed}};
    files.push_back({"trainer_state.json", {}, {}, st.dump(2) + "\n"});
  }
  // Host time so far is mostly allocating the (pinned) host buffers; the wait below is the copies.
  snapshot_host_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (device_.is_cuda()) torch::cuda::synchronize();  // the host copies are complete
  snapshot_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  writer_->write(step_, std::move(files), writers);
  saved_step_ = step_;
}

void TrainRun::wait_for_checkpoint() {
  writer_->wait();
  const CheckpointTiming& t = writer_->last_timing();
  if (!rank0_ || t.step < 0 || t.step == logged_ckpt_) return;
  nlohmann::json rec = {{"event", "checkpoint"}, {"step", t.step}, {"bytes_rank0", t.bytes},
                        {"snapshot_s", snapshot_s_}, {"snapshot_host_s", snapshot_host_s_},
                        {"write_s", t.write_s}, {"total_s", t.total_s}};
  if (staging_) {
    rec["staging_bytes"] = staging_->reserved_bytes();
    rec["staging_used_bytes"] = staging_->used_bytes();
    rec["staging_overflow_bytes"] = staging_->overflow_bytes();
    rec["staging_reserve_s"] = staging_->reserve_seconds();
    if (!staging_->note().empty()) rec["staging_note"] = staging_->note();
  }
  log_->write(rec);
  logged_ckpt_ = t.step;
  last_ckpt_ = writer_->last_checkpoint();
}

// ---- the end -------------------------------------------------------------------------------

TrainResult TrainRun::finish() {
  bar_->finish();
  if (phases_->on()) {
    // Each rank's optimizer memory (with --zero it differs from rank to rank) and its peak RSS
    // in training (the final checkpoint's host copies come after).
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::fprintf(stderr, "c3 train: rank %d: optimizer state %.1f MB, gradients %.1f MB, peak RSS %.1f MB\n",
                 env_.rank, optimizer_->state_bytes() / 1e6, optimizer_->gradient_bytes() / 1e6,
                 ru.ru_maxrss / 1e3);
  }
  validate();
  save();
  wait_for_checkpoint();
  if (dp_) dp_->barrier();
  res_.steps = step_;
  res_.last_checkpoint = last_ckpt_;
  res_.model = model_;
  if (!rank0_) return res_;
  if (phases_->on()) {
    log_->write(phases_->report());
    std::fprintf(stderr, "c3 train: profile %s\n", phases_->report().dump().c_str());
  }
  log_->write({{"event", "end"}, {"step", step_}, {"loss", res_.final_loss},
               {"tokens_per_sec", res_.tokens_per_sec}, {"mfu", res_.mfu},
               {"wall_s", clock_(step_) - t_start_}, {"checkpoint", last_ckpt_},
               {"graphs_captured", graphs_ ? graphs_->captured() : 0}});
  if (opt_.plot_losses) {
    try {
      opt_.plot_losses(log_path_, (fs::path(opt_.out_dir) / "loss.png").string());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "c3 train: loss plot skipped: %s\n", e.what());
    }
  }
  return res_;
}

}  // namespace c3::train
