// A checkpoint file held in host memory until it is written, so that a background thread can
// write it while training goes on: a safetensors file whose tensors may each come in parts (a
// shard of optimizer state is many parameters' pieces, concatenated), or a small text file.
// write_checkpoint_files() writes many at once: all the data is cut into chunks that several
// threads pwrite() in parallel, then every file is fsynced.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace c3::train {

struct CheckpointFile {
  std::string name;  // relative to the checkpoint folder, e.g. "llm1/model.safetensors"

  struct Tensor {
    std::string name;
    at::ScalarType dtype = at::kFloat;
    std::vector<int64_t> shape;
    std::vector<at::Tensor> parts;  // contiguous CPU tensors of `dtype`, concatenated in order
  };
  std::vector<Tensor> tensors;                  // a safetensors file unless empty ...
  std::map<std::string, std::string> metadata;  // ... with this "__metadata__"
  std::string text;                             // else a text file with these contents

  int64_t data_bytes() const;  // tensor bytes (the text's size for a text file)
};

// A host copy of `t` in its dtype: the snapshot a checkpoint writes while training changes `t`.
// A copy from a GPU is asynchronous: synchronise the device before writing it.
at::Tensor host_copy(const at::Tensor& t);

// Writes `files` into the folder `dir` (created if need be, sub-folders too), each fsynced, the
// folders too, with up to `threads` threads. Throws c3::Error naming the file on any failure.
// Safetensors files get exactly the bytes io::save_safetensors would write.
void write_checkpoint_files(const std::string& dir, const std::vector<CheckpointFile>& files,
                            int threads);

}  // namespace c3::train
