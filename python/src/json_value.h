// A JSON value as the Python value json.loads would give (dict, list, str, int, float, bool,
// None), so dicts handed to Python carry exactly the fields and order of the CLI's --json output.
#pragma once
#include <pybind11/pybind11.h>

#include <nlohmann/json.hpp>

namespace c3::python {

namespace py = pybind11;

// Needs the GIL. Invalid UTF-8 in strings becomes U+FFFD, as the CLI prints it.
py::object json_value(const nlohmann::ordered_json& j);
py::object json_value(const nlohmann::json& j);

}  // namespace c3::python
