// Checkpoint folders of a training run (see run_folder.h).
#include "train/run_folder.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "util/atomic_file.h"
#include "util/remove_tree.h"

namespace c3::train {
namespace fs = std::filesystem;

fs::path step_dir(const std::string& out_dir, int64_t step) {
  return fs::path(out_dir) / fmt::format("step-{:07d}", step);
}

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

void publish_checkpoint(const fs::path& tmp, const fs::path& final_dir, const std::string& run_dir) {
  const fs::path old = fs::path(run_dir) / (".old-" + final_dir.filename().string());
  c3::remove_tree(old);
  if (fs::exists(final_dir)) fs::rename(final_dir, old);
  fs::rename(tmp, final_dir);
  fsync_dir(run_dir);
  c3::remove_tree(old);
}

void prune_checkpoints(const std::string& run_dir, int64_t keep) {
  std::vector<fs::path> steps;
  for (auto& e : fs::directory_iterator(run_dir))
    if (e.is_directory() && e.path().filename().string().rfind("step-", 0) == 0)
      steps.push_back(e.path());
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + keep < steps.size(); ++i) c3::remove_tree(steps[i]);
}

}  // namespace c3::train
