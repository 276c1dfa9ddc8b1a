// Reading HF-style JSON config files with errors that name the key and the file.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "util/error.h"
#include "util/json_int.h"

namespace c3::io {

class JsonFile {
 public:
  // Parses a JSON object from `path`; a missing file, malformed JSON or a non-object is a
  // c3::Error naming the file (and the parse position).
  static JsonFile load(const std::string& path);
  JsonFile(nlohmann::json j, std::string path) : j_(std::move(j)), path_(std::move(path)) {}

  const nlohmann::json& json() const { return j_; }
  const std::string& path() const { return path_; }
  bool has(const std::string& key) const { return j_.contains(key) && !j_[key].is_null(); }

  // A required key: missing -> "config '<file>' lacks required key '<key>'"; a wrong type ->
  // names the key, the file, the expected and the actual type.
  template <typename T>
  T required(const std::string& key) const {
    if (!has(key)) fail("config '{}' lacks required key '{}'. Add it or use a complete config.json.", path_, key);
    return get<T>(key);
  }
  template <typename T>
  T optional(const std::string& key, T fallback) const {
    return has(key) ? get<T>(key) : fallback;
  }
  // A nested object as a JsonFile with the same path (for rope_parameters etc.).
  std::optional<JsonFile> object(const std::string& key) const;

 private:
  template <typename T>
  T get(const std::string& key) const {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      const nlohmann::json& v = j_.at(key);
      if (auto n = json_int<T>(v)) return *n;
      if (!v.is_number())
        fail("config '{}': key '{}' has the wrong type ({}: {}); expected an integer", path_, key,
             v.type_name(), v.dump().substr(0, 100));
      fail("config '{}': key '{}' must be an integer in [{}, {}], got {}", path_, key,
           std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), v.dump().substr(0, 100));
    }
    try {
      return j_.at(key).get<T>();
    } catch (const nlohmann::json::exception&) {
      fail("config '{}': key '{}' has the wrong type ({}: {})", path_, key, j_.at(key).type_name(),
           j_.at(key).dump());
    }
  }
  nlohmann::json j_;
  std::string path_;
};

// Writes pretty JSON atomically.
void save_json(const std::string& path, const nlohmann::json& j);

}  // namespace c3::io
