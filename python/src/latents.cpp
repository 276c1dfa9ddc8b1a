// c3.Latents: the tensor (zero-copy as a torch.Tensor), the chunk metadata, and .c3 files both
// ways.
#include "latents.h"

#include <fmt/ranges.h>
#include <pybind11/stl.h>

#include "arguments.h"
#include "bindings.h"
#include "gil.h"
#include "torch_bridge.h"
#include "util/error.h"

namespace c3::python {

Latents Latents::load(const std::string& path) {
  cascade::LatentFile f = cascade::read_latents(path);
  C3_CHECK(f.meta.records.n_plain() == 0,
           "'{}' stores {} of its chunks as plain tokens (c3 compress --min-precision); "
           "c3.Latents holds latents only: decompress it with `c3 decompress`",
           path, f.meta.records.n_plain());
  return {f.latents, f.meta};
}

void Latents::save(const std::string& path, at::ScalarType dtype) const {
  C3_CHECK(dtype == at::kFloat || dtype == at::kBFloat16,
           "Latents.save('{}'): dtype must be 'f32' or 'bf16'", path);
  cascade::LatentMeta m = meta;
  m.dtype = dtype == at::kFloat ? "F32" : "BF16";
  cascade::LatentWriter writer(path, m);
  writer.append(tensor, meta.chunk_bytes, meta.chunk_tokens);
  writer.set_source(meta.source_tokens, meta.source_chars, meta.source_bytes);
  writer.finish();
}

void Latents::set_tensor(const at::Tensor& t) {
  C3_CHECK(t.dim() == 3 && t.size(0) == chunks() && t.size(1) == meta.latent_len &&
               t.size(2) == meta.hidden,
           "Latents.tensor must keep its shape [{}, {}, {}], got [{}]", chunks(), meta.latent_len,
           meta.hidden, fmt::join(t.sizes(), ", "));
  C3_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16,
           "Latents.tensor must be float32 or bfloat16, got {}", c10::toString(t.scalar_type()));
  tensor = t;
}

namespace {

std::string repr(const Latents& l) {
  return fmt::format(
      "c3.Latents(chunks={}, L={}, hidden={}, dtype={}, device={}, source_tokens={})", l.chunks(),
      l.meta.latent_len, l.meta.hidden,
      l.tensor.scalar_type() == at::kBFloat16 ? "bfloat16" : "float32", l.tensor.device().str(),
      l.meta.source_tokens);
}

}  // namespace

void bind_latents(py::module_& m) {
  py::class_<Latents>(m, "Latents",
                      "One document compressed: a torch.Tensor [chunks, L, hidden] and the chunk "
                      "metadata of a .c3 file. Made by Cascade.compress or Latents.load.")
      .def_static("load", &Latents::load, py::arg("path"), py::call_guard<NoGil>(),
                  "Reads a .c3 file (written by `c3 compress` or Latents.save).")
      .def(
          "save",
          [](const Latents& l, const std::string& path, const py::object& dtype) {
            const at::ScalarType t = dtype.is_none() ? l.tensor.scalar_type()
                                                     : dtype_arg(dtype, l.tensor.device(), "dtype");
            NoGil no_gil;
            l.save(path, t);
          },
          py::arg("path"), py::arg("dtype") = py::none(),
          "Writes a .c3 file atomically, in the tensor's dtype unless dtype='f32' or 'bf16' is "
          "given (`c3 compress` writes bf16 by default).")
      .def_property(
          "tensor", [](const Latents& l) { return to_torch(l.tensor); },
          [](Latents& l, const py::object& t) { l.set_tensor(from_torch(t, "Latents.tensor")); },
          "The latents [chunks, L, hidden] as a torch.Tensor sharing this object's memory; "
          "assign a tensor of the same shape to replace them.")
      .def("__len__", &Latents::chunks)
      .def_property_readonly("latent_len", [](const Latents& l) { return l.meta.latent_len; })
      .def_property_readonly("hidden_size", [](const Latents& l) { return l.meta.hidden; })
      .def_property_readonly(
          "chunk_tokens", [](const Latents& l) { return l.meta.chunk_tokens; },
          "Source tokens of each chunk (decompression's length cap reads it).")
      .def_property_readonly(
          "chunk_bytes", [](const Latents& l) { return l.meta.chunk_bytes; },
          "Source bytes (UTF-8) of each chunk.")
      .def_property_readonly("source_tokens", [](const Latents& l) { return l.meta.source_tokens; })
      .def_property_readonly("source_chars", [](const Latents& l) { return l.meta.source_chars; })
      .def_property_readonly("source_bytes", [](const Latents& l) { return l.meta.source_bytes; })
      .def_property_readonly(
          "model_fingerprint", [](const Latents& l) { return l.meta.model_fingerprint; },
          "XXH3-128 of the model that made them; decompress refuses others.")
      .def_property_readonly("tokenizer_hash",
                             [](const Latents& l) { return l.meta.tokenizer_hash; })
      .def_property_readonly(
          "ratio",
          [](const Latents& l) {
            return double(l.meta.source_tokens) / double(l.chunks() * l.meta.latent_len);
          },
          "Source tokens per latent vector.")
      .def("__repr__", &repr);
}

}  // namespace c3::python
