// Writes a run's checkpoints while training goes on. The caller hands over host copies of
// everything a checkpoint holds (taking them is the only pause in training); a background thread
// writes them into out_dir/.tmp-step-N with several threads (checkpoint_file.h), fsyncs, renames
// the folder into place and prunes old ones (run_folder.h): as before, a kill at any moment
// leaves the newest step-* folder complete.
//
// With sharded optimizer state each rank writes its part (its optimizer shard, a share of the
// weight files) into the same temp folder; rank 0 renames it only once every rank has flagged, through
// the job's store, that its files are on disk. One checkpoint is in flight at a time: the next
// write() first waits for the last.
#pragma once
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "train/checkpoint_file.h"
#include "train/distributed.h"

namespace c3::train {

struct CheckpointWriterOptions {
  std::string run_dir;
  int64_t keep_last = 2;
  int threads = 4;          // parallel writers per rank
  bool background = true;   // false: write() returns once the checkpoint is in place
};

// How long the last checkpoint took, for the log.
struct CheckpointTiming {
  int64_t step = -1;
  int64_t bytes = 0;      // this rank's
  double write_s = 0;     // writing and fsyncing this rank's files
  double total_s = 0;     // from write() to the rename (rank 0: all ranks' parts included)
};

class CheckpointWriter {
 public:
  // `dp` (null with one process) carries the flags between ranks; it must outlive this.
  CheckpointWriter(CheckpointWriterOptions opt, int rank, DataParallel* dp);
  ~CheckpointWriter();  // waits for the checkpoint in flight; an error then is only printed
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  // The temp folder of `step`'s checkpoint.
  std::string temp_dir(int64_t step) const;
  // Starts writing this rank's `files` as part of `step`'s checkpoint. `ranks`: how many ranks
  // write parts of it; rank 0's files must include trainer_state.json. The temp folder must hold nothing stale (rank 0 clears it, then the
  // ranks pass a barrier, before any of them calls this).
  void write(int64_t step, std::vector<CheckpointFile> files, int ranks);
  // Waits for the checkpoint in flight; rethrows its error.
  void wait();

  const std::string& last_checkpoint() const { return last_; }  // rank 0; "" before the first
  const CheckpointTiming& last_timing() const { return timing_; }

 private:
  void run(int64_t step, const std::vector<CheckpointFile>& files, int ranks, double t0);

  CheckpointWriterOptions opt_;
  int rank_;
  DataParallel* dp_;
  std::thread thread_;
  std::exception_ptr error_;
  std::string last_;
  CheckpointTiming timing_;
};

}  // namespace c3::train
