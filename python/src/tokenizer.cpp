// c3.Tokenizer: from_file, encode, encode_batch (on LibTorch's intra-op threads, without the
// GIL), decode and the vocabulary look-ups.
#include "tokenizer.h"

#include <ATen/Parallel.h>
#include <pybind11/stl.h>

#include <optional>

#include "arguments.h"
#include "bindings.h"
#include "gil.h"
#include "tokenizer/tokenizer_files.h"
#include "util/error.h"

namespace c3::python {

namespace {

Tokenizer from_file(const std::string& path) {
  // The library's loader, so every tokenizer file it reads, this reads.
  return {
      std::make_shared<const tokenizer::BpeTokenizer>(tokenizer::load_tokenizer(path))};
}

// Each text on its own thread slot; an error names the text's index.
std::vector<std::vector<int32_t>> encode_batch(const Tokenizer& t,
                                               const std::vector<std::string>& texts) {
  std::vector<std::vector<int32_t>> out(texts.size());
  at::parallel_for(0, static_cast<int64_t>(texts.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      try {
        out[i] = t.tok->encode(texts[i]);
      } catch (const c3::Error& e) {
        fail("texts[{}]: {}", i, e.what());
      }
    }
  });
  return out;
}

}  // namespace

void bind_tokenizer(py::module_& m) {
  py::class_<Tokenizer>(
      m, "Tokenizer", "A byte-level BPE tokenizer that encodes and decodes as HF tokenizers does.")
      .def_static("from_file", &from_file, py::arg("path"), py::call_guard<NoGil>(),
                  "Loads a tokenizer: an HF tokenizer.json, a qwen.tiktoken, or a model folder holding one. "
                  "c3.Error names the file and the "
                  "key it cannot use.")
      .def(
          "encode", [](const Tokenizer& t, const std::string& text) { return t.tok->encode(text); },
          py::arg("text"), py::call_guard<NoGil>(),
          "Token ids of text, as HF's encode(text, add_special_tokens=False). bytes that are not "
          "UTF-8 raise c3.Error with the byte offset.")
      .def(
          "encode_batch",
          [](const Tokenizer& t, const py::object& texts) {
            const std::vector<std::string> v = texts_arg(texts, "texts");
            NoGil no_gil;
            return encode_batch(t, v);
          },
          py::arg("texts"), "encode() of each text, in parallel on torch's intra-op threads.")
      .def(
          "decode",
          [](const Tokenizer& t, const std::vector<int32_t>& ids, bool skip_special_tokens) {
            return t.tok->decode(ids, skip_special_tokens);
          },
          py::arg("ids"), py::arg("skip_special_tokens") = false, py::call_guard<NoGil>(),
          "Text of ids as HF's decode(); ids that name no token are skipped.")
      .def(
          "token_to_id",
          [](const Tokenizer& t, const std::string& token) -> std::optional<int32_t> {
            const int32_t id = t.tok->token_id(token);
            return id < 0 ? std::nullopt : std::optional<int32_t>(id);
          },
          py::arg("token"), "The id of a token ('Ġthe', '<|im_end|>'), or None.")
      .def(
          "id_to_token",
          [](const Tokenizer& t, int32_t id) -> std::optional<std::string> {
            std::string s = t.tok->id_to_token(id);
            return s.empty() ? std::nullopt : std::optional<std::string>(std::move(s));
          },
          py::arg("id"), "The token an id stands for, or None.")
      .def(
          "is_special", [](const Tokenizer& t, int32_t id) { return t.tok->is_special(id); },
          py::arg("id"))
      .def_property_readonly(
          "vocab_size", [](const Tokenizer& t) { return t.tok->vocab_size(); },
          "Largest id + 1, added tokens included.")
      .def_property_readonly(
          "file_hash", [](const Tokenizer& t) { return t.tok->file_hash(); },
          "XXH3-128 of the tokenizer file, as .c3 files record it.")
      .def("__repr__", [](const Tokenizer& t) {
        return "c3.Tokenizer(vocab_size=" + std::to_string(t.tok->vocab_size()) + ")";
      });
}

}  // namespace c3::python
