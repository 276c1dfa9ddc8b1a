// Data-parallel tests: DistEnv parsing, one process without a store, and 2-process training
// (Gloo on CPU; NCCL with C3_DIST_DEVICE=cuda) that must match 1 process on the same global batch.
//
// The 2-process tests re-run this binary through launch_local() with C3_DIST_TEST_MODE set; the
// children run only DistributedWorker.Run, which is skipped in a normal run.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "train/distributed.h"
#include "util/error.h"
#include "util/remove_tree.h"

namespace {

namespace fs = std::filesystem;
using c3::train::DataParallel;
using c3::train::DataParallelOptions;
using c3::train::DistEnv;

constexpr int kGlobalBatch = 8;
constexpr int kSteps = 5;
constexpr double kLr = 0.1;
constexpr double kDpTol = 1e-6;  // fp32; the only difference is the summation order of grads

const char* kTorchrunVars[] = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"};

// Sets (or, with nullptr, unsets) env vars for one scope; restores the old values after.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::vector<std::pair<std::string, const char*>>& kv) {
    for (auto& [k, v] : kv) {
      const char* old = std::getenv(k.c_str());
      saved_.push_back({k, old ? std::optional<std::string>(old) : std::nullopt});
      if (v)
        setenv(k.c_str(), v, 1);
      else
        unsetenv(k.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second)
        setenv(it->first.c_str(), it->second->c_str(), 1);
      else
        unsetenv(it->first.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

// Only the torchrun variables given are set; the rest are unset.
ScopedEnv torchrun_env(std::vector<std::pair<std::string, const char*>> kv) {
  std::vector<std::pair<std::string, const char*>> all;
  for (const char* k : kTorchrunVars) {
    const char* v = nullptr;
    for (auto& [key, val] : kv)
      if (key == k) v = val;
    all.push_back({k, v});
  }
  return ScopedEnv(all);
}

struct TinyNetImpl : torch::nn::Module {
  TinyNetImpl() {
    fc1 = register_module("fc1", torch::nn::Linear(4, 8));
    fc2 = register_module("fc2", torch::nn::Linear(8, 3));
  }
  at::Tensor forward(const at::Tensor& x) { return fc2(torch::tanh(fc1(x))); }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(TinyNet);

// A fixed global batch, no RNG involved: x [8, 4], y [8, 3].
std::pair<at::Tensor, at::Tensor> global_batch(at::Device dev) {
  auto x = torch::sin(torch::arange(kGlobalBatch * 4, torch::kFloat).mul(0.37)).view({-1, 4});
  auto y = torch::cos(torch::arange(kGlobalBatch * 3, torch::kFloat).mul(0.53)).view({-1, 3});
  return {x.to(dev), y.to(dev)};
}

TinyNet make_net(int seed, at::Device dev) {
  torch::manual_seed(seed);
  TinyNet net;
  net->to(dev);
  return net;
}

at::Tensor loss_on(TinyNet& net, const at::Tensor& x, const at::Tensor& y, int64_t lo, int64_t n) {
  return torch::mse_loss(net->forward(x.narrow(0, lo, n)), y.narrow(0, lo, n));
}

std::vector<at::Tensor> cpu_copy(const std::vector<at::Tensor>& ts) {
  std::vector<at::Tensor> out;
  for (auto& t : ts) out.push_back(t.detach().cpu().clone());
  return out;
}

at::Device test_device(int local_rank) {
  const char* d = std::getenv("C3_DIST_DEVICE");
  if (d && std::string(d) == "cuda") return at::Device(at::kCUDA, local_rank);
  return at::Device(at::kCPU);
}

// The single-process reference: nets A (seed 100) and B (seed 200), SGD on the whole batch.
std::vector<at::Tensor> reference_params(at::Device dev) {
  auto [x, y] = global_batch(dev);
  std::vector<at::Tensor> out;
  for (int seed : {100, 200}) {
    TinyNet net = make_net(seed, dev);
    torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(kLr).momentum(0.9));
    for (int s = 0; s < kSteps; ++s) {
      opt.zero_grad();
      loss_on(net, x, y, 0, kGlobalBatch).backward();
      opt.step();
    }
    for (auto& p : cpu_copy(net->parameters())) out.push_back(p);
  }
  return out;
}

// Runs 2 copies of this binary in worker `mode`; returns launch_local's status.
int run_workers(const std::string& mode, const fs::path& dir) {
  ScopedEnv env({{"C3_DIST_TEST_MODE", mode.c_str()}, {"C3_DIST_TEST_DIR", dir.c_str()}});
  return c3::train::launch_local(
      2, {"train_tests", "--gtest_filter=DistributedWorker.Run", "--gtest_brief=1"});
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("c3_dist_" + std::to_string(::getpid()) + "_" +
            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
    fs::create_directories(path);
  }
  ~TempDir() { c3::remove_tree(path); }
};

// Why a 2-process test can't run here, or "" if it can.
std::string cannot_run_two(at::Device dev) {
  if (!DataParallel::available(dev.type()))
    return "this build has no " + std::string(dev.is_cuda() ? "NCCL" : "Gloo") + " support";
  if (dev.is_cuda() && (!torch::cuda::is_available() || torch::cuda::device_count() < 2))
    return "C3_DIST_DEVICE=cuda needs 2 GPUs";
  return "";
}

// ---- worker side ---------------------------------------------------------------------------

// Nets A (plain all-reduce) and B (overlapped, 2 micro-batches) trained on this rank's half.
void worker_train(DataParallel& dp, at::Device dev, const fs::path& dir) {
  auto [x, y] = global_batch(dev);
  const int64_t per = kGlobalBatch / dp.world_size(), lo = dp.rank() * per;

  // Different seeds per rank: broadcast_parameters must make them rank 0's.
  TinyNet a = make_net(100 + dp.rank(), dev);
  dp.broadcast_parameters(*a);
  torch::optim::SGD opt_a(a->parameters(), torch::optim::SGDOptions(kLr).momentum(0.9));
  for (int s = 0; s < kSteps; ++s) {
    opt_a.zero_grad();
    loss_on(a, x, y, lo, per).backward();
    dp.allreduce_gradients(a->parameters());
    opt_a.step();
  }

  TinyNet b = make_net(200 + dp.rank(), dev);
  dp.broadcast_parameters(*b);
  dp.register_overlap(b->parameters());
  torch::optim::SGD opt_b(b->parameters(), torch::optim::SGDOptions(kLr).momentum(0.9));
  const int64_t micro = per / 2;
  for (int s = 0; s < kSteps; ++s) {
    opt_b.zero_grad();
    loss_on(b, x, y, lo, micro).div(2).backward();  // unarmed: local accumulation only
    dp.arm_overlap();
    loss_on(b, x, y, lo + micro, micro).div(2).backward();
    dp.finish_gradients();
    opt_b.step();
  }

  std::vector<at::Tensor> out = cpu_copy(a->parameters());
  for (auto& p : cpu_copy(b->parameters())) out.push_back(p);
  torch::save(out, (dir / ("rank" + std::to_string(dp.rank()) + ".pt")).string());
}

// Params used on one rank only, on none, mixed dtypes, and one that doesn't require grad.
void worker_unused_params(DataParallel& dp, at::Device dev, bool overlap) {
  auto f32 = torch::TensorOptions().dtype(torch::kFloat).device(dev);
  auto f64 = torch::TensorOptions().dtype(torch::kDouble).device(dev);
  at::Tensor only0 = torch::zeros({3}, f32).requires_grad_();
  at::Tensor unused = torch::zeros({2}, f64).requires_grad_();
  at::Tensor both = torch::ones({5}, f64).requires_grad_();
  at::Tensor frozen = torch::ones({2}, f32);
  std::vector<at::Tensor> params{only0, unused, both, frozen};
  if (overlap) {
    dp.register_overlap(params);
    dp.arm_overlap();
  }
  at::Tensor loss = both.mul(dp.rank() + 1).sum();
  if (dp.rank() == 0) loss = loss + only0.mul(2).sum();
  loss.backward();
  if (overlap)
    dp.finish_gradients();
  else
    dp.allreduce_gradients(params);
  const char* path = overlap ? "overlap" : "allreduce_gradients";
  ASSERT_TRUE(only0.grad().defined()) << path;
  EXPECT_TRUE(torch::allclose(only0.grad().cpu(), torch::full({3}, 1.0f))) << path;  // (2+0)/2
  EXPECT_FALSE(unused.grad().defined()) << path;
  EXPECT_TRUE(torch::allclose(both.grad().cpu(), torch::full({5}, 1.5, torch::kDouble))) << path;
  EXPECT_FALSE(frozen.grad().defined()) << path;
}

void worker_bench(DataParallel& dp, at::Device dev) {
  const int64_t mb = std::atoll(std::getenv("C3_DIST_BENCH_MB"));
  at::Tensor buf = torch::ones({mb * (1 << 20) / 4}, torch::TensorOptions().device(dev));
  for (int i = 0; i < 3; ++i) dp.allreduce_sum(buf);  // warm-up: connections, NCCL init
  dp.barrier();
  constexpr int kIters = 10;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < kIters; ++i) dp.allreduce_sum(buf);
  dp.barrier();  // reads a result back, so the GPU has finished
  const double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / kIters;
  const double n = dp.world_size(), gb = mb * double(1 << 20) / 1e9;
  if (dp.rank() == 0)
    std::printf(
        "allreduce %lld MB fp32, %d ranks, %s on %s: %.3f ms/iter, algbw %.1f GB/s, "
        "busbw %.1f GB/s\n",
        static_cast<long long>(mb), dp.world_size(), dp.backend_name().c_str(), dev.str().c_str(),
        s * 1e3, gb / s, gb / s * 2 * (n - 1) / n);
  buf.fill_(1);
  dp.allreduce_sum(buf);
  EXPECT_EQ(buf.max().item<float>(), n);
  EXPECT_EQ(buf.min().item<float>(), n);
}

}  // namespace

TEST(DistributedWorker, Run) {
  const char* mode = std::getenv("C3_DIST_TEST_MODE");
  if (!mode) GTEST_SKIP() << "runs only as a child of the Distributed.* tests";
  const std::string m = mode;
  const DistEnv env = DistEnv::from_env();
  if (m == "fail") {
    if (env.rank == 1) std::_Exit(3);
    std::this_thread::sleep_for(std::chrono::seconds(60));  // the launcher must stop us
    std::ofstream(fs::path(std::getenv("C3_DIST_TEST_DIR")) / "rank0_slept") << "60 s\n";
    return;
  }
  const at::Device dev = test_device(env.local_rank);
  DataParallelOptions opt;
  opt.timeout = std::chrono::seconds(60);
  if (m == "train") opt.bucket_bytes = 64;  // several buckets per dtype, one tensor over the cap
  DataParallel dp(env, dev, opt);
  ASSERT_EQ(dp.world_size(), 2);
  if (m == "train") {
    EXPECT_EQ(dp.allreduce_mean(dp.rank()), 0.5);
    worker_train(dp, dev, std::getenv("C3_DIST_TEST_DIR"));
    worker_unused_params(dp, dev, /*overlap=*/false);
    worker_unused_params(dp, dev, /*overlap=*/true);
    dp.barrier();
  } else if (m == "bench") {
    worker_bench(dp, dev);
  } else {
    FAIL() << "unknown C3_DIST_TEST_MODE=" << m;
  }
}

TEST(DistributedEnv, DefaultsToOneProcess) {
  auto env = torchrun_env({});
  const DistEnv e = DistEnv::from_env();
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.world_size, 1);
  EXPECT_EQ(e.local_rank, 0);
  EXPECT_EQ(e.master_addr, "127.0.0.1");
  EXPECT_EQ(e.master_port, 29500);
  EXPECT_FALSE(e.is_distributed());
}

TEST(DistributedEnv, ReadsTorchrunVariables) {
  auto env = torchrun_env({{"RANK", "5"},
                           {"WORLD_SIZE", "8"},
                           {"LOCAL_RANK", "1"},
                           {"MASTER_ADDR", "node-0"},
                           {"MASTER_PORT", "1234"}});
  const DistEnv e = DistEnv::from_env();
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.world_size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.master_addr, "node-0");
  EXPECT_EQ(e.master_port, 1234);
  EXPECT_TRUE(e.is_distributed());
}

TEST(DistributedEnv, LocalRankDefaultsToRank) {
  auto env = torchrun_env({{"RANK", "1"}, {"WORLD_SIZE", "2"}});
  EXPECT_EQ(DistEnv::from_env().local_rank, 1);
}

TEST(DistributedEnv, RejectsMalformedValues) {
  struct Case {
    std::vector<std::pair<std::string, const char*>> vars;
    std::string must_mention;
  };
  const std::vector<Case> cases = {
      {{{"RANK", "abc"}, {"WORLD_SIZE", "2"}}, "RANK='abc' is not an integer"},
      {{{"RANK", "1x"}, {"WORLD_SIZE", "2"}}, "RANK='1x'"},
      {{{"RANK", ""}, {"WORLD_SIZE", "2"}}, "RANK is set but empty"},
      {{{"RANK", "2"}, {"WORLD_SIZE", "2"}}, "RANK=2 is out of range: expected 0..1"},
      {{{"RANK", "-1"}, {"WORLD_SIZE", "2"}}, "RANK=-1 is out of range"},
      {{{"RANK", "1"}}, "RANK=1 is out of range: expected 0..0"},
      {{{"WORLD_SIZE", "0"}}, "WORLD_SIZE=0 is out of range"},
      {{{"WORLD_SIZE", "2"}}, "WORLD_SIZE=2 but RANK is unset"},
      {{{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_RANK", "two"}}, "LOCAL_RANK='two'"},
      {{{"MASTER_PORT", "70000"}}, "MASTER_PORT=70000 is out of range: expected 1..65535"},
      {{{"MASTER_PORT", "29500 "}}, "MASTER_PORT='29500 ' is not an integer"},
      {{{"MASTER_ADDR", ""}}, "MASTER_ADDR is set but empty"},
  };
  for (const auto& c : cases) {
    auto env = torchrun_env(c.vars);
    try {
      DistEnv::from_env();
      ADD_FAILURE() << "expected an error mentioning: " << c.must_mention;
    } catch (const c3::Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.must_mention), std::string::npos) << e.what();
    }
  }
}

TEST(DistributedOneProcess, NeedsNoStoreAndChangesNothing) {
  // Nothing listens on port 1: one process must not touch the network.
  auto env = torchrun_env({{"MASTER_PORT", "1"}});
  DataParallel dp(DistEnv::from_env(), at::kCPU);
  EXPECT_EQ(dp.world_size(), 1);
  EXPECT_EQ(dp.backend_name(), "none");
  TinyNet net = make_net(7, at::kCPU);
  const auto before = cpu_copy(net->parameters());
  dp.broadcast_parameters(*net);
  dp.register_overlap(net->parameters());
  dp.arm_overlap();
  auto [x, y] = global_batch(at::kCPU);
  loss_on(net, x, y, 0, kGlobalBatch).backward();
  dp.finish_gradients();
  const auto grads = cpu_copy({net->fc1->weight.grad(), net->fc2->bias.grad()});
  dp.allreduce_gradients(net->parameters());
  EXPECT_TRUE(torch::equal(net->fc1->weight.grad(), grads[0]));
  EXPECT_TRUE(torch::equal(net->fc2->bias.grad(), grads[1]));
  const auto after = net->parameters();
  for (size_t i = 0; i < before.size(); ++i) EXPECT_TRUE(torch::equal(before[i], after[i]));
  EXPECT_EQ(dp.allreduce_mean(2.5), 2.5);
  dp.barrier();
}

TEST(Distributed, FindFreePortGivesAUsablePort) {
  const int p = c3::train::find_free_port();
  EXPECT_GT(p, 0);
  EXPECT_LT(p, 65536);
}

TEST(Distributed, TwoProcessesMatchOneProcessOnTheGlobalBatch) {
  const at::Device dev = test_device(0);
  if (auto why = cannot_run_two(dev); !why.empty()) {
    if (std::getenv("C3_DIST_REQUIRE")) FAIL() << why << " (C3_DIST_REQUIRE is set)";
    GTEST_SKIP() << why;
  }
  // The reference first: on CUDA the parent used to crash (a jump to address 0, seen on H100s)
  // when it first made a CUDA context after forking the workers.
  const std::vector<at::Tensor> ref = reference_params(dev);
  TempDir dir;
  ASSERT_EQ(run_workers("train", dir.path), 0) << "a worker failed; its output is above";
  std::vector<at::Tensor> r0, r1;
  torch::load(r0, (dir.path / "rank0.pt").string());
  torch::load(r1, (dir.path / "rank1.pt").string());
  ASSERT_EQ(r0.size(), ref.size());
  ASSERT_EQ(r1.size(), ref.size());
  double max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_TRUE(torch::equal(r0[i], r1[i])) << "tensor " << i << " differs between ranks";
    max_diff = std::max(max_diff, (r0[i] - ref[i]).abs().max().item<double>());
  }
  std::printf("[%s] max |2-process - 1-process| over %zu tensors: %.3g (tolerance %.0e)\n",
              dev.str().c_str(), ref.size(), max_diff, kDpTol);
  EXPECT_LE(max_diff, kDpTol);
}

TEST(Distributed, LauncherStopsTheOthersWhenOneRankFails) {
  TempDir dir;  // needs no backend: the workers exit before making one
  EXPECT_EQ(run_workers("fail", dir.path), 3);  // rank 1's exit status
  EXPECT_FALSE(fs::exists(dir.path / "rank0_slept"))
      << "rank 0 slept its 60 s: the launcher should have stopped it when rank 1 failed";
}

// Prints all-reduce bandwidth; set C3_DIST_BENCH_MB (and C3_DIST_DEVICE=cuda for NCCL).
TEST(Distributed, AllreduceBandwidth) {
  if (!std::getenv("C3_DIST_BENCH_MB")) GTEST_SKIP() << "set C3_DIST_BENCH_MB=256 to measure";
  if (auto why = cannot_run_two(test_device(0)); !why.empty()) GTEST_SKIP() << why;
  TempDir dir;
  EXPECT_EQ(run_workers("bench", dir.path), 0);
}
