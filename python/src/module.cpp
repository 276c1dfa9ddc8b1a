// The module c3._c3: pybind11 bindings over the c3 library (python/c3/__init__.py re-exports
// them). Classes mirror the C++ ones; tensors cross as torch.Tensors without copies; compute runs
// without the GIL; C++ errors arrive as Python exceptions with the same message.
#include <torch/version.h>

#include "bindings.h"
#include "gil.h"

PYBIND11_MODULE(_c3, m) {
  using namespace c3::python;
  m.doc() = "c3: Context Cascade Compression (C++ on LibTorch) from Python";
  // The LibTorch this module was built against: c3/__init__.py checks that torch is the same.
  m.attr("torch_version") = TORCH_VERSION;
  bind_errors(m);
  bind_tokenizer(m);
  bind_latents(m);
  bind_cascade(m);
  bind_evaluate(m);
  // For the tests: how the last computing call ran ("released": without the GIL, "held", or
  // "none" since the last look), and reset.
  m.def("_last_call_gil", [] {
    const int s = last_gil_state().exchange(0);
    return s == 1 ? "released" : s == 2 ? "held" : "none";
  });
}
