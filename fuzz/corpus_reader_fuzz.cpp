// libFuzzer target: CorpusReader over a JSONL file (plain, or .xz when the first byte is odd).
#include <cstdint>

#include "fuzz/fuzz_util.h"
#include "util/error.h"
#include "util/line_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool xz = data[0] & 1;
  const std::string path = c3::fuzz::scratch_file(data + 1, size - 1, xz ? ".jsonl.xz" : ".jsonl");
  try {
    c3::CorpusReader reader({path});
    std::string text;
    while (reader.next(text)) (void)reader.where();
    (void)reader.bytes_read();
  } catch (const c3::Error&) {
  }
  return 0;
}
