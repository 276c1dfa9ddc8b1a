// ZeRO tests (CPU, Gloo): the flat layout and its shards; 2 processes with sharded optimizer
// state (stage 1) and sharded gradients too (stage 2) against 1 process; sharded checkpoints
// resumed bit for bit with the same world size, and resumed with another one.
//
// The 2-process tests re-run this binary through launch_local() with C3_ZERO_TEST_MODE set; the
// children run only ZeroWorker.Run, which is skipped in a normal run.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "testdata.h"
#include "train/distributed.h"
#include "train/shard_layout.h"
#include "train/trainer.h"
#include "train_tiny_run.h"

namespace {

namespace fs = std::filesystem;
using c3::train::ShardLayout;
using c3::train::TrainOptions;
using c3::train::TrainResult;
using namespace c3::test::tiny_run;

// 2 processes against 1 after 4 steps: only the order of the gradient sums differs (fp32).
constexpr double kZeroTol = 1e-6;
// 4 more steps after a resume with another world size (fp32; the differences above, grown).
constexpr double kResumeTol = 1e-5;

fs::path zero_dir(const std::string& name) { return fresh_test_dir("train_zero", name); }

// As the data-parallel trainer test: variable lengths, two micro-batches, a curriculum. Small
// buckets (about 14 for this model), so buckets straddle the shard boundary and the parameter
// all-gather takes several rounds; a low clipping threshold, so clipping (by the global norm over
// the shards) acts at every step. `batch` passages per process.
TrainOptions zero_options(const fs::path& dir, const std::string& run, int64_t batch, int zero) {
  TrainOptions o = tiny_options(dir, run);
  o.lengths = "uniform:8-48";
  o.batch_size = batch;
  o.grad_accum = 2;
  o.curriculum_start = 16;
  o.curriculum_gate = 100;
  o.curriculum_patience = 1;
  o.easy_share = 0.5;
  o.lr = 1e-3;
  o.grad_clip = 0.5;
  o.max_steps = 4;
  o.zero = zero;
  o.bucket_mb = 0.1;
  return o;
}

// Runs 2 copies of this binary as ZeroWorker.Run in `mode` on `dir`; launch_local's status.
int run_workers(const char* mode, const fs::path& dir) {
  setenv("C3_ZERO_TEST_MODE", mode, 1);
  setenv("C3_ZERO_TEST_DIR", dir.c_str(), 1);
  const int rc = c3::train::launch_local(
      2, {"train_tests", "--gtest_filter=ZeroWorker.Run", "--gtest_brief=1"});
  unsetenv("C3_ZERO_TEST_MODE");
  unsetenv("C3_ZERO_TEST_DIR");
  return rc;
}

// Before each run after the first, the ranks move to a new MASTER_PORT: a rank that set out
// again at once could otherwise reach rank 0's store of the run before while it shuts down. Rank
// 0 picks a free port and hands it over in a file.
void next_port(const fs::path& dir, const std::string& rank, int run) {
  const fs::path file = dir / ("port-" + std::to_string(run) + ".txt");
  std::string port;
  if (rank == "0") {
    port = std::to_string(c3::train::find_free_port());
    write_file(dir / "port.tmp", port);
    fs::rename(dir / "port.tmp", file);
  } else {
    while ((port = read_file(file)).empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  setenv("MASTER_PORT", port.c_str(), 1);
}

// The runs 2 ranks make in each mode; each saves its parameters as <run>-rank<r>.pt.
TEST(ZeroWorker, Run) {
  const char* mode = std::getenv("C3_ZERO_TEST_MODE");
  if (!mode) GTEST_SKIP() << "runs only as a child of the Zero.* tests";
  setenv("C3_NO_PROGRESS", "1", 1);
  const fs::path dir = std::getenv("C3_ZERO_TEST_DIR");
  const std::string rank = std::getenv("RANK");
  int runs = 0;
  auto run = [&](TrainOptions o, int64_t steps) {
    if (runs++ > 0) next_port(dir, rank, runs);
    const std::string name = fs::path(o.out_dir).filename();
    const TrainResult r = c3::train::train(o);
    ASSERT_EQ(r.steps, steps) << name;
    save_params(r.model, dir / (name + "-rank" + rank + ".pt"));
  };
  if (std::string(mode) == "match") {
    run(zero_options(dir, "zero1", 2, 1), 4);
    run(zero_options(dir, "zero2", 2, 2), 4);
    TrainOptions o = zero_options(dir, "zero2-bulk", 2, 2);
    o.overlap_allreduce = false;  // the path activation checkpointing takes
    run(o, 4);
    return;
  }
  ASSERT_EQ(std::string(mode), "resume");
  TrainOptions o = zero_options(dir, "straight", 2, 2);
  o.max_steps = 8;
  run(o, 8);
  o = zero_options(dir, "halves", 2, 2);
  o.max_steps = 8;
  o.stop_at_step = 4;
  run(o, 4);
  o.stop_at_step = 0;
  o.resume = (dir / "halves").string();
  o.init = {};
  run(o, 8);
  // A checkpoint of one process (unsharded state) resumed by two with sharded state.
  o = zero_options(dir, "from-one", 2, 1);
  o.max_steps = 8;
  o.resume = (dir / "one-half" / "step-0000004").string();
  o.init = {};
  run(o, 8);
}

// The ranks hold the same parameters, within kZeroTol of one process's; returns the largest diff.
double expect_ranks_match(const fs::path& dir, const std::string& run,
                          const std::vector<at::Tensor>& ref, double tol) {
  const auto r0 = load_params(dir / (run + "-rank0.pt")), r1 = load_params(dir / (run + "-rank1.pt"));
  EXPECT_EQ(r0.size(), ref.size());
  for (size_t i = 0; i < r0.size() && i < r1.size(); ++i)
    EXPECT_TRUE(torch::equal(r0[i], r1[i])) << run << ": parameter " << i << " differs between ranks";
  const double d = max_abs_diff(r0, ref);
  std::printf("[zero] %-12s max |2 processes - 1 process| = %.3g (tolerance %.0e)\n", run.c_str(),
              d, tol);
  EXPECT_LE(d, tol) << run;
  return d;
}

int64_t logged_state_bytes(const fs::path& run) {
  const auto start = read_log(run / "train_log.jsonl", "start");
  return start.empty() ? -1 : start.back()["optimizer_state_bytes"].get<int64_t>();
}

}  // namespace

TEST(ShardLayout, CutsTheFlatSpaceIntoEqualShards) {
  std::vector<at::Tensor> ps = {torch::arange(5, torch::kFloat), torch::arange(3, torch::kFloat),
                                torch::arange(4, torch::kFloat).view({2, 2})};
  const ShardLayout l(ps, 5, 1);
  EXPECT_EQ(l.numel(), 12);
  EXPECT_EQ(l.shard_numel(), 3);  // ceil(12 / 5)
  EXPECT_EQ(l.my_begin(), 3);
  EXPECT_EQ(l.my_end(), 6);
  EXPECT_EQ(l.begin(4), 12);  // the last shard is empty
  EXPECT_EQ(l.end(4), 12);
  EXPECT_EQ(l.offset(2), 8);
  const auto pieces = l.pieces(2, 10);  // the end of #0, all of #1, the start of #2
  ASSERT_EQ(pieces.size(), 3u);
  EXPECT_EQ(pieces[0].param, 0);
  EXPECT_EQ(pieces[0].begin, 2);
  EXPECT_EQ(pieces[0].numel, 3);
  EXPECT_EQ(pieces[0].flat, 2);
  EXPECT_EQ(pieces[1].param, 1);
  EXPECT_EQ(pieces[1].numel, 3);
  EXPECT_EQ(pieces[2].param, 2);
  EXPECT_EQ(pieces[2].begin, 0);
  EXPECT_EQ(pieces[2].numel, 2);
  EXPECT_EQ(pieces[2].flat, 8);
  l.view(pieces[2]).fill_(-1);  // a view writes through to the parameter
  EXPECT_TRUE(torch::equal(ps[2], torch::tensor({-1.f, -1.f, 2.f, 3.f}).view({2, 2})));
  EXPECT_TRUE(l.pieces(12, 12).empty());
  EXPECT_NE(l.signature(), ShardLayout({ps[1], ps[0], ps[2]}, 5, 1).signature());
}

// 2 Gloo processes with the optimizer state sharded (1) and the gradients too (2), with buckets
// overlapped with backward and without, end 4 steps where 1 process does; each rank holds half
// of the optimizer state.
TEST(Zero, TwoGlooProcessesMatchOneProcess) {
  if (!c3::train::DataParallel::available(at::kCPU)) GTEST_SKIP() << "this build has no Gloo";
  setenv("C3_NO_PROGRESS", "1", 1);
  const fs::path dir = zero_dir("match");
  write_tiny_setup(dir, synthetic_docs(12));
  const TrainResult one = c3::train::train(zero_options(dir, "one", 4, 0));
  ASSERT_EQ(one.steps, 4);
  save_params(one.model, dir / "one.pt");
  const auto ref = load_params(dir / "one.pt");

  ASSERT_EQ(run_workers("match", dir), 0) << "a worker failed; its output is above";
  for (const char* run : {"zero1", "zero2", "zero2-bulk"}) {
    expect_ranks_match(dir, run, ref, kZeroTol);
    // Each rank wrote its half of the state; together they cover it.
    std::vector<std::string> parts;
    for (auto& e : fs::directory_iterator(dir / run / "step-0000004" / "optimizer"))
      parts.push_back(e.path().filename().string());
    EXPECT_EQ(parts.size(), 2u) << run;
    const int64_t full = logged_state_bytes(dir / "one"), half = logged_state_bytes(dir / run);
    EXPECT_GT(half, 0);
    EXPECT_LE(half, full / 2 + 1024) << run << ": rank 0 holds more than its half of the state";
    // The ranks logged the global losses, as the single process did.
    const auto l1 = read_log(dir / "one" / "train_log.jsonl", "step");
    const auto l2 = read_log(dir / run / "train_log.jsonl", "step");
    ASSERT_EQ(l1.size(), l2.size());
    for (size_t i = 0; i < l1.size(); ++i)
      EXPECT_NEAR(l1[i]["loss"].get<double>(), l2[i]["loss"].get<double>(), 1e-5) << run;
  }
}

// Stage 2, 2 processes: 8 steps straight == 4 steps, a checkpoint, and 4 resumed steps, bit for
// bit. And a checkpoint moves between world sizes: a 2-process one (sharded state) resumed by
// 1 process, and a 1-process one by 2 with sharded state, each end close to the run that never
// changed.
TEST(Zero, ShardedCheckpointsResumeBitForBitAndUnderAnotherWorldSize) {
  if (!c3::train::DataParallel::available(at::kCPU)) GTEST_SKIP() << "this build has no Gloo";
  setenv("C3_NO_PROGRESS", "1", 1);
  const fs::path dir = zero_dir("resume");
  write_tiny_setup(dir, synthetic_docs(12));
  TrainOptions o = zero_options(dir, "one-straight", 4, 0);
  o.max_steps = 8;
  const TrainResult one = c3::train::train(o);
  ASSERT_EQ(one.steps, 8);
  o = zero_options(dir, "one-half", 4, 0);
  o.max_steps = 8;
  o.stop_at_step = 4;
  ASSERT_EQ(c3::train::train(o).steps, 4);

  ASSERT_EQ(run_workers("resume", dir), 0) << "a worker failed; its output is above";
  const fs::path a = dir / "straight" / "step-0000008", b = dir / "halves" / "step-0000008";
  EXPECT_GT(expect_same_checkpoint(a, b), 20);
  EXPECT_EQ(nlohmann::json::parse(read_file(a / "trainer_state.json")),
            nlohmann::json::parse(read_file(b / "trainer_state.json")));
  for (const auto& e : fs::directory_iterator(a / "optimizer"))
    EXPECT_EQ(read_file(e.path()), read_file(b / "optimizer" / e.path().filename()))
        << "optimizer state " << e.path().filename() << " differs after the resume";

  // 2 -> 1: the stage-2 checkpoint at step 4, 4 more steps in one process.
  o = zero_options(dir, "two-to-one", 4, 0);
  o.max_steps = 8;
  o.resume = (dir / "halves" / "step-0000004").string();
  o.init = {};
  const TrainResult moved = c3::train::train(o);
  ASSERT_EQ(moved.steps, 8);
  save_params(moved.model, dir / "two-to-one.pt");
  const double d21 = max_abs_diff(load_params(dir / "two-to-one.pt"), load_params(dir / "straight-rank0.pt"));
  std::printf("[zero] 2 -> 1 processes at step 4: max diff at step 8 %.3g (tolerance %.0e)\n", d21,
              kResumeTol);
  EXPECT_LE(d21, kResumeTol);
  // 1 -> 2: the 1-process checkpoint at step 4, 4 more steps in two with sharded state.
  save_params(one.model, dir / "one-straight.pt");
  expect_ranks_match(dir, "from-one", load_params(dir / "one-straight.pt"), kResumeTol);
}
