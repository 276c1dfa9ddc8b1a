// Python arguments turned into C++ values.
#include "arguments.h"

#include <torch/cuda.h>

#include "util/error.h"

namespace c3::python {

namespace {

// str() of the argument, so torch.device("cuda", 0) reads "cuda:0" and torch.bfloat16 reads
// "torch.bfloat16".
std::string as_text(const py::handle& v) {
  std::string s = py::str(v);
  if (s.rfind("torch.", 0) == 0) s = s.substr(6);
  return s;
}

}  // namespace

std::string type_name(const py::handle& v) {
  return py::str(py::type::handle_of(v).attr("__name__"));
}

at::Device device_arg(const py::handle& device) {
  const std::string s = as_text(device);
  if (s == "cpu") return at::kCPU;
  if (s.rfind("cuda", 0) == 0) {
    C3_CHECK(torch::cuda::is_available(),
             "device='{}': CUDA is not available (this LibTorch is CPU-only or no GPU is visible); "
             "use device='cpu'",
             s);
    try {
      return at::Device(s);
    } catch (const std::exception&) {
    }
  }
  fail("device='{}': expected 'cpu', 'cuda' or 'cuda:N'", s);
}

at::ScalarType dtype_arg(const py::handle& dtype, const at::Device& device, const char* name) {
  const std::string s = as_text(dtype);
  if (s == "f32" || s == "fp32" || s == "float32" || s == "float") return at::kFloat;
  if (s == "bf16" || s == "bfloat16") return at::kBFloat16;
  if (s == "auto") return device.is_cuda() ? at::kBFloat16 : at::kFloat;
  fail("{}='{}': expected 'auto', 'f32' or 'bf16' (or torch.float32 / torch.bfloat16)", name, s);
}

std::vector<std::string> texts_arg(const py::handle& texts, const char* name) {
  if (py::isinstance<py::str>(texts) || py::isinstance<py::bytes>(texts))
    throw py::type_error(std::string(name) + " must be a list of texts, not one text; pass [text]");
  if (!py::isinstance<py::sequence>(texts))
    throw py::type_error(std::string(name) + " must be a list of str, got " + type_name(texts));
  std::vector<std::string> out;
  for (const py::handle item : texts) {
    if (py::isinstance<py::str>(item))  // str.encode: a lone surrogate raises UnicodeEncodeError
      out.push_back(item.attr("encode")("utf-8").cast<std::string>());
    else if (py::isinstance<py::bytes>(item))  // UTF-8 is checked by the library, with offsets
      out.push_back(item.cast<std::string>());
    else
      throw py::type_error(fmt::format("{}[{}] must be a str (or UTF-8 bytes), got {}", name,
                                       out.size(), type_name(item)));
  }
  return out;
}

}  // namespace c3::python
