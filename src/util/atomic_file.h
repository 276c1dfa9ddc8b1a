// Crash-safe file writes: data goes to a temp file beside the target, is fsynced, then renamed.
#pragma once
#include <filesystem>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>

namespace c3 {

// Writes `path` atomically: either the old file or the complete new one exists afterwards, never a
// partial one. `write` gets a stream on the temp file; errors (a full disk too) throw c3::Error
// naming `path`, and the temp file is removed.
void write_file_atomic(const std::filesystem::path& path,
                       const std::function<void(std::ostream&)>& write);
void write_file_atomic(const std::filesystem::path& path, std::string_view contents);

// Reads a whole file; throws c3::Error naming the file when it cannot.
std::string read_file(const std::filesystem::path& path);

// Fsyncs a directory so that a rename inside it survives a crash.
void fsync_dir(const std::filesystem::path& dir);

}  // namespace c3
