// JsonFile: HF-style config.json loading with errors that name the file, and atomic JSON saving.
#include "io/hf_config.h"

#include "util/atomic_file.h"

namespace c3::io {

JsonFile JsonFile::load(const std::string& path) {
  const std::string text = read_file(path);  // names the file when it is missing
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    fail("config '{}' is not valid JSON (at byte {}): {}. Fix the file or re-export it.", path,
         e.byte, clip_json_error(e.what()));
  } catch (const nlohmann::json::exception& e) {  // e.g. a number out of range (1e999)
    fail("config '{}' is not valid JSON: {}. Fix the file or re-export it.", path,
         clip_json_error(e.what()));
  }
  if (!j.is_object())
    fail("config '{}' holds a JSON {}, but a config must be an object {{...}}.", path,
         j.type_name());
  return JsonFile(std::move(j), path);
}

std::optional<JsonFile> JsonFile::object(const std::string& key) const {
  if (!has(key)) return std::nullopt;
  const nlohmann::json& v = j_.at(key);
  if (!v.is_object())
    fail("config '{}': key '{}' has the wrong type (expected object, got {}: {})", path_, key,
         v.type_name(), v.dump());
  return JsonFile(v, path_);
}

void save_json(const std::string& path, const nlohmann::json& j) {
  std::string text;
  try {
    text = j.dump(2) + "\n";
  } catch (const nlohmann::json::exception& e) {
    fail("cannot write '{}': {} (a string is not valid UTF-8?)", path, e.what());
  }
  write_file_atomic(path, text);
}

}  // namespace c3::io
