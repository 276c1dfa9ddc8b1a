// `c3 safetensors inspect|rewrite`: list a file's tensors, or copy one through c3's reader/writer.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "io/safetensors.h"

namespace c3::cli {
namespace {

struct SafetensorsOptions {
  std::string file;     // inspect: the file to list
  bool json = false;    // inspect: one JSON object instead of a table
  std::string in, out;  // rewrite: source and destination
};

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void run_inspect(const SafetensorsOptions& o) {
  auto f = io::SafetensorsFile::open(o.file);
  if (o.json) {
    // One tensor per line: diffable, and still a single JSON object.
    nlohmann::json meta = f->metadata();
    std::printf("{\"file\": %s,\n \"metadata\": %s,\n \"tensors\": [",
                nlohmann::json(o.file).dump().c_str(), meta.dump().c_str());
    const auto& ts = f->tensors();
    for (size_t i = 0; i < ts.size(); ++i) {
      nlohmann::ordered_json t = {{"name", ts[i].name},
                                  {"dtype", io::dtype_name(ts[i].dtype)},
                                  {"shape", ts[i].shape},
                                  {"data_offsets", {ts[i].begin, ts[i].end}}};
      std::printf("%s\n  %s", i ? "," : "", t.dump().c_str());
    }
    std::printf("]}\n");
    return;
  }
  uint64_t total = 0;
  size_t width = 4;
  for (const io::TensorInfo& t : f->tensors()) {
    total += t.end - t.begin;
    width = std::max(width, t.name.size());
  }
  std::printf("%s: %zu tensors, %llu data bytes\n", o.file.c_str(), f->tensors().size(),
              static_cast<unsigned long long>(total));
  for (const auto& [k, v] : f->metadata()) std::printf("metadata %s = %s\n", k.c_str(), v.c_str());
  for (const io::TensorInfo& t : f->tensors())
    std::printf("%-*s  %-4s  %s\n", static_cast<int>(width), t.name.c_str(),
                io::dtype_name(t.dtype), shape_str(t.shape).c_str());
}

// Reads every tensor through the reader and writes them with the writer, metadata kept: on the
// device this shows that Python `safetensors` loads what c3 writes.
void run_rewrite(const SafetensorsOptions& o) {
  auto f = io::SafetensorsFile::open(o.in);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const io::TensorInfo& t : f->tensors()) tensors.emplace_back(t.name, f->tensor(t.name));
  io::save_safetensors(o.out, tensors, f->metadata());
  std::printf("wrote %s: %zu tensors, %zu metadata entries\n", o.out.c_str(), tensors.size(),
              f->metadata().size());
}

void setup_safetensors(CLI::App& root) {
  auto o = std::make_shared<SafetensorsOptions>();
  CLI::App* cmd = root.add_subcommand("safetensors", "Inspect or rewrite a .safetensors file");
  cmd->require_subcommand(1);

  CLI::App* inspect =
      cmd->add_subcommand("inspect", "Print tensor names, dtypes, shapes and metadata");
  inspect->add_option("file", o->file, "The .safetensors file")->required();
  inspect->add_flag("--json", o->json, "Print one JSON object (file, metadata, tensors)");
  inspect->callback([o] { run_inspect(*o); });

  CLI::App* rewrite = cmd->add_subcommand(
      "rewrite", "Read every tensor of IN with c3's reader and write them to OUT with its writer");
  rewrite->add_option("in", o->in, "Source .safetensors file")->required();
  rewrite->add_option("out", o->out, "Destination .safetensors file (written atomically)")
      ->required();
  rewrite->callback([o] { run_rewrite(*o); });
}

}  // namespace

C3_REGISTER_COMMAND("safetensors", setup_safetensors);

}  // namespace c3::cli
