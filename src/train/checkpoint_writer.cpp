// Background, parallel, atomic checkpoint writing (see checkpoint_writer.h).
#include "train/checkpoint_writer.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "train/run_folder.h"
#include "util/atomic_file.h"

namespace c3::train {
namespace fs = std::filesystem;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string flag(int64_t step, int rank) { return fmt::format("ckpt/{}/{}", step, rank); }

}  // namespace

CheckpointWriter::CheckpointWriter(CheckpointWriterOptions opt, int rank, DataParallel* dp)
    : opt_(std::move(opt)), rank_(rank), dp_(dp) {}

CheckpointWriter::~CheckpointWriter() {
  try {
    wait();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "c3 train: the last checkpoint failed: %s\n", e.what());
  }
}

std::string CheckpointWriter::temp_dir(int64_t step) const {
  return (fs::path(opt_.run_dir) / (".tmp-" + step_dir(opt_.run_dir, step).filename().string())).string();
}

void CheckpointWriter::write(int64_t step, std::vector<CheckpointFile> files, int ranks) {
  wait();
  const double t0 = now_s();
  if (!opt_.background) {
    run(step, files, ranks, t0);
    return;
  }
  thread_ = std::thread([this, step, files = std::move(files), ranks, t0]() {
    try {
      run(step, files, ranks, t0);
    } catch (...) {
      error_ = std::current_exception();
    }
  });
}

void CheckpointWriter::wait() {
  if (thread_.joinable()) thread_.join();
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

void CheckpointWriter::run(int64_t step, const std::vector<CheckpointFile>& files, int ranks,
                           double t0) {
  const std::string tmp = temp_dir(step);
  fs::create_directories(tmp);
  CheckpointTiming t;
  t.step = step;
  for (const auto& f : files) t.bytes += f.data_bytes();
  const double w0 = now_s();
  write_checkpoint_files(tmp, files, opt_.threads);
  t.write_s = now_s() - w0;
  if (rank_ != 0) {
    if (ranks > 1) dp_->set_flag(flag(step, rank_));
    t.total_s = now_s() - t0;
    timing_ = t;
    return;
  }
  std::vector<std::string> others;
  for (int r = 1; r < ranks; ++r) others.push_back(flag(step, r));
  if (!others.empty()) dp_->wait_flags(others);
  fsync_dir(tmp);
  const fs::path final_dir = step_dir(opt_.run_dir, step);
  publish_checkpoint(tmp, final_dir, opt_.run_dir);
  prune_checkpoints(opt_.run_dir, std::max<int64_t>(1, opt_.keep_last));
  last_ = final_dir.string();
  t.total_s = now_s() - t0;
  timing_ = t;
}

}  // namespace c3::train
