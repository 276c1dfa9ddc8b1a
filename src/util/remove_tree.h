// Recursive delete without std::filesystem::remove_all.
//
// Why: PyTorch 2.11's libtorch.so exports its own copy of std::filesystem::remove_all(path,
// error_code&), and the dynamic linker binds our calls to it; that copy jumps to address 0 on a
// non-empty directory (a SIGSEGV seen in test binaries on the GPU image, in a test's temp-dir
// cleanup, and a hazard for checkpoint rotation). This walks the tree with POSIX nftw instead.
#pragma once
#include <filesystem>
#include <system_error>

namespace c3 {

// Removes `path` and everything below it (symbolic links are removed, not followed). A missing
// path is not an error. Returns false and sets `ec` on the first failure.
bool remove_tree(const std::filesystem::path& path, std::error_code& ec);
// The same, throwing c3::Error that names the path on failure.
void remove_tree(const std::filesystem::path& path);

}  // namespace c3
