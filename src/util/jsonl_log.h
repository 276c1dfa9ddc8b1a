// Appends one JSON object per line to a log file (machine-readable training/eval logs).
#pragma once
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

namespace c3 {

class JsonlLog {
 public:
  JsonlLog() = default;
  explicit JsonlLog(const std::string& path, bool append = true);
  ~JsonlLog();
  JsonlLog(const JsonlLog&) = delete;
  JsonlLog& operator=(const JsonlLog&) = delete;
  bool is_open() const { return f_ != nullptr; }
  // Each record is written and flushed whole, so a crash loses at most the last line.
  void write(const nlohmann::json& record);

 private:
  FILE* f_ = nullptr;
  std::string path_;
};

}  // namespace c3
