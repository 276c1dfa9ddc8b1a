// One training run, in named steps: set-up (processes, model, optimizer, data), resume, the next
// batch, one optimizer step, its log line, validation, a checkpoint, and the end. train() in
// trainer.cpp strings them into the loop.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "c3/c3_model.h"
#include "model/kernel_trace.h"
#include "train/checkpoint_writer.h"
#include "train/data_loader.h"
#include "train/model_init.h"
#include "train/distributed.h"
#include "train/flop_model.h"
#include "train/graphed_loss.h"
#include "train/host_staging.h"
#include "train/lr_schedule.h"
#include "train/param_groups.h"
#include "train/phase_timer.h"
#include "train/sharded_adamw.h"
#include "train/trainer.h"
#include "train/validation.h"
#include "util/jsonl_log.h"
#include "util/progress_bar.h"

namespace c3::train {

// The passages of one optimizer step (all its micro-batches, this rank's rows) and the counts
// the ranks agreed on before the first backward.
struct StepBatch {
  std::vector<std::vector<std::vector<int32_t>>> micro_ids;  // [micro][row] token ids
  int64_t text = 0, targets = 0;               // this rank's text and target tokens
  int64_t world_text = 0, world_targets = 0;   // all ranks'
  int64_t lm_targets = 0, world_lm_targets = 0;  // auxiliary LM targets: this rank's, all ranks'
  int64_t world_rows = 0;                      // rows of every micro-batch, all ranks (nominal)
  double flops = 0;                            // this rank's training FLOPs
  double lr = 0, noise_scale = 1;
  double t_start = 0;                          // the clock when the step began
};

// What one optimizer step gives the log.
struct StepStats {
  double loss = 0;           // mean over every target token of the step, all ranks
  int64_t correct = 0;       // this rank's correctly predicted targets
  int64_t targets = 0;       // this rank's targets
  at::Tensor grad_norm;      // before clipping; reading it syncs the device, so only when logged
  double lr = 0, noise_scale = 1;
  double seconds = 0;        // the step's time on the run's clock
  double elapsed = 0;        // the run's time so far
  int64_t world_tokens = 0;  // text tokens, all ranks
  int64_t world_rows = 0;    // rows, all ranks (nominal: the passages asked for)
};

class TrainRun {
 public:
  // Set-up: processes and device, the model (fresh or from the checkpoint to resume), optimizer,
  // data, validation passages, the resumed state and the log's start record.
  explicit TrainRun(const TrainOptions& opt);

  int64_t step() const { return step_; }
  int64_t last_step() const { return last_step_; }
  // Whether periodic work due every `every` steps falls on the step just taken (never the last:
  // finish() does that).
  bool due(int64_t every) const { return every > 0 && step_ % every == 0 && step_ < last_step_; }

  // The next step's passages, or nothing when the run must stop first (its time is up on some
  // rank, or --stop-at-step). With --fit-steps-to-time it may also move last_step().
  std::optional<StepBatch> next_batch();
  // Forward and backward over the micro-batches, gradient sync, AdamW (sharded with --zero);
  // advances step().
  StepStats train_step(const StepBatch& batch);
  void log_step(const StepStats& stats);  // the step record (every --log-every), progress bar
  void validate();                        // rank 0, when there are valid passages
  // A checkpoint of the current step: host copies now, written in the background (by rank 0;
  // with --zero every rank writes a part).
  void save();
  TrainResult finish();                   // the last validation and checkpoint, the end record

 private:
  void set_up_model(const TrainOptions& opt);
  void set_up_data();
  void resume();
  void write_start_record();
  bool out_of_time(double now);
  double fitted_steps(double now);  // this rank's estimate of the steps that fit the time
  void gather_micro_batches(StepBatch& b);
  bool lm_objective() const { return opt_.objective == TrainOptions::Objective::kLm; }
  // --batch-tokens without a length curriculum: the loader sizes each batch in tokens.
  bool token_batches() const { return opt_.batch_tokens > 0 && opt_.curriculum_start <= 0; }
  bool agree_across_ranks(StepBatch& b, bool late, std::optional<double> fitted);
  void forward_backward(const StepBatch& b, at::Tensor& loss_sum, at::Tensor& correct_sum);
  std::pair<at::Tensor, at::Tensor> micro_batch(const StepBatch& b, size_t k, bool arm_overlap);
  void sync_gradients(bool armed);
  void advance(const StepBatch& b, StepStats& s);  // counters, timing, curriculum
  void set_up_graphs();
  void wait_for_checkpoint();  // the one in flight is in place; rank 0 logs its timing
  void reserve_snapshot_memory();

  const TrainOptions& opt_;
  DistEnv env_;
  at::Device device_;
  bool rank0_ = false, bf16_ = false;
  std::string resume_dir_;
  TokenizerSource tok_src_;  // where the tokenizer came from (grown when C3's tokens were added)
  std::string tok_path_;     // the run folder's copy (rank 0), which every checkpoint copies
  cascade::C3Model model_{nullptr};
  std::unique_ptr<DataParallel> dp_;
  ParamGroups params_;
  std::unique_ptr<ShardedAdamW> optimizer_;
  int zero_ = 0;  // the ZeRO stage in force (0 with one process)
  bool overlap_ = false;
  std::unique_ptr<GraphedLoss> graphs_;  // the micro-batch step as CUDA graphs, when they apply
  std::string graphs_state_;             // "cuda", "emulate", or "off" with the reason
  LrSchedule schedule_;
  LengthDist dist_;
  std::unique_ptr<DataLoader> loader_;
  std::unique_ptr<Validation> valid_;
  FlopModel flops_;

  // Progress: what resume restores.
  int64_t step_ = 0, tokens_seen_ = 0, cur_len_ = 0;
  double smooth_loss_ = -1;
  int64_t gate_steps_ = 0;  // steps at the cap since it last grew (TrainOptions::curriculum_patience)
  int64_t last_step_ = 0;  // max_steps, or fewer once fitted to the time

  // Output.
  std::unique_ptr<JsonlLog> log_;  // rank 0
  std::string log_path_;
  int64_t saved_step_ = -1;  // the step whose checkpoint in out_dir is this state
  std::string last_ckpt_;
  std::unique_ptr<HostStaging> staging_;  // before writer_: it outlives the writes from it
  std::unique_ptr<CheckpointWriter> writer_;
  double snapshot_s_ = 0;     // the last checkpoint's pause in training
  double snapshot_host_s_ = 0;  // of it, before waiting for the device's copies
  int64_t logged_ckpt_ = -1;  // the last checkpoint whose timing is in the log
  std::unique_ptr<ProgressBar> bar_;
  TrainResult res_;

  // Time: the run's clock, throughput excluding warm-up and eval, the time fit, profiling.
  std::function<double(int64_t)> clock_;
  double t_start_ = 0, timed_seconds_ = 0, timed_flops_ = 0;
  int64_t timed_tokens_ = 0, warm_steps_ = 0;
  int64_t fit_step_ = 0, fit_from_ = 0;
  double t_fit_ = 0;
  std::unique_ptr<PhaseTimer> phases_;
  const char* trace_path_ = nullptr;
  model::KernelTrace trace_;
};

}  // namespace c3::train
