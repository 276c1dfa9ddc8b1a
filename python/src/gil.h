// NoGil: releases the GIL around a computing call (as py::gil_scoped_release) and records that
// the calling thread really ran without it, which the tests check for every such call.
#pragma once
#include <pybind11/pybind11.h>

#include <atomic>

namespace c3::python {

namespace py = pybind11;

// 0: no NoGil since the last reset; 1: the last one ran without the GIL; 2: with it.
inline std::atomic<int>& last_gil_state() {
  static std::atomic<int> state{0};
  return state;
}

class NoGil {
 public:
  NoGil() { last_gil_state() = PyGILState_Check() ? 2 : 1; }  // after release_ is constructed

 private:
  py::gil_scoped_release release_;
};

}  // namespace c3::python
