// A run folder (c3 train --out): its checkpoints are step-NNNNNNN folders, each complete or absent.
// A checkpoint is written into .tmp-step-NNNNNNN and renamed into place, so a kill at any moment
// leaves the newest step-* folder complete; --resume picks that one.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

namespace c3::train {

// out_dir/step-0000042.
std::filesystem::path step_dir(const std::string& out_dir, int64_t step);

// The newest complete checkpoint under a run folder ("" when none); a checkpoint folder itself
// is returned as is.
std::string latest_checkpoint(const std::string& run_dir);

// Renames the finished (and fsynced) `tmp` folder to `final_dir` in `run_dir`. An older folder of
// that name is moved aside first, not deleted: at every moment the newest step-* folder is
// complete (a kill between the renames leaves the previous step as the newest).
void publish_checkpoint(const std::filesystem::path& tmp, const std::filesystem::path& final_dir,
                        const std::string& run_dir);

// Deletes all but the newest `keep` step-* folders.
void prune_checkpoints(const std::string& run_dir, int64_t keep);

}  // namespace c3::train
