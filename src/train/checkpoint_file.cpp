// Parallel, fsynced writing of checkpoint files from host memory (see checkpoint_file.h).
#include "train/checkpoint_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "io/safetensors.h"
#include "train/host_staging.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace c3::train {
namespace fs = std::filesystem;

namespace {

// Chunks of at most this many bytes: small enough to spread a few large tensors over threads.
constexpr int64_t kChunkBytes = 64ll << 20;

// The header of a safetensors file (as io::save_safetensors builds it) and each tensor's offset
// in the file.
std::string safetensors_header(const CheckpointFile& f, std::vector<int64_t>& offsets) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!f.metadata.empty()) header["__metadata__"] = f.metadata;
  std::set<std::string> seen;
  uint64_t offset = 0;
  std::vector<uint64_t> begins;
  for (const auto& t : f.tensors) {
    C3_CHECK(!t.name.empty() && t.name != "__metadata__" && seen.insert(t.name).second,
             "cannot write '{}': tensor name '{}' is empty, reserved or repeated", f.name, t.name);
    const io::DType d = io::from_scalar_type(t.dtype);
    int64_t numel = 1;
    for (int64_t s : t.shape) numel *= s;
    int64_t parts = 0;
    for (const auto& p : t.parts) {
      TORCH_CHECK(p.is_cpu() && p.is_contiguous() && p.scalar_type() == t.dtype,
                  "checkpoint file ", f.name, ": a part of '", t.name,
                  "' is not a contiguous CPU tensor of its dtype");
      parts += p.numel();
    }
    C3_CHECK(parts == numel, "cannot write '{}': tensor '{}' has {} elements in its parts, its "
             "shape needs {}", f.name, t.name, parts, numel);
    const uint64_t nbytes = static_cast<uint64_t>(numel) * io::dtype_size(d);
    header[t.name] = {{"dtype", io::dtype_name(d)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    begins.push_back(offset);
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data then starts 8-byte aligned
  const uint64_t n = text.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  out += text;
  offsets.clear();
  for (uint64_t b : begins) offsets.push_back(static_cast<int64_t>(out.size() + b));
  return out;
}

struct Chunk {
  int file;
  int64_t offset;  // in the file
  const char* data;
  int64_t bytes;
};

void pwrite_all(int fd, const char* data, int64_t bytes, int64_t offset, const std::string& path) {
  while (bytes > 0) {
    const ssize_t n = ::pwrite(fd, data, static_cast<size_t>(bytes), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      fail("cannot write checkpoint file '{}': {}. Free some space or pick another --out.", path,
           std::strerror(n < 0 ? errno : EIO));
    data += n;
    bytes -= n;
    offset += n;
  }
}

// Runs work(i) for i in [0, n) on up to `threads` threads; rethrows the first error.
template <class F>
void parallel_for(size_t n, int threads, F work) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::exception_ptr error;
  auto run = [&]() {
    for (size_t i; (i = next++) < n;) {
      try {
        work(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        next = n;
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < std::min<int>(threads, static_cast<int>(n)); ++t) pool.emplace_back(run);
  run();
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace

int64_t CheckpointFile::data_bytes() const {
  if (tensors.empty()) return static_cast<int64_t>(text.size());
  int64_t n = 0;
  for (const auto& t : tensors)
    for (const auto& p : t.parts) n += p.nbytes();
  return n;
}

at::Tensor host_copy(const at::Tensor& t) {
  // From a GPU: into pinned memory, asynchronously; the caller synchronises once after all the
  // copies. The run's reserved memory first (host_staging.h), else LibTorch's pinned allocator
  // (which keeps it for the next checkpoint).
  const bool gpu = t.is_cuda();
  HostStaging* staging = current_host_staging();
  at::Tensor c = staging ? staging->take(t.sizes(), t.scalar_type()) : at::Tensor();
  if (!c.defined()) {
    c = at::empty(t.sizes(),
                  t.options().device(at::kCPU).requires_grad(false).pinned_memory(gpu));
  }
  c.copy_(t.detach(), /*non_blocking=*/gpu);
  return c;
}

void write_checkpoint_files(const std::string& dir, const std::vector<CheckpointFile>& files,
                            int threads) {
  std::set<fs::path> dirs;
  std::vector<std::string> paths;
  std::vector<int> fds(files.size(), -1);
  std::vector<std::string> heads(files.size());
  std::vector<Chunk> chunks;
  auto close_all = [&]() {
    for (int& fd : fds)
      if (fd >= 0) ::close(fd), fd = -1;
  };
  try {
    for (size_t i = 0; i < files.size(); ++i) {
      const CheckpointFile& f = files[i];
      const fs::path path = (fs::path(dir) / f.name).lexically_normal();
      paths.push_back(path.string());
      if (dirs.insert(path.parent_path()).second) {
        std::error_code ec;
        fs::create_directories(path.parent_path(), ec);
        if (ec) fail("cannot write checkpoint file '{}': {}", path.string(), ec.message());
      }
      fds[i] = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fds[i] < 0)
        fail("cannot write checkpoint file '{}': {}", path.string(), std::strerror(errno));
      if (f.tensors.empty()) {
        chunks.push_back({static_cast<int>(i), 0, f.text.data(), static_cast<int64_t>(f.text.size())});
        continue;
      }
      std::vector<int64_t> offsets;
      heads[i] = safetensors_header(f, offsets);
      chunks.push_back({static_cast<int>(i), 0, heads[i].data(), static_cast<int64_t>(heads[i].size())});
      for (size_t k = 0; k < f.tensors.size(); ++k) {
        int64_t at = offsets[k];
        for (const at::Tensor& p : f.tensors[k].parts) {
          const char* data = static_cast<const char*>(p.data_ptr());
          for (int64_t b = 0; b < static_cast<int64_t>(p.nbytes()); b += kChunkBytes) {
            const int64_t n = std::min<int64_t>(kChunkBytes, p.nbytes() - b);
            chunks.push_back({static_cast<int>(i), at + b, data + b, n});
          }
          at += p.nbytes();
        }
      }
    }
    parallel_for(chunks.size(), threads, [&](size_t k) {
      const Chunk& c = chunks[k];
      pwrite_all(fds[c.file], c.data, c.bytes, c.offset, paths[c.file]);
    });
    parallel_for(files.size(), threads, [&](size_t i) {
      if (::fsync(fds[i]) != 0)
        fail("cannot write checkpoint file '{}': fsync: {}", paths[i], std::strerror(errno));
    });
  } catch (...) {
    close_all();
    throw;
  }
  for (size_t i = 0; i < files.size(); ++i) {
    if (::close(fds[i]) != 0)
      fail("cannot write checkpoint file '{}': {}", paths[i], std::strerror(errno));
    fds[i] = -1;
  }
  for (const auto& d : dirs) fsync_dir(d);
  fsync_dir(fs::path(dir).lexically_normal().parent_path());  // a folder created here
}

}  // namespace c3::train
