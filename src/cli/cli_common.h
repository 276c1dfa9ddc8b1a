// Flags and helpers shared by several subcommands (device, dtype, model loading).
#pragma once
#include <ATen/ATen.h>

#include <string>

namespace c3::cli {

// "cpu" | "cuda" | "cuda:N"; a clear error when this LibTorch or machine has no CUDA.
at::Device parse_device(const std::string& s);
// "f32" | "bf16" | "auto" (bf16 on CUDA, f32 on CPU).
at::ScalarType parse_dtype(const std::string& s, const at::Device& d);
// Default model folder: $C3_MODEL, else models/c3-small next to the binary's source tree.
std::string default_model_dir();

}  // namespace c3::cli
