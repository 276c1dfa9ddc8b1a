// Python arguments turned into C++ values, with errors that name the argument and say what it
// takes: device= and dtype= strings (or torch.device / torch.dtype), lists of texts.
#pragma once
#include <ATen/ATen.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

namespace c3::python {

namespace py = pybind11;

// The name of v's type, for TypeErrors ("int", "Tensor").
std::string type_name(const py::handle& v);
// "cpu" | "cuda" | "cuda:N", or a torch.device. c3.Error when this LibTorch has no CUDA.
at::Device device_arg(const py::handle& device);
// "auto" (bf16 on CUDA, f32 on the CPU) | "f32" | "bf16", or torch.float32 / torch.bfloat16.
at::ScalarType dtype_arg(const py::handle& dtype, const at::Device& device, const char* name);
// A list (any sequence) of str or UTF-8 bytes; a bare str is refused rather than read as its
// characters. TypeError names `name` and the index of an item that is neither.
std::vector<std::string> texts_arg(const py::handle& texts, const char* name);

}  // namespace c3::python
