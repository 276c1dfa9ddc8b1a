// JSON-lines log writer.
#include "util/jsonl_log.h"

#include <cerrno>
#include <cstring>

#include "util/error.h"

namespace c3 {

JsonlLog::JsonlLog(const std::string& path, bool append) : path_(path) {
  f_ = std::fopen(path.c_str(), append ? "ab" : "wb");
  if (!f_) fail("cannot open log '{}': {}", path, std::strerror(errno));
}

JsonlLog::~JsonlLog() {
  if (f_) std::fclose(f_);
}

void JsonlLog::write(const nlohmann::json& record) {
  if (!f_) return;
  std::string line = record.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
    fail("cannot write log '{}': {}", path_, std::strerror(errno));
}

}  // namespace c3
