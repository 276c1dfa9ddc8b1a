// Incremental decoding: hold back the bytes of an unfinished UTF-8 character until it completes.
#include "tokenizer/streaming_decoder.h"

#include "tokenizer/utf8.h"

namespace c3::tokenizer {

std::string StreamingDecoder::take_complete() {
  const auto* s = reinterpret_cast<const uint8_t*>(pending_.data());
  const size_t n = pending_.size();
  std::string out;
  size_t i = 0;
  while (i < n) {
    Utf8Step st = utf8_step(s + i, n - i);
    if (st.truncated) break;  // may still become valid: wait for the next token
    if (st.valid) out.append(pending_, i, st.len);
    else out += "\xEF\xBF\xBD";
    i += st.len;
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamingDecoder::feed(int32_t id) {
  if (skip_special_ && tok_->is_special(id)) return "";
  pending_.append(tok_->token_bytes(id));
  return take_complete();
}

std::string StreamingDecoder::feed(const std::vector<int32_t>& ids) {
  for (int32_t id : ids) {
    if (skip_special_ && tok_->is_special(id)) continue;
    pending_.append(tok_->token_bytes(id));
  }
  return take_complete();
}

std::string StreamingDecoder::flush() {
  std::string out = to_valid_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace c3::tokenizer
