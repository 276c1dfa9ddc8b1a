// C++ errors as Python exceptions carrying the same message: c3::Error (bad input: a file, a
// field, an offset, and what to do) becomes c3.Error, a ValueError; LibTorch's c10::Error becomes
// RuntimeError with its message but without the C++ backtrace.
#include <c10/util/Exception.h>

#include "bindings.h"
#include "util/error.h"

namespace c3::python {

void bind_errors(py::module_& m) {
  // Never destroyed: a Python object must not be released after the interpreter has gone.
  static auto* error = new py::exception<c3::Error>(m, "Error", PyExc_ValueError);
  error->attr("__doc__") =
      "Bad input to c3 (a file, a field, a text); the message says what failed and what to try.";
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const c3::Error& e) {
      PyErr_SetString(error->ptr(), e.what());
    } catch (const c10::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    }
  });
}

}  // namespace c3::python
