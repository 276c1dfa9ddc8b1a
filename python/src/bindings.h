// The c3 Python module's parts: each file binds one concept into the module c3._c3.
#pragma once
#include <pybind11/pybind11.h>

namespace c3::python {

namespace py = pybind11;

void bind_errors(py::module_& m);  // errors.cpp: c3::Error -> c3.Error, c10::Error -> RuntimeError
void bind_tokenizer(py::module_& m);  // tokenizer.cpp: c3.Tokenizer
void bind_latents(py::module_& m);    // latents.cpp: c3.Latents
void bind_cascade(py::module_& m);    // cascade.cpp: c3.Cascade
void bind_evaluate(py::module_& m);   // evaluate.cpp: c3.evaluate

}  // namespace c3::python
