// Line streaming over plain files, stdin and xz (liblzma) with fixed-size buffers.
#include "util/line_reader.h"

#include <lzma.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace c3 {

struct LineReader::Lzma {
  lzma_stream strm = LZMA_STREAM_INIT;
  std::vector<uint8_t> raw;
  ~Lzma() { lzma_end(&strm); }
};

static bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

LineReader::LineReader(const std::string& path) : path_(path) {
  if (path == "-") {
    f_ = stdin;
  } else {
    if (std::filesystem::is_directory(path)) fail("cannot read '{}': it is a folder, not a file", path);
    f_ = std::fopen(path.c_str(), "rb");
    if (!f_) fail("cannot read '{}': {}. Check the path.", path, std::strerror(errno));
    owns_ = true;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) file_size_ = st.st_size;
  }
  xz_ = ends_with(path, ".xz");
  if (xz_) {
    lzma_ = std::make_unique<Lzma>();
    if (lzma_stream_decoder(&lzma_->strm, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK)
      fail("cannot read '{}': liblzma failed to initialise", path);
    lzma_->raw.resize(1 << 16);
  }
  out_.resize(1 << 16);
}

LineReader::~LineReader() {
  if (owns_ && f_) std::fclose(f_);
}

// Refills out_ with at least one more byte; false at the end of the input.
bool LineReader::fill() {
  if (eof_) return false;
  if (!xz_) {
    size_t n = std::fread(out_.data(), 1, out_.size(), f_);
    raw_bytes_ += n;
    if (n == 0) {
      if (std::ferror(f_)) fail("cannot read '{}': I/O error", path_);
      eof_ = true;
      return false;
    }
    pos_ = 0;
    len_ = n;
    return true;
  }
  auto& s = lzma_->strm;
  s.next_out = reinterpret_cast<uint8_t*>(out_.data());
  s.avail_out = out_.size();
  while (s.avail_out == out_.size()) {
    lzma_action action = LZMA_RUN;
    if (s.avail_in == 0) {
      size_t n = std::fread(lzma_->raw.data(), 1, lzma_->raw.size(), f_);
      raw_bytes_ += n;
      s.next_in = lzma_->raw.data();
      s.avail_in = n;
      if (n == 0) action = LZMA_FINISH;
    }
    lzma_ret r = lzma_code(&s, action);
    if (r == LZMA_STREAM_END) {
      eof_ = true;
      break;
    }
    if (r != LZMA_OK)
      fail("cannot read '{}': corrupt or truncated xz data near compressed byte {} (lzma error {})",
           path_, raw_bytes_, static_cast<int>(r));
  }
  pos_ = 0;
  len_ = out_.size() - s.avail_out;
  if (len_ == 0) {
    eof_ = true;
    return false;
  }
  return true;
}

bool LineReader::next(std::string& line) {
  line.clear();
  bool any = false;
  for (;;) {
    if (pos_ >= len_ && !fill()) {
      if (any) ++line_no_;
      return any;
    }
    any = true;
    const char* start = out_.data() + pos_;
    const char* nl = static_cast<const char*>(std::memchr(start, '\n', len_ - pos_));
    size_t n = nl ? static_cast<size_t>(nl - start) : len_ - pos_;
    line.append(start, n);
    if (line.size() > max_line_bytes)
      fail("{}:{}: line longer than {} bytes; split the input into lines", path_, line_no_ + 1,
           max_line_bytes);
    pos_ += n;
    if (nl) {
      ++pos_;
      ++line_no_;
      return true;
    }
  }
}

CorpusReader::CorpusReader(std::vector<std::string> paths) : paths_(std::move(paths)) {
  for (auto& p : paths_) {
    if (p == "-") continue;  // stdin: size unknown
    std::error_code ec;
    auto sz = std::filesystem::file_size(p, ec);
    if (ec) fail("cannot read corpus file '{}': {}. Check the --corpus/--data paths.", p, ec.message());
    total_bytes_ += static_cast<int64_t>(sz);
  }
}

int64_t CorpusReader::bytes_read() const { return done_bytes_ + (cur_ ? cur_->bytes_read() : 0); }

std::string CorpusReader::where() const {
  return cur_ ? fmt::format("{}:{}", cur_->path(), cur_->line_number()) : std::string("?");
}

bool CorpusReader::next(std::string& text) {
  for (;;) {
    if (!cur_) {
      if (idx_ >= paths_.size()) return false;
      cur_ = std::make_unique<LineReader>(paths_[idx_++]);
    }
    if (!cur_->next(line_)) {
      done_bytes_ += cur_->bytes_read();
      cur_.reset();
      continue;
    }
    if (line_.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line_);
    } catch (const nlohmann::json::exception& e) {
      fail("{}: not valid JSON ({}). Each line must be an object like {{\"text\": \"...\"}}.", where(),
           clip_json_error(e.what()));
    }
    if (!j.is_object() || !j.contains("text") || !j["text"].is_string())
      fail("{}: expected an object with a string field \"text\"", where());
    text = j["text"].get<std::string>();
    return true;
  }
}

}  // namespace c3
