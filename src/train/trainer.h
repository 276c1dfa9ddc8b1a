// c3 train: end-to-end training of a cascade on reconstruction.
//
//   one process:   c3 train --tokenizer tok.json --encoder-config enc.json
//                    --decoder-config dec.json --train 'data/train-*.jsonl.xz'
//                    --valid data/valid.jsonl.xz --out runs/x
//   one host, N GPUs (or CPU processes):   c3 train --nproc N ...same flags...
//   several hosts: run `c3 train` on each with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
//   MASTER_PORT set, as torchrun does (README, "Distributed training").
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "train/model_init.h"
#include "train/run_folder.h"  // latest_checkpoint()

namespace c3::train {

struct TrainOptions {
  ModelInit init;              // how the model starts (ignored when resuming)
  std::string resume;          // a checkpoint folder, or a run folder (its latest checkpoint)
  std::string freeze;          // comma list of: encoder, decoder, embeddings, queries, projector

  // Data
  std::vector<std::string> train_files, valid_files;
  std::string lengths = "uniform:64-1280";  // passage token-length distribution
  int64_t batch_size = 16;     // passages per micro-batch per process
  int64_t grad_accum = 1;      // micro-batches per optimizer step
  // > 0: micro-batches sized in tokens, so that short passages fill the GPU as long ones do (at
  // a 64-token cap, 64 rows left a recipe step launch-bound). With a length curriculum, where its
  // cap is short a micro-batch takes whole loader batches until its rows x cap would pass this
  // many tokens (rows_per_micro_batch). Without one, the loader makes variable batches of as many
  // rows (of similar length) as keep rows x longest passage within it per process; batch_size
  // is then not used.
  int64_t batch_tokens = 0;
  int data_threads = 2;        // background tokenization threads
  int64_t bucket_docs = 512;   // documents per bucketing chunk

  // Loss-gated curriculum over passage length: passages are cut to at most `cur_len` tokens,
  // starting at curriculum_start; whenever the smoothed loss of the steps at the cap (at_cap)
  // falls below curriculum_gate, cur_len grows by curriculum_grow (up to the distribution's
  // max). 0 = off.
  int64_t curriculum_start = 0;
  double curriculum_gate = 0.5;
  double curriculum_grow = 1.5;
  // Steps at the new cap before the gate may fire again: the smoothed loss restarts at each
  // growth, and one lucky step grew the cap three times in a row (197, 247, 309 on 2026-12-05).
  int64_t curriculum_patience = 20;
  double easy_share = 0.0;     // share of each batch kept at <= curriculum_start tokens

  // Optimisation
  double lr = 1e-3;
  double min_lr_ratio = 0.1;
  double weight_decay = 0.1;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double grad_clip = 1.0;      // 0 = off
  int64_t warmup_steps = 100;
  int64_t max_steps = 1000;
  double max_minutes = 0;      // stop (and save) after this much training time; 0 = off
  // With max_minutes: once the step rate is known (a few dozen steps in), shorten the run to the
  // steps that fit the time, so the cosine decay ends when the time does instead of being cut.
  bool fit_steps_to_time = false;
  // Stop (and save) once this step is reached, as an interruption would; the lr schedule still
  // spans max_steps, so --resume continues the same run. 0 = off.
  int64_t stop_at_step = 0;
  bool decay_embeddings = false;
  // kCascade: reconstruction through the latents (C3's objective). kLm: both halves trained as
  // plain language models on the passages (next-token loss, no latents), a stage before the
  // cascade as pretrained LLMs are for the paper's: its checkpoint is a cascade to --init from.
  enum class Objective { kCascade, kLm };
  Objective objective = Objective::kCascade;
  double aux_lm_weight = 0.0;  // weight of a plain next-token loss on the decoder
  double input_noise = 0.0;    // share of decoder input tokens replaced at random (InputNoise)
  double self_feed = 0.0;      // share replaced by the decoder's own predictions (InputNoise)
  // > 0: both shares fall linearly to 0 at this fraction of the run (input_noise_scale), so the
  // run ends on the clean objective; 0: constant.
  double input_noise_decay = 0.0;
  bool bf16 = true;            // bf16 autocast with fp32 master weights (CUDA only)
  bool activation_checkpointing = false;
  bool overlap_allreduce = true;  // data-parallel: all-reduce gradient buckets during backward
  // Data-parallel: ZeRO stage. 1 shards AdamW's state across the ranks, 2 its gradients too
  // (sharded_adamw.h); 0 keeps everything on every rank.
  int zero = 0;
  double bucket_mb = 25;  // data-parallel: gradient bucket size (PyTorch DDP's bucket_cap_mb)
  uint64_t seed = 0;
  std::string device = "cpu";
  double peak_tflops = 989.0;  // for MFU (H100 SXM dense bf16)

  // Output and monitoring (rank 0 only)
  std::string out_dir;
  int64_t save_every = 0;      // steps between checkpoints; 0 = only at the end
  int64_t keep_last = 2;
  int checkpoint_threads = 4;         // parallel writers of a checkpoint's files (per rank)
  bool background_checkpoints = true; // write checkpoints while training goes on
  int64_t eval_every = 0;      // steps between validations; 0 = only at the end
  int64_t eval_passages = 8;   // held-out passages for valid loss / char precision
  int64_t log_every = 10;
  bool progress = true;

  // Seconds on a monotonic clock, read at step boundaries and given the steps done so far. Empty:
  // std::chrono::steady_clock. It drives --max-minutes, --fit-steps-to-time and the logged times,
  // so a test can pass a fake one (a fixed time per step) and get exact results on any machine.
  std::function<double(int64_t steps_done)> clock;

  // Injected by the CLI from the eval layer (train may not depend on eval).
  std::function<double(const std::string& pred, const std::string& ref)> char_precision;
  std::function<void(const std::string& log_jsonl, const std::string& png)> plot_losses;
};

struct TrainResult {
  int64_t steps = 0;
  double final_loss = 0;
  double tokens_per_sec = 0;  // text tokens / s, all ranks, warmup and eval excluded
  double mfu = 0;
  std::string last_checkpoint;
  cascade::C3Model model{nullptr};  // the trained model (every rank holds the same weights)
};

TrainResult train(const TrainOptions& opt);

// The factor on --input-noise and --self-feed at `step` of `total_steps`: 1 when decay_fraction
// is 0, else 1 - step / (decay_fraction * total_steps), at least 0.
double input_noise_scale(int64_t step, int64_t total_steps, double decay_fraction);

// Whether a step counts for the curriculum's gate: its rows average at least 0.4 of the cap
// (rows are cut to a uniform length in [cap/4, cap], 0.625 of it on average, and a fifth may be
// easy). Batches of short documents learn fast and, counted too, moved the cap on while longer
// passages were still unlearnt (2026-12-05: the cap reached 1,344 tokens in 11 minutes while
// valid token accuracy stayed near 0.55).
bool at_cap(int64_t text_tokens, int64_t rows, int64_t cap);

// Rows of one micro-batch per process: batch_size times the number of whole batches whose rows
// fit `batch_tokens` at `cap` tokens each (at least one; batch_size where batch_tokens is 0).
int64_t rows_per_micro_batch(int64_t batch_size, int64_t batch_tokens, int64_t cap);

}  // namespace c3::train
