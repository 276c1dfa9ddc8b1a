// JSON to Python values through the json module: one code path for every field, in order.
#include "json_value.h"

namespace c3::python {

namespace {

py::object loads(const std::string& text) {
  return py::module_::import("json").attr("loads")(py::str(text));
}

}  // namespace

py::object json_value(const nlohmann::ordered_json& j) {
  return loads(j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
}

py::object json_value(const nlohmann::json& j) {
  return loads(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace c3::python
