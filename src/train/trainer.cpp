// The training loop: data -> teacher-forced reconstruction loss -> AdamW, with checkpoints,
// validation, JSON-lines logs and optional data parallelism. Each step is a TrainRun method
// (train_run.h); this is the loop that strings them together.
#include "train/trainer.h"

#include <algorithm>

#include "train/train_run.h"

namespace c3::train {

TrainResult train(const TrainOptions& opt) {
  TrainRun run(opt);  // processes, model, optimizer, data, the resumed state, the log's start
  while (run.step() < run.last_step()) {
    std::optional<StepBatch> batch = run.next_batch();  // none: time is up, or --stop-at-step
    if (!batch) break;
    const StepStats stats = run.train_step(*batch);  // forward, backward, gradient sync, AdamW
    run.log_step(stats);
    if (run.due(opt.eval_every)) run.validate();
    if (run.due(opt.save_every)) run.save();
  }
  return run.finish();  // the last validation and checkpoint, the end record, the loss plot
}

double input_noise_scale(int64_t step, int64_t total_steps, double decay_fraction) {
  if (decay_fraction <= 0) return 1.0;
  const double end = decay_fraction * static_cast<double>(std::max<int64_t>(1, total_steps));
  return std::max(0.0, 1.0 - static_cast<double>(step) / end);
}

int64_t rows_per_micro_batch(int64_t batch_size, int64_t batch_tokens, int64_t cap) {
  if (batch_tokens <= 0 || cap <= 0) return batch_size;
  return batch_size * std::max<int64_t>(1, batch_tokens / (batch_size * cap));
}

bool at_cap(int64_t text_tokens, int64_t rows, int64_t cap) {
  return rows > 0 && cap > 0 && text_tokens * 5 >= 2 * rows * cap;  // mean row >= 0.4 cap
}

}  // namespace c3::train
