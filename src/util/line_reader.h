// Streams the lines of a text file, transparently decompressing `.xz`, with bounded memory.
#pragma once
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace c3 {

class LineReader {
 public:
  // "-" reads stdin. A name ending in .xz is decompressed with liblzma as it streams.
  explicit LineReader(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Next line without its '\n'; false at the end. A line longer than max_line_bytes throws
  // c3::Error naming the file and line number.
  bool next(std::string& line);
  int64_t line_number() const { return line_no_; }
  int64_t bytes_read() const { return raw_bytes_; }  // compressed bytes consumed (for progress)
  int64_t file_size() const { return file_size_; }
  const std::string& path() const { return path_; }
  size_t max_line_bytes = size_t(1) << 30;

 private:
  bool fill();
  std::string path_;
  FILE* f_ = nullptr;
  bool owns_ = false, xz_ = false, eof_ = false;
  struct Lzma;
  std::unique_ptr<Lzma> lzma_;
  std::vector<char> in_, out_;
  size_t pos_ = 0, len_ = 0;
  int64_t line_no_ = 0, raw_bytes_ = 0, file_size_ = 0;
};

// Reads JSON lines {"text": ...} from files (plain or .xz) and yields the texts. Lines that are
// not objects with a string "text" throw c3::Error naming file and line.
class CorpusReader {
 public:
  explicit CorpusReader(std::vector<std::string> paths);
  bool next(std::string& text);
  // Progress over all files, in bytes read from disk.
  int64_t bytes_read() const;
  int64_t total_bytes() const { return total_bytes_; }
  std::string where() const;  // "file:line" of the last text

 private:
  std::vector<std::string> paths_;
  size_t idx_ = 0;
  std::unique_ptr<LineReader> cur_;
  int64_t done_bytes_ = 0, total_bytes_ = 0;
  std::string line_;
};

}  // namespace c3
