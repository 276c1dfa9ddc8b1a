// Google Benchmark of checkpoint writing (src/train/checkpoint_file.h): host snapshots of tensors,
// and safetensors files written by 1-8 threads with fsync. C3_BENCH_DIR picks the folder written
// to (default /tmp/c3_checkpoint_bench): a disk measures the disk, /dev/shm the writer itself.
// Record: docs/runs/2026-12-04-checkpoint-writing.md.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "train/checkpoint_file.h"
#include "util/remove_tree.h"

namespace {

namespace fs = std::filesystem;

fs::path bench_dir() {
  const char* d = std::getenv("C3_BENCH_DIR");
  return fs::path(d && *d ? d : "/tmp/c3_checkpoint_bench");
}

// `gib` GiB of fp32 as 4 files (like weight shards), each of 4 tensors.
std::vector<c3::train::CheckpointFile> files_of(double gib) {
  const int64_t per_tensor = static_cast<int64_t>(gib * (1ll << 30) / 16 / 4);
  std::vector<c3::train::CheckpointFile> files;
  for (int f = 0; f < 4; ++f) {
    c3::train::CheckpointFile file;
    file.name = "model-0000" + std::to_string(f + 1) + "-of-00004.safetensors";
    for (int t = 0; t < 4; ++t)
      file.tensors.push_back({"w" + std::to_string(t), at::kFloat, {per_tensor}, {torch::rand({per_tensor})}});
    files.push_back(std::move(file));
  }
  return files;
}

// Writing 1 GiB with fsync, state.range(0) threads.
void BM_WriteCheckpointFiles(benchmark::State& state) {
  const auto files = files_of(1.0);
  int64_t bytes = 0;
  for (const auto& f : files) bytes += f.data_bytes();
  const fs::path dir = bench_dir() / "ckpt";
  for (auto _ : state) {
    c3::train::write_checkpoint_files(dir.string(), files, static_cast<int>(state.range(0)));
    state.PauseTiming();
    c3::remove_tree(dir);
    state.ResumeTiming();
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}
BENCHMARK(BM_WriteCheckpointFiles)->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);

// The training pause: host copies of 1 GiB of CPU tensors into fresh memory.
void BM_HostCopy(benchmark::State& state) {
  const at::Tensor t = torch::rand({(1ll << 30) / 4});
  for (auto _ : state) benchmark::DoNotOptimize(c3::train::host_copy(t));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(t.nbytes()));
}
BENCHMARK(BM_HostCopy)->Iterations(3)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
