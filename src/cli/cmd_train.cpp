// c3 train: flags -> TrainOptions; --nproc N launches N local processes (data parallel).
#include <glob.h>

#include <cmath>
#include <iostream>
#include <map>
#include <string>

#include "cli/command.h"
#include "eval/plot.h"
#include "eval/text_metrics.h"
#include "train/distributed.h"
#include "train/trainer.h"
#include "util/error.h"

namespace c3::cli {
namespace {

// Expands shell-style patterns ('data/train-*.jsonl.xz'); a pattern matching nothing is an error.
std::vector<std::string> expand(const std::vector<std::string>& patterns, const char* flag) {
  std::vector<std::string> out;
  for (const auto& p : patterns) {
    glob_t g{};
    int rc = ::glob(p.c_str(), 0, nullptr, &g);
    if (rc != 0) {
      globfree(&g);
      fail("{} '{}': no such file", flag, p);
    }
    for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
    globfree(&g);
  }
  return out;
}

void setup_train(CLI::App& root) {
  auto* app = root.add_subcommand("train", "Train a cascade end to end on reconstruction");
  static train::TrainOptions o;
  static std::vector<std::string> train_globs, valid_globs;
  static int nproc = 1;
  static double warmup_ratio = 0;
  static bool no_plot = false;
  auto& i = o.init;
  app->add_option("--out", o.out_dir, "run folder: checkpoints step-*/, train_log.jsonl, loss.png")->required();
  app->add_option("--train", train_globs, "training JSONL(.xz) files or patterns")->required();
  app->add_option("--valid", valid_globs, "held-out JSONL(.xz) for validation");
  app->add_option("--tokenizer", i.tokenizer,
                  "tokenizer.json or qwen.tiktoken (from scratch or --encoder-hf/--decoder-hf; "
                  "<img> </img> <imgpad> are added if missing)");
  app->add_option("--encoder-config", i.encoder_config, "Qwen2 config.json with the encoder's dims");
  app->add_option("--decoder-config", i.decoder_config, "Qwen2 config.json with the decoder's dims");
  app->add_option("--encoder-hf", i.encoder_hf, "HF Qwen2 folder to initialise the encoder from");
  app->add_option("--decoder-hf", i.decoder_hf, "HF Qwen2 folder to initialise the decoder from");
  app->add_option("--init", i.from_c3, "c3 checkpoint to start from (weights only)");
  app->add_option("--latents", i.latents, "L, latent vectors per passage")->capture_default_str();
  app->add_option("--max-passage-tokens", i.max_passage_tokens,
                  "chunk size the model is meant for (config key c3_max_passage_tokens; default: "
                  "the --init model's, else 1280)");
  app->add_option("--query-positions", i.query_positions,
                  "after_text | segments: RoPE positions of the query slots (config key "
                  "c3_query_positions; default: the --init model's, else after_text)");
  app->add_option("--query-mask", i.query_mask,
                  "causal | segment: what each query slot attends to (config key c3_query_mask)");
  app->add_option("--query-pooling", i.query_pooling,
                  "none | segment_mean: add the mean of each query's text segment to its latent "
                  "(config key c3_query_pooling)");
  app->add_option("--resume", o.resume, "checkpoint or run folder to resume (bit for bit)");
  app->add_option("--freeze", o.freeze, "comma list: encoder,decoder,embeddings,queries,projector");
  app->add_option("--lengths", o.lengths, "passage length distribution: uniform:A-B | loguniform:A-B | fixed:N")
      ->capture_default_str();
  app->add_option("--batch-size", o.batch_size, "passages per micro-batch per process")->capture_default_str();
  app->add_option("--grad-accum", o.grad_accum, "micro-batches per step")->capture_default_str();
  app->add_option("--batch-tokens", o.batch_tokens,
                  "micro-batches sized in tokens per process (0 = always --batch-size rows): at "
                  "short curriculum caps, whole extra batches while rows x cap stays within it; "
                  "without a curriculum, as many rows as keep rows x longest passage within it")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_option("--data-threads", o.data_threads, "tokenization threads")->capture_default_str();
  app->add_option("--bucket-docs", o.bucket_docs, "documents per length-bucketing chunk")->capture_default_str();
  app->add_option("--curriculum-start", o.curriculum_start, "initial length cap (0 = no curriculum)")
      ->capture_default_str();
  app->add_option("--curriculum-gate", o.curriculum_gate, "grow the cap when the smoothed loss is below this")
      ->capture_default_str();
  app->add_option("--curriculum-grow", o.curriculum_grow, "growth factor of the cap")->capture_default_str();
  app->add_option("--curriculum-patience", o.curriculum_patience,
                  "steps at a new cap before it may grow again")
      ->capture_default_str();
  app->add_option("--easy-share", o.easy_share, "share of rows kept at the starting length")
      ->capture_default_str();
  app->add_option("--lr", o.lr, "peak learning rate")->capture_default_str();
  app->add_option("--min-lr-ratio", o.min_lr_ratio, "cosine floor as a fraction of --lr")->capture_default_str();
  app->add_option("--weight-decay", o.weight_decay, "AdamW decay (not on norms, biases, Q)")->capture_default_str();
  app->add_option("--decay-embeddings", o.decay_embeddings, "also decay embeddings")->capture_default_str();
  app->add_option("--adam-beta1", o.beta1, "AdamW beta1")->capture_default_str();
  app->add_option("--adam-beta2", o.beta2, "AdamW beta2 (HF's default: 0.999)")
      ->capture_default_str();
  app->add_option("--adam-eps", o.eps, "AdamW epsilon")->capture_default_str();
  app->add_option("--grad-clip", o.grad_clip, "max global grad norm (0 = off)")->capture_default_str();
  auto* warmup =
      app->add_option("--warmup", o.warmup_steps, "linear warmup steps")->capture_default_str();
  app->add_option("--warmup-ratio", warmup_ratio,
                  "warmup as a fraction of --steps, ceil(F * steps) steps (HF's warmup_ratio)")
      ->check(CLI::Range(0.0, 1.0))
      ->excludes(warmup);
  app->add_option("--steps", o.max_steps, "optimizer steps")->capture_default_str();
  app->add_option("--max-minutes", o.max_minutes, "stop and save after this long (0 = off)")->capture_default_str();
  app->add_flag("--fit-steps-to-time", o.fit_steps_to_time,
                "with --max-minutes: end the lr schedule when the time ends (steps fitted once, early)");
  app->add_option("--stop-at-step", o.stop_at_step, "stop and save at this step; --resume goes on (0 = off)")
      ->capture_default_str();
  app->add_option("--aux-lm-weight", o.aux_lm_weight, "weight of the decoder's plain LM loss")->capture_default_str();
  const std::map<std::string, train::TrainOptions::Objective> objectives = {
      {"cascade", train::TrainOptions::Objective::kCascade},
      {"lm", train::TrainOptions::Objective::kLm}};
  app->add_option("--objective", o.objective,
                  "cascade: reconstruction through the latents; lm: both halves as plain language "
                  "models on the passages (a pretraining stage to --init the cascade from)")
      ->transform(CLI::CheckedTransformer(objectives))
      ->capture_default_str();
  app->add_option("--input-noise", o.input_noise,
                  "share of the decoder's input tokens replaced at random (robustness to its own slips)")
      ->check(CLI::Range(0.0, 0.5))
      ->capture_default_str();
  app->add_option("--self-feed", o.self_feed,
                  "share of the decoder's input tokens replaced by its own teacher-forced "
                  "predictions (one extra no-grad pass; the slips it really makes)")
      ->check(CLI::Range(0.0, 0.5))
      ->capture_default_str();
  app->add_option("--input-noise-decay", o.input_noise_decay,
                  "--input-noise and --self-feed fall linearly to 0 at this fraction of the run "
                  "(0 = constant)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app->add_option("--bf16", o.bf16, "bf16 autocast on CUDA")->capture_default_str();
  app->add_flag("--activation-checkpointing", o.activation_checkpointing, "recompute layers in backward");
  app->add_flag("!--no-overlap", o.overlap_allreduce,
                "data-parallel: all-reduce gradients after backward instead of during it");
  app->add_option("--zero", o.zero,
                  "data-parallel: shard AdamW's state (1) and gradients too (2) across the ranks")
      ->check(CLI::Range(0, 2))
      ->capture_default_str();
  app->add_option("--bucket-mb", o.bucket_mb, "data-parallel: gradient bucket size in MB")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app->add_option("--seed", o.seed, "seed for init and data")->capture_default_str();
  app->add_option("--device", o.device, "cpu | cuda")->capture_default_str();
  app->add_option("--save-every", o.save_every, "steps between checkpoints (0 = end only)")->capture_default_str();
  app->add_option("--keep-last", o.keep_last, "checkpoints kept")->capture_default_str();
  app->add_option("--checkpoint-threads", o.checkpoint_threads, "threads writing a checkpoint (per process)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  app->add_flag("!--no-background-checkpoints", o.background_checkpoints,
                "write each checkpoint before training goes on");
  app->add_option("--eval-every", o.eval_every, "steps between validations (0 = end only)")->capture_default_str();
  app->add_option("--eval-passages", o.eval_passages, "held-out passages per validation")->capture_default_str();
  app->add_option("--log-every", o.log_every, "steps between log lines")->capture_default_str();
  app->add_option("--peak-tflops", o.peak_tflops, "device peak for MFU")->capture_default_str();
  app->add_option("--nproc", nproc, "processes on this host (data parallel)")->capture_default_str();
  app->add_flag("--no-plot", no_plot, "skip the loss-curve PNG");
  app->callback([app]() {
    if (nproc > 1) {
      // Re-run this command line once per process, without --nproc.
      std::vector<std::string> args;
      const auto& raw = raw_args();
      for (size_t k = 0; k < raw.size(); ++k) {
        if (raw[k] == "--nproc") { ++k; continue; }
        if (raw[k].rfind("--nproc=", 0) == 0) continue;
        args.push_back(raw[k]);
      }
      int rc = train::launch_local(nproc, args);
      if (rc != 0) fail("c3 train --nproc {}: a worker process failed (exit {})", nproc, rc);
      return;
    }
    if (warmup_ratio > 0)  // as HF: ceil(warmup_ratio * max_steps)
      o.warmup_steps =
          std::max<int64_t>(1, static_cast<int64_t>(std::ceil(warmup_ratio * o.max_steps)));
    o.train_files = expand(train_globs, "--train");
    o.valid_files = expand(valid_globs, "--valid");
    o.char_precision = [](const std::string& p, const std::string& r) {
      return eval::char_precision(p, r);
    };
    if (!no_plot)
      o.plot_losses = [](const std::string& log, const std::string& png) {
        eval::plot_loss_curves(log, png);
      };
    // Only rank 0 reports: the others' progress bars and result lines would repeat it.
    const bool rank0 = train::DistEnv::from_env().rank == 0;
    if (!rank0) setenv("C3_NO_PROGRESS", "1", 1);
    train::TrainResult r = train::train(o);
    if (rank0)
      std::cout << nlohmann::json({{"steps", r.steps}, {"final_loss", r.final_loss},
                                 {"tokens_per_sec", r.tokens_per_sec}, {"mfu", r.mfu},
                                 {"checkpoint", r.last_checkpoint}})
                     .dump()
              << "\n";
  });
}

}  // namespace

C3_REGISTER_COMMAND("train", setup_train);

}  // namespace c3::cli
