// Tensors between LibTorch (at::Tensor) and Python's torch (torch.Tensor) without copies, through
// DLPack capsules and torch.utils.dlpack: this needs no torch Python C headers, only the same
// LibTorch under both, which the module is built against.
#pragma once
#include <ATen/ATen.h>
#include <pybind11/pybind11.h>

#include <string>

namespace c3::python {

namespace py = pybind11;

// A torch.Tensor sharing `t`'s memory (a CUDA tensor stays on its device). Needs the GIL.
py::object to_torch(const at::Tensor& t);
// An at::Tensor sharing the memory of the torch.Tensor `obj` (detached from autograd). TypeError
// naming `name` when `obj` is no tensor. Needs the GIL.
at::Tensor from_torch(const py::handle& obj, const std::string& name);

}  // namespace c3::python
