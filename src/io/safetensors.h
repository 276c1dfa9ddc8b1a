// safetensors: a memory-mapped, validating reader and an atomic writer (HF's weight format).
//
// File layout: u64 little-endian header length N, N bytes of JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the data section; offsets are relative to the start of the data section.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace c3::io {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(DType d);         // "F32", ...
size_t dtype_size(DType d);              // bytes per element
DType dtype_from_name(const std::string& s, const std::string& where);  // throws c3::Error
at::ScalarType to_scalar_type(DType d);
DType from_scalar_type(at::ScalarType t);  // throws for unsupported types

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range inside the data section
  int64_t numel() const;
};

class SafetensorsFile {
 public:
  // Maps the file and validates it completely (header size, JSON, dtype x shape == byte range,
  // ranges inside the data section, no overlap, full coverage, no duplicate names). Every error is
  // a c3::Error naming the file and, where there is one, the tensor.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);
  // The same validation over the bytes of a file held in memory (e.g. sent over HTTP); `name`
  // stands for the path in errors. Tensors read the bytes in place, as they read a mapping.
  static std::shared_ptr<SafetensorsFile> from_bytes(std::string bytes, const std::string& name);
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in data-offset order
  const TensorInfo* find(const std::string& name) const;              // nullptr when absent
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // A CPU tensor over the mapped bytes (zero-copy when the address is aligned for the dtype,
  // else a copy). The tensor keeps the mapping alive. Throws c3::Error naming file and tensor when
  // absent.
  at::Tensor tensor(const std::string& name) const;
  // Raw bytes of a tensor, for hashing without conversion.
  std::pair<const uint8_t*, size_t> bytes(const std::string& name) const;

 private:
  SafetensorsFile() = default;
  // Validates `size` bytes at `base` (kept alive by `keep`) as a safetensors file.
  static std::shared_ptr<SafetensorsFile> parse(const std::string& path, const uint8_t* base,
                                                uint64_t size, std::shared_ptr<void> keep);
  std::string path_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  std::shared_ptr<void> mapping_;  // munmap on release
  const uint8_t* data_ = nullptr;  // start of the data section
  size_t data_size_ = 0;
};

// Writes tensors (any device/dtype among DType; made contiguous and copied to CPU) in the given
// order, header padded with spaces to a multiple of 8 bytes, atomically (temp file + rename).
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// An HF checkpoint folder: `model.safetensors`, or shards listed by
// `model.safetensors.index.json` ("weight_map": {tensor: shard file}).
class Checkpoint {
 public:
  // Throws c3::Error when the folder has neither file, or when the index names a missing shard or
  // a tensor its shard lacks.
  static Checkpoint open(const std::string& dir);
  const std::string& dir() const { return dir_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  at::Tensor tensor(const std::string& name) const;
  std::pair<const uint8_t*, size_t> bytes(const std::string& name) const;
  // "dir/model-00002-of-00007.safetensors" for error messages.
  std::string file_of(const std::string& name) const;

 private:
  std::string dir_;
  std::map<std::string, std::shared_ptr<SafetensorsFile>> where_;  // tensor -> file
};

}  // namespace c3::io
