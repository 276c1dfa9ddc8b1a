// remove_tree: deletes a whole tree, never what a symbolic link inside it points to.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "util/error.h"
#include "util/remove_tree.h"

namespace fs = std::filesystem;

namespace {

fs::path scratch(const char* name) {
  const fs::path p = fs::temp_directory_path() / ("c3_remove_tree_" + std::to_string(::getpid()) + name);
  fs::create_directories(p);
  return p;
}

TEST(RemoveTree, RemovesNestedFoldersAndFilesButNotLinkTargets) {
  const fs::path root = scratch("_tree"), outside = scratch("_outside");
  fs::create_directories(root / "a" / "b" / "c");
  std::ofstream(root / "top.txt") << "x";
  std::ofstream(root / "a" / "b" / "c" / "deep.bin") << "y";
  std::ofstream(outside / "keep.txt") << "keep";
  fs::create_directory_symlink(outside, root / "a" / "link");
  std::error_code ec;
  EXPECT_TRUE(c3::remove_tree(root, ec)) << ec.message();
  EXPECT_FALSE(fs::exists(root));
  EXPECT_TRUE(fs::exists(outside / "keep.txt")) << "the walk followed a symbolic link";
  c3::remove_tree(outside);
  EXPECT_FALSE(fs::exists(outside));
}

TEST(RemoveTree, MissingPathIsFineAndASingleFileGoes) {
  std::error_code ec;
  EXPECT_TRUE(c3::remove_tree("/nonexistent/c3/remove_tree/path", ec));
  EXPECT_FALSE(ec);
  const fs::path dir = scratch("_file");
  std::ofstream(dir / "f.txt") << "z";
  c3::remove_tree(dir / "f.txt");
  EXPECT_FALSE(fs::exists(dir / "f.txt"));
  c3::remove_tree(dir);
}

TEST(RemoveTree, AFailureNamesThePath) {
  if (::geteuid() == 0) GTEST_SKIP() << "root may delete inside a read-only folder";
  const fs::path dir = scratch("_locked");
  fs::create_directory(dir / "inner");
  std::ofstream(dir / "inner" / "f.txt") << "z";
  fs::permissions(dir / "inner", fs::perms::owner_read | fs::perms::owner_exec);
  try {
    c3::remove_tree(dir);
    ADD_FAILURE() << "removing below a read-only folder succeeded";
  } catch (const c3::Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir.string()), std::string::npos) << e.what();
  }
  fs::permissions(dir / "inner", fs::perms::owner_all);
  c3::remove_tree(dir);
}

}  // namespace
