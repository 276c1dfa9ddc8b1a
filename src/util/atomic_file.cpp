// Temp file + fsync + rename, the one way c3 writes a file a user cares about.
#include "util/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "util/error.h"

namespace c3 {
namespace fs = std::filesystem;

namespace {

// A stream buffer over a POSIX fd, so write errors (ENOSPC, EFBIG) surface with errno intact.
class FdBuf : public std::streambuf {
 public:
  explicit FdBuf(int fd) : fd_(fd) { setp(buf_, buf_ + sizeof(buf_)); }
  int err() const { return err_; }
  bool flush_all() { return sync() == 0; }

 protected:
  int_type overflow(int_type ch) override {
    if (sync() != 0) return traits_type::eof();
    if (ch != traits_type::eof()) {
      *pptr() = static_cast<char>(ch);
      pbump(1);
    }
    return ch == traits_type::eof() ? 0 : ch;
  }
  int sync() override {
    const char* p = pbase();
    while (p < pptr()) {
      ssize_t n = ::write(fd_, p, pptr() - p);
      if (n < 0) {
        if (errno == EINTR) continue;
        err_ = errno;
        return -1;
      }
      p += n;
    }
    setp(buf_, buf_ + sizeof(buf_));
    return 0;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (n > static_cast<std::streamsize>(sizeof(buf_))) {
      if (sync() != 0) return 0;
      std::streamsize done = 0;
      while (done < n) {
        ssize_t w = ::write(fd_, s + done, n - done);
        if (w < 0) {
          if (errno == EINTR) continue;
          err_ = errno;
          return done;
        }
        done += w;
      }
      return n;
    }
    return std::streambuf::xsputn(s, n);
  }

 private:
  int fd_;
  int err_ = 0;
  char buf_[1 << 16];
};

std::string temp_name(const fs::path& path) {
  std::random_device rd;
  std::ostringstream s;
  s << path.filename().string() << ".tmp." << ::getpid() << "." << std::hex << rd();
  return (path.parent_path() / s.str()).string();
}

}  // namespace

void fsync_dir(const fs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

void write_file_atomic(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  fs::path parent = path.parent_path();
  if (!parent.empty() && !fs::is_directory(parent))
    fail("cannot write '{}': the folder '{}' does not exist. Create it first or choose another -o path.",
         path.string(), parent.string());
  const std::string tmp = temp_name(path);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    fail("cannot write '{}': {} (is the folder writable?)", path.string(), std::strerror(errno));
  FdBuf buf(fd);
  std::ostream out(&buf);
  auto cleanup = [&](const std::string& why) {
    ::close(fd);
    ::unlink(tmp.c_str());
    fail("cannot write '{}': {}. Nothing was changed; free some space or pick another path.",
         path.string(), why);
  };
  try {
    write(out);
  } catch (const std::exception& e) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  out.flush();
  if (!buf.flush_all() || buf.err() != 0 || !out)
    cleanup(std::strerror(buf.err() ? buf.err() : EIO));
  if (::fsync(fd) != 0) cleanup(std::strerror(errno));
  if (::close(fd) != 0) {
    ::unlink(tmp.c_str());
    fail("cannot write '{}': {}", path.string(), std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    fail("cannot write '{}': rename failed: {}", path.string(), std::strerror(e));
  }
  fsync_dir(parent);
}

void write_file_atomic(const fs::path& path, std::string_view contents) {
  write_file_atomic(path, [&](std::ostream& o) { o.write(contents.data(), contents.size()); });
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read '{}': {}. Check the path.", path.string(), std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) fail("cannot read '{}': I/O error", path.string());
  return s.str();
}

}  // namespace c3
