// Recursive delete by a depth-first nftw walk (see remove_tree.h for why not remove_all).
#include "util/remove_tree.h"

#include <ftw.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>

#include "util/error.h"

namespace c3 {
namespace {

int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  return std::remove(path) == 0 ? 0 : errno;  // files, links and (now empty) folders alike
}

}  // namespace

bool remove_tree(const std::filesystem::path& path, std::error_code& ec) {
  ec.clear();
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return true;
    ec.assign(errno, std::generic_category());
    return false;
  }
  // FTW_DEPTH: children before their folder; FTW_PHYS: never follow links.
  const int rc = nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  if (rc == 0) return true;
  ec.assign(rc > 0 ? rc : errno, std::generic_category());
  return false;
}

void remove_tree(const std::filesystem::path& path) {
  std::error_code ec;
  if (!remove_tree(path, ec))
    c3::fail("cannot remove '{}': {} (check its permissions, then delete it by hand)",
             path.string(), ec.message());
}

}  // namespace c3
