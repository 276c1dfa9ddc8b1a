// c3.Latents: one document's latents [chunks, L, hidden] with the metadata a .c3 file keeps
// (the model's fingerprint, each chunk's source tokens and bytes), in memory.
#pragma once
#include <ATen/ATen.h>

#include <string>

#include "c3/latent_file.h"

namespace c3::python {

struct Latents {
  at::Tensor tensor;  // [chunks, L, hidden]: on the model's device after compress, CPU after load
  cascade::LatentMeta meta;

  int64_t chunks() const { return tensor.size(0); }
  // Reads a .c3 file (c3.Error names the file and the field).
  static Latents load(const std::string& path);
  // Writes a .c3 file atomically; `dtype` is kBFloat16 or kFloat.
  void save(const std::string& path, at::ScalarType dtype) const;
  // Replaces the tensor by one of the same shape (c3.Error otherwise).
  void set_tensor(const at::Tensor& t);
};

}  // namespace c3::python
